"""Tests of ssd_edu.fast.photometric: the deferred photometric distortion of a batch.

References: Python's ``colorsys`` for HSV, a per-pixel loop for the distortion, the reference
``ssd_edu.data.photometric.photometric_distort`` (PIL's 8-bit HSV), and the fast CPU path
(``FastTrainTransform`` without deferral) for what a training run sees.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from ssd_edu.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PIXEL_PARAMS,
    Photometric,
    ShapesDataset,
    collate_detections,
    item_generator,
    normalize,
    photometric_distort,
    to_pil,
)
from ssd_edu.data.photometric import pixel_params
from ssd_edu.fast.augment import FastTrainTransform
from ssd_edu.fast.photometric import distort_batch, finish_batch, hsv_to_rgb, rgb_to_hsv
from ssd_edu.viz import sample_photo

BOXES = torch.tensor([[0.04, 0.06, 1.0, 1.0], [0.29, 0.25, 0.65, 0.55]])
LABELS = torch.tensor([15, 15])
DIFFICULT = torch.tensor([False, True])
STD_255 = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255  # normalised units -> grey levels


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return to_pil(sample_photo()).crop((6, 100, 506, 475))  # 500 x 375, like a VOC image


def random_pixels(seed: int, h: int = 6, w: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), generator=g, dtype=torch.uint8)


def full_region(image: torch.Tensor) -> tuple[int, int, int, int]:
    return (0, 0, image.shape[-1], image.shape[-2])


def params_of(p: Photometric | None, region) -> torch.Tensor:
    return pixel_params(p, region, IMAGENET_MEAN, IMAGENET_STD)[None]  # [1, 15]


# ------------------------------------------------------------------------------------------------
# HSV
# ------------------------------------------------------------------------------------------------


def test_rgb_to_hsv_matches_colorsys():
    rgb = torch.rand(3, 9, 11, dtype=torch.float64)
    rgb[:, 0, :3] = 0.5  # grey pixels: no hue
    rgb[:, 0, 3] = 0.0  # black: no saturation either
    ours = rgb_to_hsv(rgb)
    want = torch.tensor(
        [
            [colorsys.rgb_to_hsv(*rgb[:, i, j].tolist()) for j in range(rgb.shape[2])]
            for i in range(rgb.shape[1])
        ],
        dtype=torch.float64,
    ).permute(2, 0, 1)
    assert_close(ours, want)


def test_hsv_round_trip_is_the_identity():
    rgb = torch.rand(2, 3, 16, 16)
    assert_close(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-6, rtol=0)
    assert_close(hsv_to_rgb(rgb_to_hsv(rgb.double())), rgb.double())


# ------------------------------------------------------------------------------------------------
# distortion
# ------------------------------------------------------------------------------------------------


def loop_reference(image: torch.Tensor, p: Photometric) -> torch.Tensor:
    """The distortion pixel by pixel, in float64 with colorsys: ``[3, H, W]`` -> 0..255 floats."""

    def to8(v: float) -> float:
        return float(np.clip(np.rint(v), 0, 255))

    out = torch.empty(image.shape, dtype=torch.float64)
    shift = round((p.hue_degrees or 0.0) * 255 / 360) / 255
    for i in range(image.shape[1]):
        for j in range(image.shape[2]):
            px = [float(c) for c in image[:, i, j]]
            px = [to8(c + (p.brightness or 0.0)) for c in px]
            if not p.contrast_last:
                px = [to8(c * (p.contrast or 1.0)) for c in px]
            h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in px))
            s = min(max(s * (p.saturation or 1.0), 0.0), 1.0)
            px = [to8(c * 255) for c in colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)]
            if p.contrast_last:
                px = [to8(c * (p.contrast or 1.0)) for c in px]
            out[:, i, j] = torch.tensor(px)
    return out


@pytest.mark.parametrize("contrast_last", [False, True])
def test_distortion_matches_a_per_pixel_reference(contrast_last):
    image = random_pixels(1)
    p = Photometric(contrast_last, -20.5, 1.3, 0.7, 14.0)
    ours = distort_batch(image, params_of(p, full_region(image)))[0]
    want = loop_reference(image[0], p)
    # float32 against float64: a value may fall on the other side of a .5 at most once
    assert (ours.double() - want).abs().max() <= 1
    assert (ours.double() != want).float().mean() < 0.05
    assert torch.equal(ours, ours.round())  # on the 8-bit grid


@pytest.mark.parametrize("contrast_last", [False, True])
def test_brightness_and_contrast_equal_the_cpu_path_exactly(contrast_last):
    # no HSV step: both paths are the same lookup tables, rounding and saturating alike
    image = random_pixels(2, 20, 30)
    p = Photometric(contrast_last, 31.0, 1.45, None, None)
    ours = distort_batch(image, params_of(p, full_region(image)))[0]
    cpu = photometric_distort(to_pil(image[0]), p)
    assert torch.equal(ours, torch.from_numpy(np.array(cpu)).permute(2, 0, 1).float())


def test_saturation_and_hue_agree_with_the_cpu_path(photo):
    # PIL's 8-bit HSV truncates hue and saturation to whole steps, where we keep floats: a few
    # grey levels apart at most, under one on average
    image = torch.from_numpy(np.array(photo.resize((96, 72)))).permute(2, 0, 1)[None]
    for p in (
        Photometric(False, None, None, 1.5, None),
        Photometric(True, 10.0, 0.8, 0.6, -18.0),
        Photometric(False, -5.0, 1.2, None, 9.0),
    ):
        ours = distort_batch(image, params_of(p, full_region(image)))[0]
        cpu = torch.from_numpy(np.array(photometric_distort(to_pil(image[0]), p)))
        diff = (ours - cpu.permute(2, 0, 1).float()).abs()
        assert diff.max() <= 8, p
        assert diff.mean() < 1.0, p


def test_skipped_steps_change_no_pixel():
    image = random_pixels(3, 10, 10)
    for p in (None, Photometric(True, None, None, None, None)):
        out = distort_batch(image, params_of(p, full_region(image)))
        assert torch.equal(out, image.float())


def test_only_the_region_is_distorted():
    image = random_pixels(4, 12, 16)
    p = Photometric(False, 25.0, 1.2, 1.3, 10.0)
    everywhere = distort_batch(image, params_of(p, full_region(image)))
    out = distort_batch(image, params_of(p, (3, 2, 11, 9)))
    inside = torch.zeros(12, 16, dtype=torch.bool)
    inside[2:9, 3:11] = True
    assert torch.equal(out[..., inside], everywhere[..., inside])
    assert torch.equal(out[..., ~inside], image.float()[..., ~inside])


def test_each_image_of_a_batch_gets_its_own_parameters():
    images = torch.cat([random_pixels(s, 8, 8) for s in range(4)])
    ps = [Photometric(s % 2 == 0, 5.0 * s, 1 + 0.1 * s, 1 - 0.1 * s, 4.0 * s) for s in range(4)]
    batch = distort_batch(images, torch.cat([params_of(p, (0, 0, 8, 8)) for p in ps]))
    for b, p in enumerate(ps):
        one = distort_batch(images[b : b + 1], params_of(p, (0, 0, 8, 8)))
        assert torch.equal(batch[b : b + 1], one)


def test_finish_batch_normalises_like_normalize():
    image = random_pixels(5, 9, 9)
    out = finish_batch(image, params_of(None, full_region(image)))[0]
    want = normalize(image[0].permute(1, 2, 0).numpy())
    assert_close(out, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("images", "params", "message"),
    [
        (torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(1, 15), r"images must have shape"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int32), torch.zeros(1, 15), r"uint8"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 15), r"\[2, 15\]"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 9), r"params must have shape"),
    ],
)
def test_bad_input_is_named(images, params, message):
    with pytest.raises(ValueError, match=message):
        finish_batch(images, params)


def test_params_layout_is_documented():
    p = Photometric(True, 3.0, None, 1.2, None)
    row = pixel_params(p, (1, 2, 3, 4), (0.1,) * 3, (0.5,) * 3)
    named = dict(zip(PIXEL_PARAMS, row.tolist(), strict=True))
    assert named["contrast_last"] == 1 and named["brightness"] == 3 and named["contrast"] == 1
    assert named["saturation"] == pytest.approx(1.2) and named["hue_degrees"] == 0
    assert (named["x1"], named["y1"], named["x2"], named["y2"]) == (1, 2, 3, 4)
    assert named["mean_g"] == pytest.approx(0.1) and named["std_b"] == 0.5


# ------------------------------------------------------------------------------------------------
# FastTrainTransform(defer_photometric=True) and the batch
# ------------------------------------------------------------------------------------------------


def test_deferred_items_finish_as_the_cpu_path(photo):
    cpu, deferred = FastTrainTransform(300), FastTrainTransform(300, defer_photometric=True)
    worst = []
    for i in range(24):  # zoom outs, crops, flips and every photometric combination occur
        want = cpu(photo, BOXES, LABELS, DIFFICULT, generator=item_generator(0, 0, i))
        item = deferred(photo, BOXES, LABELS, DIFFICULT, generator=item_generator(0, 0, i))
        assert len(item) == 5 and item[0].dtype == torch.uint8 and item[0].shape == (3, 300, 300)
        for a, b in zip(want[1:], item[1:4], strict=True):  # the same geometry
            assert torch.equal(a, b)
        got = finish_batch(item[0][None], item[4][None])[0]
        diff = (got - want[0]).abs() * STD_255  # grey levels
        worst.append((diff.max().item(), diff.mean().item()))
    assert max(w[0] for w in worst) <= 8.01
    assert max(w[1] for w in worst) < 1.0


def test_deferred_without_distortion_is_exact(photo):
    for i in range(8):
        g = item_generator(1, 0, i)
        want = FastTrainTransform(300, distort=False)(photo, BOXES, LABELS, DIFFICULT, generator=g)
        g = item_generator(1, 0, i)
        item = FastTrainTransform(300, distort=False, defer_photometric=True)(
            photo, BOXES, LABELS, DIFFICULT, generator=g
        )
        assert_close(finish_batch(item[0][None], item[4][None])[0], want[0], atol=1e-5, rtol=0)


def test_deferred_region_follows_zoom_out_and_flip(photo):
    t = FastTrainTransform(300, defer_photometric=True)
    aug = t.draw(BOXES, item_generator(0, 0, 0))
    aug = dataclasses.replace(aug, expand=(2.0, 0.0, 0.5), crop=None, flip=False)
    image, *_, params = t.apply(photo, BOXES, LABELS, DIFFICULT, aug)
    named = dict(zip(PIXEL_PARAMS, params.tolist(), strict=True))
    # a 1000 x 750 canvas with the photo at y 188 (round(375 * 0.5)): output rows 75.2..225.2,
    # of which 76..225 lie wholly on the photo
    assert (named["x1"], named["y1"], named["x2"], named["y2"]) == (0, 76, 150, 225)
    flipped = t.apply(photo, BOXES, LABELS, DIFFICULT, dataclasses.replace(aug, flip=True))[4]
    named = dict(zip(PIXEL_PARAMS, flipped.tolist(), strict=True))
    assert (named["x1"], named["x2"]) == (150, 300)
    # outside the region: the mean-coloured canvas, which finishes as 0 (the mean) exactly
    out = finish_batch(image[None], params[None])[0]
    assert out[:, :, 150:].abs().max() < 1e-2


def test_collate_stacks_the_params():
    data = ShapesDataset(3, transform=FastTrainTransform(128, defer_photometric=True))
    images, boxes, labels, difficult, params = collate_detections([data[i] for i in range(3)])
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 128, 128)
    assert params.shape == (3, len(PIXEL_PARAMS)) and len(boxes) == len(labels) == 3
    with pytest.raises(ValueError, match="item lengths"):
        collate_detections([data[0], ShapesDataset(1, augment=True)[0]])


def test_plot_deferred_photometric_draws_three_rows(photo):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import plot_deferred_photometric

    deferred = FastTrainTransform(64, defer_photometric=True)
    items = [deferred(photo, BOXES, LABELS, DIFFICULT, item_generator(0, 0, i)) for i in range(2)]
    raw, *_, params = collate_detections(items)
    finished = finish_batch(raw, params)
    fig = plot_deferred_photometric(raw, finished, finished)
    assert len(fig.axes) == 6 and fig.axes[0].get_ylabel().startswith("from the worker")
    plt.close(fig)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_finish_batch_on_cuda_matches_the_cpu(photo):
    # the GPU's float arithmetic may round a value on the other side of a .5: one level at most
    deferred = FastTrainTransform(300, defer_photometric=True)
    items = [deferred(photo, BOXES, LABELS, DIFFICULT, item_generator(0, 0, i)) for i in range(8)]
    raw, *_, params = collate_detections(items)
    want = distort_batch(raw, params)
    got = distort_batch(raw.cuda(), params.cuda()).cpu()
    assert (got - want).abs().max() <= 1 and (got != want).float().mean() < 1e-3
    assert_close(
        finish_batch(raw.cuda(), params.cuda()).cpu(),
        finish_batch(raw, params),
        atol=1 / (255 * 0.224) + 1e-5,
        rtol=0,
    )
