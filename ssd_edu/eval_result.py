"""What an evaluation takes in and gives back: input checks, the precision envelope, EvalResult.

Both forms of the VOC evaluation (the devkit's loop in :mod:`ssd_edu.evaluate` and the vectorised
one in :mod:`ssd_edu.fast.evaluate`) read their inputs through :func:`check_inputs` and report an
:class:`EvalResult`, so the two accept and reject the same data and return the same record. COCO's
own evaluation (:mod:`ssd_edu.coco_eval`) reads its inputs through :func:`check_inputs` too, and
samples the same precision envelope (:func:`interpolated_precision`) at COCO's 101 recall levels;
the grids live here so that both evaluation modules can import them without importing each other.

Formats (docs/design.md): detections per image ``(boxes [K, 4] xyxy, scores [K], labels [K] in
1..C)``; ground truths per image ``(boxes [G, 4], labels [G] in 1..C, difficult [G] bool)``, a
2-tuple meaning nothing is difficult (for COCO the third part is ``iscrowd``).

Paper: §3 (VOC2007 test mAP per class).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes


@dataclass
class EvalResult:
    """What an evaluation returns: per-class AP, the mAP and the curves behind them.

    Per-class entries are indexed ``c = label - 1`` (label ``l`` is ``class_names[l - 1]``).

    Attributes:
        class_names: the C object class names.
        ap: ``[C]`` float64 AP per class; NaN for a class with no non-difficult object.
        mean_ap: mean of ``ap`` over the classes where it is defined (NaN if none is).
        recall, precision: per class, ``[K_c]`` points after each counted detection, score order
            (ignored detections add no point; recall is NaN when the class has no object).
        scores: per class, ``[K_c]`` the score of the detection at each point (its threshold).
        tp_flags: per class, ``[K_c]`` bool, True where that detection is a true positive.
        num_positives: ``[C]`` non-difficult objects per class.
        true_positives, false_positives, ignored: ``[C]`` counts of detections per class.
        iou_threshold, use_07_metric: the settings used.
        coco_ap: ``[C]`` COCO-style AP per class (IoU 0.50:0.95), when asked for (``coco=True``).
        coco_map: their mean, or None when not asked for.
    """

    class_names: list[str]
    ap: Tensor
    mean_ap: float
    recall: list[Tensor]
    precision: list[Tensor]
    scores: list[Tensor]
    tp_flags: list[Tensor]
    num_positives: Tensor
    true_positives: Tensor
    false_positives: Tensor
    ignored: Tensor
    iou_threshold: float
    use_07_metric: bool
    coco_ap: Tensor | None = None
    coco_map: float | None = field(default=None)

    def per_class(self) -> dict[str, float]:
        """``{class name: AP}``."""
        return {name: float(a) for name, a in zip(self.class_names, self.ap)}

    def table(self) -> str:
        """A plain-text table: class, AP, objects, TP, FP, ignored; then the mAP."""
        width = max(len("mAP"), *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  {'AP':>6}  {'n_pos':>6}  {'TP':>6}  {'FP':>7}  {'ign':>5}"]
        for c, name in enumerate(self.class_names):
            lines.append(
                f"{name:<{width}}  {float(self.ap[c]):6.4f}  {int(self.num_positives[c]):6d}  "
                f"{int(self.true_positives[c]):6d}  {int(self.false_positives[c]):7d}  "
                f"{int(self.ignored[c]):5d}"
            )
        form = "11-point" if self.use_07_metric else "area"
        lines.append(f"{'mAP':<{width}}  {self.mean_ap:6.4f}  ({form}, IoU > {self.iou_threshold})")
        if self.coco_map is not None:
            lines.append(f"COCO-style AP@[.50:.95] = {self.coco_map:.4f}")
        return "\n".join(lines)


def nanmean(values: Tensor) -> float:
    """Mean over the entries that are not NaN; NaN when every entry is NaN."""
    defined = values[~values.isnan()]
    return float(defined.mean()) if len(defined) else math.nan


# COCO's grids, built with numpy.linspace exactly as pycocotools builds them, so the floats agree
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.5, 0.95, 10).tolist())
COCO_RECALL_LEVELS: tuple[float, ...] = tuple(np.linspace(0.0, 1.0, 101).tolist())


def interpolated_precision(recall, precision, recall_levels) -> tuple[Tensor, Tensor]:
    """The precision envelope ``p_interp(r) = max_{r' >= r} p(r')``, at the points and at levels.

    Args:
        recall: ``[K]`` recall after each counted detection, in score order (non-decreasing).
        precision: ``[K]`` precision after each counted detection.
        recall_levels: ``[L]`` recall levels to sample (``i / 10`` for VOC07, 101 for COCO).

    Returns:
        ``envelope`` ``[K]`` float64 (best precision at this point or any later one) and
        ``sampled`` ``[L]`` float64 (``p_interp`` at each level; 0 where no point reaches it).

    Paper: §3 (VOC2007 11-point AP reads this envelope; COCO's 101-point AP reads it too).
    """
    recall, precision = as_1d("recall", recall), as_1d("precision", precision)
    levels = as_1d("recall_levels", recall_levels)
    envelope = precision.flip(0).cummax(0).values.flip(0)  # [K] best precision from here on
    # recall is non-decreasing, so the first point at or past a level sees every later point
    first = torch.searchsorted(recall, levels, side="left")  # [L]
    padded = torch.cat((envelope, envelope.new_zeros(1)))  # index K means "no such point": 0
    return envelope, padded[first]  # [K], [L]


def as_1d(name: str, values) -> Tensor:
    """``values`` (tensor, array or sequence) as a 1-D float64 CPU tensor, or a clear error."""
    if isinstance(values, Tensor):
        t = values.detach().to("cpu", torch.float64)
    else:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {list(t.shape)}")
    return t


def check_inputs(
    detections: Sequence,
    ground_truths: Sequence,
    class_names: Sequence[str] | None,
    iou_threshold: float = 0.5,
    flag: str = "difficult",
) -> tuple[list[tuple[Tensor, Tensor, Tensor]], list[tuple[Tensor, Tensor, Tensor]]]:
    """Validate an evaluation's inputs; shapes image by image, values over the whole data set.

    Args:
        detections, ground_truths: per image, as the module docstring says.
        class_names: the classes; labels must lie in ``1..len(class_names)``. ``None``: any label
            ``>= 1`` (COCO's evaluation takes the classes it finds).
        iou_threshold: checked to lie in [0, 1).
        flag: the name of the ground truth's third part, for messages (``"iscrowd"`` for COCO).

    Returns:
        ``(detections, ground_truths)``: per image ``(boxes, scores, labels)`` and
        ``(boxes, labels, difficult)`` as given, a missing ``difficult`` filled with False.

    Raises:
        ValueError, TypeError: naming the list, the image and the part that is wrong.
    """
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"detections and ground_truths must have one entry per image, got {len(detections)} "
            f"and {len(ground_truths)}"
        )
    if class_names is not None and len(class_names) == 0:
        raise ValueError("class_names must name at least one object class, got []")
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1), got {iou_threshold}")
    dets = _per_image(detections, "detections", ("boxes", "scores", "labels"))
    gts = _per_image(ground_truths, "ground_truths", ("boxes", "labels", flag))
    num_classes = None if class_names is None else len(class_names)
    for name, items, parts in (("detections", dets, (2,)), ("ground_truths", gts, (1,))):
        _check_labels(name, [item[parts[0]] for item in items], num_classes)
    # a NaN score sorts above every number and a NaN box overlaps nothing: refuse both
    for name, items, parts in (
        ("detections", dets, ("boxes", "scores")),
        ("ground_truths", gts, ("boxes",)),
    ):
        for col, part in enumerate(parts):
            columns = [item[col] for item in items]
            if columns and torch.isnan(torch.cat(columns)).any():
                i = next(i for i, c in enumerate(columns) if torch.isnan(c).any())
                k = int(
                    torch.nonzero(torch.isnan(columns[i].reshape(len(columns[i]), -1)).any(1))[0]
                )
                raise ValueError(f"{name}[{i}] {part}[{k}] is NaN")
    return dets, gts


def as_float64(boxes: Tensor, pixel: bool) -> Tensor:
    """Boxes as float64 (the devkit's numpy precision); with ``pixel``, far corners moved out by
    one pixel, which turns the devkit's inclusive widths ``x2 - x1 + 1`` into plain ``x2 - x1``."""
    boxes = boxes.to(torch.float64)
    return boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0]) if pixel else boxes


def _check_labels(
    name: str, labels: list[Tensor], num_classes: int | None, bound: str = "len(class_names)"
) -> None:
    for lab in labels:
        if lab.is_floating_point() or lab.dtype == torch.bool:
            raise TypeError(f"{name} labels must be integers, got dtype {lab.dtype}")
    flat = torch.cat(labels) if labels else torch.zeros(0)
    if flat.numel() == 0:
        return
    low, high = int(flat.min()), int(flat.max())
    if num_classes is None and low < 1:
        raise ValueError(f"{name} labels must be >= 1 (0 is the background), got {low}")
    if num_classes is not None and (low < 1 or high > num_classes):
        raise ValueError(
            f"{name} labels must lie in 1..{num_classes} ({bound}), got values from {low} to {high}"
        )


def _per_image(items: Sequence, name: str, parts: tuple[str, ...]) -> list:
    """Each image's tuple, its parts' shapes checked (metadata only: nothing is read)."""
    if not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a list with one entry per image, got {type(items)}")
    out = []
    for i, item in enumerate(items):
        if len(item) != len(parts) and not (name == "ground_truths" and len(item) == 2):
            raise ValueError(
                f"{name}[{i}] must be a tuple ({', '.join(parts)}), got {len(item)} items"
            )
        boxes = item[0]
        _check_boxes(f"{name}[{i}] boxes", boxes, ndim=2)
        k = boxes.shape[0]
        row = [boxes]
        for j, part in enumerate(parts[1:], start=1):
            if j >= len(item):  # ground truth without a difficult flag: nothing is difficult
                t = torch.zeros(k, dtype=torch.bool, device=boxes.device)
            else:
                t = torch.as_tensor(item[j], device=boxes.device)
            if t.shape != (k,):
                raise ValueError(
                    f"{name}[{i}] {part} must have shape [{k}] (one per box), got {list(t.shape)}"
                )
            row.append(t)
        out.append(tuple(row))
    return out
