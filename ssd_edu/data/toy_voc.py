"""A small synthetic dataset in the VOCdevkit layout, so the VOC code path runs without VOC.

Nothing here can download PASCAL VOC, so the VOC reader, the command lines and notebook 10 are
exercised on data this module writes: ShapesDataset-style scenes of random sizes saved as JPEG,
with VOC XML annotations (1-based pixel corners, ``difficult`` and ``truncated`` marks) and the
``ImageSets/Main`` lists, in ``root/VOC<year>/``.

The classes are learnable: class ``k`` is one shape (``SHAPE_CLASSES[k // F]``) in one colour
family (``FAMILY_NAMES[k % F]``), ``F = len(class_names) // 4``, so 20 classes are 4 shapes x 5
well-separated hues and every class looks different from every other. (VOC's own 20 names are
the default, so that code written for VOC runs unchanged; ``toy_voc_legend`` says which name is
which shape and colour.)

Paper: §3.1 (the VOC2007 layout the paper's data comes in); the images themselves are ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ssd_edu.data.shapes import MAX_FAMILIES, SHAPE_CLASSES, render_shapes
from ssd_edu.data.voc import VOC_CLASSES

# the colour families' names, by hue f / F (families=5: 0, 72, 144, 216, 288 degrees)
FAMILY_NAMES: tuple[str, ...] = ("red", "lime", "green", "azure", "violet")


def _families(class_names: Sequence[str]) -> int:
    """``F``, the colour families that ``class_names`` asks for (4 shapes x F colours)."""
    n, shapes = len(class_names), len(SHAPE_CLASSES)
    if n % shapes or not 1 <= n // shapes <= MAX_FAMILIES or len(set(class_names)) != n:
        raise ValueError(
            f"class_names must be {shapes}, {2 * shapes}, ..., {MAX_FAMILIES * shapes} distinct "
            f"names ({shapes} shapes x 1..{MAX_FAMILIES} colour families), got {n} names"
        )
    return n // shapes


def toy_voc_legend(class_names: Sequence[str] = VOC_CLASSES) -> dict[str, str]:
    """What each class of :func:`make_toy_voc` looks like: ``{"aeroplane": "red rectangle", ...}``.

    Args:
        class_names: the names given to ``make_toy_voc`` (4, 8, ..., 20 of them).

    Returns:
        ``{name: "<colour> <shape>"}`` in class order; with 4 names (one family) just the shape.
    """
    f = _families(class_names)
    return {
        name: (f"{FAMILY_NAMES[k % f]} " if f > 1 else "") + SHAPE_CLASSES[k // f]
        for k, name in enumerate(class_names)
    }


def make_toy_voc(
    root: str | Path,
    n: int,
    seed: int = 0,
    year: str = "2007",
    class_names: Sequence[str] = VOC_CLASSES,
    size_range: tuple[int, int] = (160, 400),
    max_objects: int = 4,
    difficult_fraction: float = 0.15,
    test_fraction: float = 0.25,
    min_fraction: float = 0.2,
) -> Path:
    """Write a small VOC-layout dataset of synthetic images: ``root/VOC<year>/...``.

    Images are ShapesDataset-style scenes of random width and height. Each object's class is its
    shape and its colour family (:func:`~ssd_edu.data.shapes.render_shapes` with ``families``):
    class ``k`` (``class_names[k]``) is shape ``k // F`` in hue family ``k % F``, so the classes
    can be told apart from the pixels (``toy_voc_legend`` names them). Some objects are marked
    difficult at random, objects touching the border are marked truncated, and coordinates are
    written 1-based as VOC does.

    Args:
        root: the VOCdevkit folder to write into (created if needed).
        n: number of images; ids are ``000001`` .. (with ``year`` prefixed for years after 2007,
            so that a 07+12 union has distinct ids like the real one).
        seed: everything is a function of it.
        year: writes ``VOC<year>``.
        class_names: the class names written into the XMLs: ``4 F`` distinct names for 4 shapes
            in ``F`` colour families, ``F`` in 1..5 (VOC's 20 names by default: ``F = 5``).
        size_range: image width and height are drawn from this range (pixels).
        max_objects: at most this many objects per image.
        difficult_fraction: chance that an object is marked difficult.
        test_fraction: share of images listed in ``test.txt``; the rest go to ``trainval.txt``.
        min_fraction: the smallest object's ``sqrt(w h)`` over the image's shorter side. 0.2:
            resized to a square input (from up to 2.5:1), an object keeps >= 0.2 / sqrt(2.5) =
            0.126 of the side, above the smallest default box (0.1 in SSD300 and the small model).

    Returns:
        The ``VOC<year>`` folder written.

    Raises:
        ValueError: ``n < 1``, ``min_fraction`` not in (0, 0.9), ``class_names`` not 4, ..., 20.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < min_fraction < 0.9:  # the largest object is 0.9 of the shorter side
        raise ValueError(f"min_fraction must lie in (0, 0.9), got {min_fraction}")
    families = _families(class_names)
    folder = Path(root) / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, int(year)])
    ids = [f"{i + 1:06d}" if year == "2007" else f"{year}_{i + 1:06d}" for i in range(n)]
    for image_id in ids:
        w, h = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
        smallest = min_fraction * min(w, h)
        image, boxes, classes = render_shapes(rng, w, h, max_objects, smallest, families=families)
        Image.fromarray(image).save(folder / "JPEGImages" / f"{image_id}.jpg", quality=90)
        objects = []
        for (c1, r1, c2, r2), k in zip(boxes.tolist(), classes.tolist()):
            name = class_names[k]  # shape k // families, colour family k % families
            hard = int(rng.random() < difficult_fraction)
            cut = int(c1 == 0 or r1 == 0 or c2 == w or r2 == h)
            objects.append(
                f"  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n"
                f"    <truncated>{cut}</truncated>\n    <difficult>{hard}</difficult>\n"
                f"    <bndbox>\n      <xmin>{c1 + 1}</xmin>\n      <ymin>{r1 + 1}</ymin>\n"
                f"      <xmax>{c2}</xmax>\n      <ymax>{r2}</ymax>\n    </bndbox>\n  </object>\n"
            )
        xml = (
            f"<annotation>\n  <folder>VOC{year}</folder>\n  <filename>{image_id}.jpg</filename>\n"
            f"  <size>\n    <width>{w}</width>\n    <height>{h}</height>\n"
            f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"
            + "".join(objects)
            + "</annotation>\n"
        )
        (folder / "Annotations" / f"{image_id}.xml").write_text(xml)
    _write_lists(folder, ids, test_fraction)
    return folder


def _write_lists(folder: Path, ids: list[str], test_fraction: float) -> None:
    """``test.txt``: every k-th image, ``test_fraction`` of them; ``trainval.txt``: the rest."""
    n = len(ids)
    n_test = int(round(n * test_fraction)) if n > 1 else 0
    test = set(ids[:: max(1, n // n_test)][:n_test]) if n_test else set()
    (folder / "ImageSets/Main/test.txt").write_text("".join(f"{i}\n" for i in ids if i in test))
    trainval = [i for i in ids if i not in test]
    (folder / "ImageSets/Main/trainval.txt").write_text("".join(f"{i}\n" for i in trainval))
