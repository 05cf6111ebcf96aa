"""make_toy_voc's classes can be learned: each is one shape in one colour family, in the pixels.

Read back from the written JPEGs: the hue of an object's pixels names its colour family and the
outline of those pixels its shape, and together they give its class; no two classes share a
(shape, family). Also the VOC marks: truncated exactly when a box touches the border, some
objects difficult, coordinates 1-based.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu.data import (
    FAMILY_NAMES,
    SHAPE_CLASSES,
    VOC_CLASSES,
    VOCDetection,
    make_toy_voc,
    render_shapes,
    toy_voc_legend,
)
from ssd_edu.data.shapes import _shape_mask


def _family_and_shape(pixels: np.ndarray, families: int) -> tuple[int, int]:
    """From an object's box of RGB pixels ``[h, w, 3]``: its hue family and its shape kind.

    The shapes are vivid (saturation >= 0.65) on a grey-ish background (<= 0.25): the saturated
    pixels are the shape. Their mean hue (round the circle) nearest ``f / F`` gives the family;
    the template of ``_shape_mask`` that overlaps them best gives the shape.
    """
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV")).astype(np.float64)  # [h, w, 3]
    vivid = hsv[..., 1] > 0.45 * 255  # [h, w]
    angle = hsv[..., 0][vivid] / 256 * 2 * np.pi
    hue = np.angle(np.exp(1j * angle).mean()) / (2 * np.pi) % 1.0
    family = int(np.round(hue * families)) % families
    h, w = vivid.shape
    ious = [(_shape_mask(k, w, h) & vivid).sum() / (_shape_mask(k, w, h) | vivid).sum()
            for k in range(len(SHAPE_CLASSES))]  # fmt: skip
    return family, int(np.argmax(ious))


def test_legend_gives_every_class_its_own_shape_and_colour():
    legend = toy_voc_legend()
    assert list(legend) == list(VOC_CLASSES)
    assert len(set(legend.values())) == 20  # no two classes look alike
    assert legend["aeroplane"] == "red rectangle" and legend["tvmonitor"] == "violet cross"
    assert toy_voc_legend(["a", "b", "c", "d"]) == dict(zip("abcd", SHAPE_CLASSES))


def test_render_shapes_families_paint_the_hue_of_the_class():
    # one shape per scene, nothing on top of it: its pixels say its class (hand-checkable rule)
    for seed in range(40):
        image, boxes, classes = render_shapes(
            np.random.default_rng(seed), 120, 100, max_objects=1, min_size=24.0, families=5
        )
        (c1, r1, c2, r2), k = boxes[0].tolist(), int(classes[0])
        family, shape = _family_and_shape(image[r1:r2, c1:c2], 5)
        assert (shape, family) == divmod(k, 5), f"seed {seed}: class {k}"


def test_render_shapes_rejects_bad_families():
    with pytest.raises(ValueError, match="families must be None or in 1..5, got 6"):
        render_shapes(np.random.default_rng(0), 64, 64, families=6)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A toy VOC with one object per image: each object's pixels are its own."""
    root = tmp_path_factory.mktemp("toy")
    make_toy_voc(root, 60, seed=5, max_objects=1, min_fraction=0.15, test_fraction=0.0)
    return VOCDetection(root)


def test_each_class_is_seen_in_the_written_jpegs(single):
    legend = toy_voc_legend()
    seen = set()
    for i in range(len(single)):
        image, boxes, labels, _ = single[i]  # [3, H, W] uint8, boxes as fractions
        h, w = image.shape[1:]
        x1, y1, x2, y2 = (boxes[0] * torch.tensor([w, h, w, h])).round().long().tolist()
        pixels = image.permute(1, 2, 0).numpy()[y1:y2, x1:x2]
        family, shape = _family_and_shape(pixels, 5)
        name = VOC_CLASSES[int(labels[0]) - 1]
        assert legend[name] == f"{FAMILY_NAMES[family]} {SHAPE_CLASSES[shape]}", single.image_ids[i]
        seen.add(name)
    assert len(seen) >= 15  # 60 draws of 20 classes: the generator uses them all


def test_marks_and_coordinates_stay_voc(tmp_path):
    make_toy_voc(tmp_path, 40, seed=2, test_fraction=0.0)
    ds = VOCDetection(tmp_path)
    counts = torch.zeros(20, dtype=torch.long)
    n_difficult = n_truncated = 0
    for i in range(len(ds)):
        ann = ds.annotation(i)
        touches = (ann["boxes"][:, :2] == 0).any(1) | (ann["boxes"][:, 2:] == 1).any(1)  # [N]
        assert torch.equal(ann["truncated"], touches), ds.image_ids[i]
        n_truncated += int(touches.sum())
        n_difficult += int(ann["difficult"].sum())
        counts += torch.bincount(ann["labels"] - 1, minlength=20)
    assert n_difficult > 0 and n_truncated > 0
    assert (counts > 0).sum() >= 18  # classes drawn uniformly: nearly all appear in 40 images
    # 1-based pixels in the XML: a box at the left edge is written xmin = 1
    xml = (tmp_path / "VOC2007/Annotations/000001.xml").read_text()
    assert "<xmin>0</xmin>" not in xml and "<ymin>0</ymin>" not in xml


@pytest.mark.parametrize(
    "names", [VOC_CLASSES[:6], VOC_CLASSES[:4] * 2, list(VOC_CLASSES) + ["x"] * 4]
)
def test_class_names_must_be_four_shapes_times_families(tmp_path, names):
    with pytest.raises(ValueError, match="class_names must be 4, 8, ..., 20 distinct names"):
        make_toy_voc(tmp_path, 2, class_names=names)


def test_fewer_families(tmp_path):
    # 8 names: 4 shapes x 2 families (red, then azure-ish at 180 degrees)
    names = [f"c{k}" for k in range(8)]
    make_toy_voc(tmp_path, 10, seed=1, class_names=names, test_fraction=0.0)
    ds = VOCDetection(tmp_path, class_names=names)
    labels = torch.cat([ds.annotation(i)["labels"] for i in range(len(ds))])
    assert labels.min() >= 1 and labels.max() <= 8
