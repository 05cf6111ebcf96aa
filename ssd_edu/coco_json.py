"""COCO's two JSON formats, written from the package's tensors: results lists and dataset files.

pycocotools and most detection tools read two formats (cocodataset.org, "Data format" and
"Results format"):

- a **dataset** (ground truth): ``{"images": [{"id", "file_name", "width", "height"}],
  "annotations": [{"id", "image_id", "category_id", "bbox", "area", "iscrowd"}],
  "categories": [{"id", "name"}]}``;
- **results** (detections): a list of ``{"image_id", "category_id", "bbox", "score"}``.

Boxes there are ``[x, y, w, h]`` in pixels (the top-left corner, the width and the height); ours
are ``[N, 4]`` xyxy fractions of the image (docs/design.md). :func:`coco_boxes` converts one way;
:class:`ssd_edu.data.COCODetection` reads a dataset file back. Label ``l`` (in ``1..C``) is written
as ``category_ids[l - 1]``; image ``i`` (the position in the per-image lists) as ``image_ids[i]``.

Paper: not in the paper; §3.4's COCO numbers come from COCO's evaluation server, which reads these
files. Writing them lets a student hand our detections to the same tools (pycocotools, the server).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes
from ssd_edu.eval_result import _check_labels, _per_image


def coco_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """Boxes as COCO writes them: xyxy fractions to ``[x, y, w, h]`` in pixels.

    The corners are scaled to pixels first (float64) and the size is their difference, so a box
    from pixel 10 to pixel 30 is 20 wide, whatever the image size.

    Args:
        boxes: ``[N, 4]`` xyxy, fractions of the image.
        width, height: the image's size in pixels.

    Returns:
        ``[N, 4]`` float64 ``[x, y, w, h]`` in pixels.

    Paper: not in the paper (COCO's box form; the paper's boxes are corners or centre and size).
    """
    _check_boxes("boxes", boxes, ndim=2)
    scale = torch.tensor([width, height, width, height], dtype=torch.float64, device=boxes.device)
    corners = boxes.to(torch.float64) * scale  # [N, 4] pixels
    return torch.cat((corners[:, :2], corners[:, 2:] - corners[:, :2]), dim=1)


def check_image_sizes(image_sizes: Sequence, n: int) -> list[tuple[float, float]]:
    """``image_sizes`` as ``n`` pairs ``(width, height)`` of positive finite pixels, or an error
    naming the entry."""
    if len(image_sizes) != n:
        raise ValueError(
            f"image_sizes must have one (width, height) per image ({n}), got {len(image_sizes)}"
        )
    out = []
    for i, size in enumerate(image_sizes):
        try:
            width, height = (float(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_sizes[{i}] must be (width, height) in pixels, got {size!r}"
            ) from None
        if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
            raise ValueError(f"image_sizes[{i}] must be positive and finite, got {size!r}")
        out.append((width, height))
    return out


def _ids(name: str, ids: Sequence, n: int | None) -> list[int]:
    """Distinct integer ids (COCO's ids are integers), ``n`` of them when ``n`` is given."""
    if n is not None and len(ids) != n:
        raise ValueError(f"{name} must have one id per image ({n}), got {len(ids)}")
    out, seen = [], {}
    for k, value in enumerate(ids):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(
                f"{name}[{k}] must be an integer (COCO's ids are), got {value!r}"
            ) from None
        if value in seen:
            raise ValueError(f"{name}[{k}] is {value}, already {name}[{seen[value]}]")
        seen[value] = k
        out.append(value)
    return out


def _check_finite(where: str, *tensors: Tensor) -> None:
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: boxes and scores must be finite (JSON has no NaN or inf)")


def _pixels(value: float) -> int | float:
    """A size as COCO files write it: an integer when it is one."""
    return int(value) if float(value).is_integer() else float(value)


def detections_to_coco_json(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    image_ids: Sequence[int],
    category_ids: Sequence[int],
    image_sizes: Sequence[tuple[float, float]],
) -> list[dict]:
    """Detections in COCO's results format, e.g. for ``COCO.loadRes`` or ``json.dump``.

    Args:
        detections: per image, ``(boxes [K, 4] xyxy fractions, scores [K], labels [K] in 1..C)``.
        image_ids: per image, its COCO image id.
        category_ids: the COCO category id of each label (``category_ids[l - 1]`` for label ``l``).
        image_sizes: per image, ``(width, height)`` in pixels.

    Returns:
        A list of ``{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}``, image by
        image and, inside an image, in the detections' order (pycocotools breaks ties in score by
        this order).

    Paper: not in the paper (COCO's results format).
    """
    dets = _per_image(detections, "detections", ("boxes", "scores", "labels"))
    ids, cats = _ids("image_ids", image_ids, len(dets)), _ids("category_ids", category_ids, None)
    _check_labels("detections", [labels for *_, labels in dets], len(cats), "len(category_ids)")
    sizes = check_image_sizes(image_sizes, len(dets))
    out = []
    for i, (boxes, scores, labels) in enumerate(dets):
        _check_finite(f"detections[{i}]", boxes, scores)
        for box, score, label in zip(
            coco_boxes(boxes, *sizes[i]).tolist(), scores.tolist(), labels.tolist()
        ):
            out.append(
                {"image_id": ids[i], "category_id": cats[label - 1], "bbox": box, "score": score}
            )
    return out


def ground_truths_to_coco_json(
    ground_truths: Sequence[tuple[Tensor, ...]],
    image_ids: Sequence[int],
    category_ids: Sequence[int],
    image_sizes: Sequence[tuple[float, float]],
    class_names: Sequence[str] | None = None,
    file_names: Sequence[str] | None = None,
) -> dict:
    """Ground truth as a COCO dataset file (the inverse of :class:`ssd_edu.data.COCODetection`).

    Each annotation's ``area`` is its box's ``w h`` in pixels, the area :func:`ssd_edu.coco_eval.
    coco_eval` uses (COCO's own files give the segmentation mask's); annotation ids count from 1
    (pycocotools takes a match to id 0 for no match).

    Args:
        ground_truths: per image, ``(boxes [G, 4] xyxy fractions, labels [G] in 1..C,
            iscrowd [G] bool)``; a 2-tuple means no crowd regions.
        image_ids, category_ids, image_sizes: as for :func:`detections_to_coco_json`.
        class_names: the category names (default: the ids as text).
        file_names: per image, its file (default: ``"<image id>.jpg"``).

    Returns:
        ``{"images", "annotations", "categories"}`` as lists of dicts.

    Paper: not in the paper (COCO's dataset format).
    """
    gts = _per_image(ground_truths, "ground_truths", ("boxes", "labels", "iscrowd"))
    ids, cats = _ids("image_ids", image_ids, len(gts)), _ids("category_ids", category_ids, None)
    _check_labels("ground_truths", [lab for _, lab, _ in gts], len(cats), "len(category_ids)")
    sizes = check_image_sizes(image_sizes, len(gts))
    names = [str(c) for c in cats] if class_names is None else list(class_names)
    if len(names) != len(cats):
        raise ValueError(f"class_names has {len(names)} names for {len(cats)} category_ids")
    files = [f"{i}.jpg" for i in ids] if file_names is None else list(file_names)
    if len(files) != len(ids):
        raise ValueError(f"file_names must have one name per image ({len(ids)}), got {len(files)}")
    images, annotations = [], []
    for i, (boxes, labels, crowd) in enumerate(gts):
        width, height = sizes[i]
        _check_finite(f"ground_truths[{i}]", boxes)
        images.append(
            {
                "id": ids[i],
                "file_name": files[i],
                "width": _pixels(width),
                "height": _pixels(height),
            }
        )
        for box, label, is_crowd in zip(
            coco_boxes(boxes, width, height).tolist(), labels.tolist(), crowd.tolist()
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": ids[i],
                    "category_id": cats[label - 1],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(bool(is_crowd)),
                }
            )
    categories = [{"id": c, "name": name} for c, name in zip(cats, names)]
    return {"images": images, "annotations": annotations, "categories": categories}
