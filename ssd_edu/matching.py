"""Matching: which default boxes are responsible for which object, and what they should predict.

Training needs a target for every default box. SSD decides it in two steps (§2.2, "Matching
strategy"), both measured by jaccard overlap (IoU, :func:`ssd_edu.boxes.box_iou`):

1. **Forced (bipartite) step.** Every object gets one default box of its own: the one that
   overlaps it most. Without this a small object, which no default box overlaps by 0.5, would
   never be trained on. When two objects want the same default box we pair greedily, as the
   released Caffe code does: repeatedly take the (object, default box) pair with the highest
   overlap among the objects not yet paired and the default boxes not yet taken. Ties go to the
   lower object index, then the lower default-box index; a pair needs overlap > 0.
2. **Threshold step.** Every other default box takes the object it overlaps most (ties: the lower
   object index) if that overlap is ``>= iou_threshold``. The paper says "higher than 0.5"; the two
   readings differ only at exact equality, and the common implementations count equality as a
   match, so we do too.

A default box matched to no object is background. Positives get the offsets of eq. 2
(:func:`ssd_edu.boxes.encode`, variances 0.1 and 0.2) and the object's class; background gets
class 0 and location target 0 (finite, and ignored by the loss).

Formats (docs/design.md): ground truth ``gt_boxes`` ``[G, 4]`` xyxy fractions, ``gt_labels``
``[G]`` integers in 1..C; default boxes ``priors`` ``[P, 4]`` cxcywh fractions. A batch is a list
of per-image ground truths (any count, zero included). The fast form, which pads a batch and
matches it with one batched IoU, is :func:`ssd_edu.fast.matching.assign_targets_batch`.

Paper: §2.2 "Matching strategy" and eq. 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes, box_iou, cxcywh_to_xyxy, encode


def match(gt_boxes: Tensor, priors: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Match default boxes to the ground truth of one image: forced step, then threshold step.

    Args:
        gt_boxes: ``[G, 4]`` xyxy fractions, non-degenerate (``x2 > x1``, ``y2 > y1``); G may be 0.
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: overlap at or above which a default box takes an object (0.5 in the paper).

    Returns:
        ``[P]`` long on ``priors``' device: for each default box the index of its object in
        ``gt_boxes``, or -1 for background.

    Paper: §2.2 "Matching strategy".
    """
    _check_settings(priors, iou_threshold)
    _check_ground_truth(gt_boxes, None, priors)
    gt = gt_boxes.to(priors.device, priors.dtype)
    num_priors = priors.shape[0]
    overlaps = box_iou(gt, cxcywh_to_xyxy(priors))  # [G, P]

    # 1. forced step: the best remaining (object, default box) pair, until every object has one.
    # argmax over the flattened matrix returns the first maximum in row-major order: the lower
    # object index, then the lower default-box index, wins a tie.
    forced = []  # (object, default box) pairs
    free = overlaps.clone()  # [G, P]; -1 marks a paired object or a taken default box
    for _ in range(len(gt)):
        g, p = divmod(int(free.argmax()), num_priors)
        if not free[g, p] > 0:  # no free default box overlaps any object left
            break
        forced.append((g, p))
        free[g, :] = -1
        free[:, p] = -1

    # 2. threshold step: every default box takes its best object if the overlap is high enough
    matches = torch.full((num_priors,), -1, dtype=torch.long, device=priors.device)  # [P]
    if len(gt):
        best_iou, best_gt = overlaps.max(dim=0)  # [P]; ties: the first (lower) object index
        matches = torch.where(best_iou >= iou_threshold, best_gt, matches)
    # the forced pairs override: their default boxes are distinct, so they never clash
    for g, p in forced:
        matches[p] = g
    return matches


def assign_targets(
    gt_boxes: Tensor, gt_labels: Tensor, priors: Tensor, iou_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Training targets of one image: offsets and classes for every default box.

    Args:
        gt_boxes: ``[G, 4]`` xyxy fractions, non-degenerate; G may be 0.
        gt_labels: ``[G]`` integer classes in 1..C (0 is background, never an object).
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: as in :func:`match`.

    Returns:
        ``loc_t`` ``[P, 4]``: encoded offsets (eq. 2, variances 0.1 and 0.2) of each positive's
        object, 0 for background; ``cls_t`` ``[P]`` long: the object's class, 0 for background.
        Both on ``priors``' device, ``loc_t`` in its dtype.

    Paper: §2.2 "Matching strategy" and eq. 2.
    """
    _check_settings(priors, iou_threshold)
    _check_ground_truth(gt_boxes, gt_labels, priors)
    return _targets(gt_boxes, gt_labels, priors, iou_threshold)


def assign_targets_batch(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    priors: Tensor,
    iou_threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Training targets of a batch: :func:`assign_targets` for each image, stacked.

    Args:
        gt_boxes: list of B tensors ``[G_i, 4]`` xyxy fractions (``G_i`` may be 0).
        gt_labels: list of B tensors ``[G_i]`` integer classes in 1..C.
        priors: ``[P, 4]`` cxcywh default boxes; the outputs live on its device.
        iou_threshold: as in :func:`match`.

    Returns:
        ``loc_t`` ``[B, P, 4]`` offsets (0 for background) and ``cls_t`` ``[B, P]`` long classes
        (0 for background).

    Paper: §2.2 "Matching strategy" and eq. 2.
    """
    _check_settings(priors, iou_threshold)
    _check_batch(gt_boxes, gt_labels)
    num_priors = priors.shape[0]
    loc_t = priors.new_zeros(len(gt_boxes), num_priors, 4)  # [B, P, 4]
    cls_t = torch.zeros(len(gt_boxes), num_priors, dtype=torch.long, device=priors.device)
    for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
        _check_ground_truth(boxes, labels, priors, image=b)
        loc_t[b], cls_t[b] = _targets(boxes, labels, priors, iou_threshold)
    return loc_t, cls_t


def _targets(
    gt_boxes: Tensor, gt_labels: Tensor, priors: Tensor, iou_threshold: float
) -> tuple[Tensor, Tensor]:
    """``(loc_t [P, 4], cls_t [P])`` of one image whose inputs are already checked."""
    matches = match(gt_boxes, priors, iou_threshold)  # [P]
    positive = matches >= 0  # [P]
    if len(gt_boxes) == 0:
        return priors.new_zeros(priors.shape), torch.zeros_like(matches)
    index = matches.clamp(min=0)  # [P]; background reads object 0 and is masked below
    matched = gt_boxes.to(priors.device, priors.dtype)[index]  # [P, 4]
    loc_t = torch.where(positive[:, None], encode(matched, priors), 0.0)  # [P, 4]
    cls_t = torch.where(positive, gt_labels.to(priors.device, torch.long)[index], 0)  # [P]
    return loc_t, cls_t


# ---------------------------------------------------------------- input checks (shared by fast/)


class BadGroundTruth(ValueError):
    """A box or label that cannot be matched; ``image`` is its place in the batch (or None)."""

    def __init__(self, message: str, image: int | None) -> None:
        super().__init__(message)
        self.image = image


def _check_settings(priors: Tensor, iou_threshold: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    _check_boxes("priors", priors, ndim=2)
    if priors.shape[0] == 0:
        raise ValueError("priors must hold at least one default box, got shape [0, 4]")


def _check_batch(gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor] | None) -> None:
    """Raise unless the batch is a list of per-image tensors (labels as many as boxes)."""
    for name, value in (("gt_boxes", gt_boxes), ("gt_labels", gt_labels)):
        if value is not None and (isinstance(value, Tensor) or not isinstance(value, Sequence)):
            raise TypeError(
                f"{name} must be a list of [G_i{', 4' if name == 'gt_boxes' else ''}] tensors "
                f"(one per image), got {type(value).__name__}"
            )
    if gt_labels is not None and len(gt_labels) != len(gt_boxes):
        raise ValueError(f"gt_labels has {len(gt_labels)} images but gt_boxes has {len(gt_boxes)}")


def _check_ground_truth(
    boxes: Tensor, labels: Tensor | None, priors: Tensor, image: int | None = None
) -> None:
    """Raise a clear error unless one image's ground truth is well formed.

    Boxes must be ``[G, 4]`` floats, finite and non-degenerate in ``priors``' dtype (the one they
    are matched in); labels (when given) ``[G]`` integers ``>= 1``. The message names the image
    (``gt_boxes[b]``) when ``image`` is given and the object (``gt_boxes[b][g]``) with its values.
    """
    _check_gt_shapes(boxes, labels, image)
    _check_gt_values(boxes.to(priors.dtype), labels, image)


def _check_gt_shapes(boxes: Tensor, labels: Tensor | None, image: int | None) -> None:
    """Shapes and dtypes only: metadata, no need to read the values (no GPU sync)."""
    at = "" if image is None else f"[{image}]"
    _check_boxes(f"gt_boxes{at}", boxes, ndim=2)
    if labels is None:
        return
    if not isinstance(labels, Tensor):
        raise TypeError(f"gt_labels{at} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"gt_labels{at} must have shape [{boxes.shape[0]}] to line up with gt_boxes{at} of "
            f"shape {list(boxes.shape)}, got {list(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"gt_labels{at} must hold integers, got dtype {labels.dtype}")


def _check_gt_values(boxes: Tensor, labels: Tensor | None, image: int | None) -> None:
    """Finite, non-degenerate boxes and labels >= 1; the message shows the first bad object."""
    at = "" if image is None else f"[{image}]"
    bad = ~torch.isfinite(boxes).all(dim=1)  # [G]
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])  # [G]
    problems = ((bad, "is not finite"), (degenerate, "is degenerate: need x2 > x1, y2 > y1"))
    for mask, what in problems:
        if mask.any():
            g = int(torch.nonzero(mask)[0])
            values = ", ".join(f"{v:.4g}" for v in boxes[g].tolist())
            raise BadGroundTruth(f"gt_boxes{at}[{g}] = [{values}] {what}", image)
    below = labels < 1 if labels is not None else torch.zeros(0, dtype=torch.bool)  # [G]
    if below.any():
        g = int(torch.nonzero(below)[0])
        raise BadGroundTruth(
            f"gt_labels{at}[{g}] = {int(labels[g])}: object labels must be >= 1 "
            f"(label 0 is background and is never given as an object)",
            image,
        )
