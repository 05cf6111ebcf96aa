"""A small synthetic dataset in the VOCdevkit layout, so the VOC code path runs without VOC.

Nothing here can download PASCAL VOC, so the VOC reader, the SSD300 command line and notebook 10
are exercised on data this module writes: ShapesDataset-style scenes of random sizes saved as JPEG,
with VOC XML annotations (1-based pixel corners, ``difficult`` and ``truncated`` marks) and the
``ImageSets/Main`` lists, in ``root/VOC<year>/``.

Paper: §3.1 (the VOC2007 layout the paper's data comes in); the images themselves are ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ssd_edu.data.shapes import render_shapes
from ssd_edu.data.voc import VOC_CLASSES


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
) -> Path:
    """Write a small VOC-layout dataset of synthetic images: ``root/VOC<year>/...``.

    Images are ShapesDataset-style scenes of random width and height; the class of each object
    comes from its shape (shape ``k`` gets classes ``k, k + 4, k + 8, ...`` at random), so a model
    can learn something. Some objects are marked difficult, objects touching the border are marked
    truncated, and coordinates are written 1-based as VOC does.

    Args:
        root: the VOCdevkit folder to write into (created if needed).
        n: number of images; ids are ``000001`` .. (with ``year`` prefixed for years after 2007,
            so that a 07+12 union has distinct ids like the real one).
        seed: everything is a function of it.
        year: writes ``VOC<year>``.
        class_names: the class names written into the XMLs.
        size_range: image width and height are drawn from this range (pixels).
        max_objects: at most this many objects per image.
        difficult_fraction: chance that an object is marked difficult.
        test_fraction: share of images listed in ``test.txt``; the rest go to ``trainval.txt``.

    Returns:
        The ``VOC<year>`` folder written.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    folder = Path(root) / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, int(year)])
    n_kinds = 4
    ids = [f"{i + 1:06d}" if year == "2007" else f"{year}_{i + 1:06d}" for i in range(n)]
    for image_id in ids:
        w, h = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
        image, boxes, kinds = render_shapes(rng, w, h, max_objects, min_size=12.0)
        Image.fromarray(image).save(folder / "JPEGImages" / f"{image_id}.jpg", quality=90)
        objects = []
        for (c1, r1, c2, r2), kind in zip(boxes.tolist(), kinds.tolist()):
            choices = list(range(kind, len(class_names), n_kinds)) or [kind % len(class_names)]
            name = class_names[int(rng.choice(choices))]
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
    n_test = int(round(n * test_fraction)) if n > 1 else 0
    test = set(ids[:: max(1, n // n_test)][:n_test]) if n_test else set()
    (folder / "ImageSets/Main/test.txt").write_text("".join(f"{i}\n" for i in ids if i in test))
    trainval = [i for i in ids if i not in test]
    (folder / "ImageSets/Main/trainval.txt").write_text("".join(f"{i}\n" for i in trainval))
    return folder
