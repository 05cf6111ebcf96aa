"""FastTrainTransform against its reference, ssd_edu.data.transforms.TrainTransform.

Both make the same draw (the fast class inherits it). For many seeds and images (photos of
different sizes, ShapesDataset scenes, random sizes; no, one and several objects, objects at the
border), the fast path's labels and difficult flags are identical to the reference's and its
boxes equal within 1e-6: the two compute them in a different order (one window against zoom out,
crop and flip one after another), both in float64 before the float32 result. Its pixels differ
where the two resample differently: the reference distorts colours before the resize and blends
the photo's edge into the canvas, the fast path distorts after and pastes a sharp edge. Measured
on the cases below, 60 seeds each (grey levels 0..255, all channels):

* without distortion: mean 0.16, the worst image's mean 1.3, 99th percentile 1 (white noise:
  3 to 5); the rest is the photo's edge on the zoom-out canvas (99.9th percentile about 45);
* with it, on photos, shapes and smooth random images: mean 0.43, the worst image's mean 2.1,
  99th percentile 5;
* with it, on white noise (the worst case): mean 4.0, the worst image's mean 14, 99th
  percentile 31.

The asserts (24 or 8 seeds) leave some room above these.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from ssd_edu.data import ShapesDataset, TrainTransform, denormalize, to_pil
from ssd_edu.data.geometry import Augmentation
from ssd_edu.fast.augment import FastTrainTransform, image_region, render_window
from ssd_edu.viz import sample_photo


def random_scene(seed: int, smooth: bool = True) -> tuple[Image.Image, torch.Tensor]:
    """A random image of random size with 0..5 random boxes, some touching the border.

    ``smooth``: 6 x 6 random colours blown up (bicubic), like a photo's slow variations;
    otherwise white noise, every pixel on its own (the fast path's worst case).
    """
    g = torch.Generator().manual_seed(seed)
    width, height = (int(v) for v in torch.randint(24, 400, (2,), generator=g))
    side = 6 if smooth else None
    pixels = torch.randint(0, 256, (side or height, side or width, 3), generator=g)
    image = Image.fromarray(pixels.to(torch.uint8).numpy())
    if smooth:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    n = int(torch.randint(0, 6, (1,), generator=g))
    xy = torch.rand(n, 2, generator=g) * 0.8
    wh = 0.05 + torch.rand(n, 2, generator=g) * 0.6
    boxes = torch.cat((xy, xy + wh), dim=1).clamp(max=1.0)  # some end at the border
    if n > 1:
        boxes[0, :2] = 0.0  # one starts at the border too
    return image, boxes


def cases(noise: bool = False) -> list[tuple[str, Image.Image, torch.Tensor]]:
    """Photos, shapes scenes and smooth random scenes; or (``noise``) white-noise scenes."""
    if noise:
        return [(f"noise scene {s}", *random_scene(s, smooth=False)) for s in range(3)]
    photo = to_pil(sample_photo())  # 512 x 600
    shapes = ShapesDataset(3, image_size=128, seed=4)
    voc_boxes = [[0.04, 0.06, 1.0, 1.0], [0.29, 0.25, 0.65, 0.55], [0.27, 0.06, 0.68, 0.29]]
    corners = [[0.0, 0.0, 0.3, 0.2], [0.7, 0.8, 1.0, 1.0]]
    out = [
        ("VOC-sized photo", photo.crop((6, 100, 506, 475)), torch.tensor(voc_boxes)),
        ("photo, objects in the corners", photo, torch.tensor(corners)),
        ("small photo, no objects", photo.resize((97, 211)), torch.zeros(0, 4)),
        ("photo, one object", photo.resize((333, 250)), torch.tensor([[0.3, 0.3, 0.5, 0.6]])),
    ]
    for i in range(3):
        image, boxes, _ = shapes.render(i)
        out.append((f"shapes item {i}", Image.fromarray(image), boxes))
    out += [(f"random scene {s}", *random_scene(s)) for s in range(3)]
    return out


def compare(distort: bool, seeds: range, noise: bool = False) -> tuple[list[float], np.ndarray]:
    """Every case x seed through both; boxes, labels and flags checked; pixel differences back.

    Returns:
        (each image's mean absolute difference, every difference), in grey levels.
    """
    reference, fast = TrainTransform(192, distort=distort), FastTrainTransform(192, distort=distort)
    means, diffs = [], []
    for name, image, boxes in cases(noise):
        labels = torch.arange(1, len(boxes) + 1)
        difficult = labels % 2 == 0
        for seed in seeds:
            want = reference(image, boxes, labels, difficult, torch.Generator().manual_seed(seed))
            got = fast(image, boxes, labels, difficult, torch.Generator().manual_seed(seed))
            where = f"{name}, seed {seed}"
            assert torch.equal(got[2], want[2]) and torch.equal(got[3], want[3]), where
            assert got[1].shape == want[1].shape and got[1].dtype == torch.float32, where
            torch.testing.assert_close(got[1], want[1], atol=1e-6, rtol=0, msg=where)
            d = (denormalize(got[0]) - denormalize(want[0])).abs() * 255  # grey levels
            means.append(d.mean().item())
            diffs.append(d.flatten().numpy())
    return means, np.concatenate(diffs)


def test_same_targets_and_close_pixels_without_distortion():
    means, diffs = compare(distort=False, seeds=range(24))
    assert diffs.mean() < 0.25 and max(means) < 2.0, (diffs.mean(), max(means))
    assert np.percentile(diffs, 99) <= 2, np.percentile(diffs, 99)
    means, diffs = compare(distort=False, seeds=range(8), noise=True)
    assert diffs.mean() < 0.25 and max(means) < 2.0, (diffs.mean(), max(means))
    assert np.percentile(diffs, 99) <= 8, np.percentile(diffs, 99)


def test_same_targets_and_close_pixels_with_distortion():
    means, diffs = compare(distort=True, seeds=range(24))
    assert diffs.mean() < 0.7 and max(means) < 3.0, (diffs.mean(), max(means))
    assert np.percentile(diffs, 99) <= 8, np.percentile(diffs, 99)


def test_white_noise_is_the_worst_case_for_colours_after_the_resize():
    # every pixel on its own: resizing averages neighbours, and the colour steps (saturating,
    # HSV) do not commute with averaging; targets stay identical all the same
    means, diffs = compare(distort=True, seeds=range(8), noise=True)
    assert diffs.mean() < 6.0 and max(means) < 20.0, (diffs.mean(), max(means))
    assert np.percentile(diffs, 99) <= 40, np.percentile(diffs, 99)


def test_the_draw_is_the_references():
    assert FastTrainTransform.draw is TrainTransform.draw
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.4, 0.1, 0.9, 0.9]])
    for seed in range(20):
        g, h = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        assert FastTrainTransform(300).draw(boxes, g) == TrainTransform(300).draw(boxes, h)


def test_image_region_by_hand():
    # zoom out x2, image centred: the image fills the middle half of a 300 x 300 output
    window = Augmentation(None, (2.0, 0.5, 0.5), None, "whole", False).window((100, 50))
    assert image_region((100, 50), window, 300) == ((75, 75, 225, 225), (0.0, 0.0, 100.0, 50.0))
    # only output pixels wholly on the image: edges at 75.2 and 225.2 give 76 and 225
    window = np.array([0.0, -188 / 375, 2.0, (750 - 188) / 375])
    (x1, y1, x2, y2), _ = image_region((500, 375), window, 300)
    assert (x1, y1, x2, y2) == (0, 76, 150, 225)
    assert image_region((100, 50), np.array([1.5, 0.0, 2.5, 1.0]), 300) is None


def test_render_window_entirely_on_canvas():
    # a window beside the image shows only the mean colour
    image = Image.fromarray(np.full((8, 12, 3), 200, np.uint8))
    out = render_window(image, np.array([1.5, 0, 2.5, 1]), 16, (1, 2, 3))
    assert np.asarray(out).reshape(-1, 3).tolist() == [[1, 2, 3]] * 256


def test_repr_names_the_class_and_the_deferral():
    assert repr(FastTrainTransform(64, defer_photometric=True)) == (
        "FastTrainTransform(size=64, steps=distort+expand+crop+flip, defer_photometric=True)"
    )
    want = "TrainTransform(size=64, steps=distort+expand+crop)"
    assert repr(TrainTransform(64, flip=False)) == want


def test_the_reference_layer_never_imports_the_fast_one():
    code = (
        "import sys, ssd_edu.data, ssd_edu.data.transforms, ssd_edu.data.geometry, "
        "ssd_edu.data.photometric, ssd_edu.data.loader, ssd_edu.data.voc, ssd_edu.data.shapes\n"
        "fast = sorted(m for m in sys.modules if m.startswith('ssd_edu.fast'))\n"
        "assert not fast, fast"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
