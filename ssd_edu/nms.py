"""Non-maximum suppression and SSD's detection output: from 8732 scored boxes to a short list.

A trained SSD fires many default boxes around each object, so the decoded boxes come in clusters
of near-duplicates. Greedy non-maximum suppression keeps the best box of each cluster: visit the
boxes from the highest score down; keep a box unless it overlaps an already kept box by more than
the threshold,

    keep(j)  <=>  J(b_i, b_j) <= iou_threshold  for every kept box i ranked before j

where ``J`` is the jaccard overlap of :func:`ssd_edu.boxes.box_iou`. Suppressed boxes suppress
nothing. At test time SSD does this per class (a person may stand in front of a car), after
dropping class scores of 0.01 and below and keeping the 400 best boxes per class, then keeps the
200 best detections of the image.

Tie rules (docs/design.md): equal scores rank by index, the lower first; an overlap exactly equal
to the threshold does not suppress. The overlaps are compared in float64, so that a threshold
such as 1/3 is not rounded to the boxes' float32 first.

The fast forms, identical in result (tested): :mod:`ssd_edu.fast.nms` decides a block of boxes
at a time instead of one, and :mod:`ssd_edu.fast.detect` scores every class of every image at
once.

Formats: boxes are ``[N, 4]`` xyxy (fractions or pixels, any consistent unit); scores ``[N]``;
model outputs ``loc`` ``[B, P, 4]`` and ``logits`` ``[B, P, C]`` with class 0 the background.

Paper: §2.1 (NMS turns the default boxes' predictions into the final detections) and §3.7
"Inference time" (confidence filter 0.01, NMS at jaccard overlap 0.45 per class, top 200 per
image). The 400 candidates per class are not in the paper; they come from the released models'
configuration.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes, box_iou, decode


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` confidences, same device as ``boxes``.
        iou_threshold: overlap in ``[0, 1]`` above which the lower-scored box is dropped.

    Returns:
        ``[K]`` long indices into ``boxes`` of the kept boxes, highest score first; an empty long
        tensor on ``boxes.device`` when ``N == 0``.

    Paper: §2.1 and §3.7 (greedy NMS, jaccard overlap 0.45 at test time).
    """
    _check_scores(boxes, scores)
    _check_threshold("iou_threshold", iou_threshold)
    order = torch.sort(scores, descending=True, stable=True).indices  # ties: lower index first
    overlaps = box_iou(boxes, boxes).double() > iou_threshold  # [N, N] would i suppress j?
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)  # [N]
    kept = []
    for i in order.tolist():  # best first
        if suppressed[i]:
            continue  # a suppressed box suppresses nothing
        kept.append(i)
        suppressed |= overlaps[i]  # every box i overlaps too much, later ones included
    return torch.tensor(kept, dtype=torch.long, device=boxes.device)


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS in which boxes suppress only boxes of the same class.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` confidences.
        classes: ``[N]`` integer class of each box.
        iou_threshold: overlap in ``[0, 1]`` above which the lower-scored box is dropped.

    Returns:
        ``[K]`` long indices into ``boxes``, highest score first (equal scores: lower index first).

    Paper: §3.7 (NMS per class).
    """
    _check_scores(boxes, scores)
    _check_threshold("iou_threshold", iou_threshold)
    _check_classes(boxes, scores, classes)
    kept = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in classes.unique().tolist():  # one class at a time: classes never suppress each other
        members = torch.nonzero(classes == c).squeeze(1)  # [N_c]
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    merged = torch.cat(kept).sort().values  # index order, so that equal scores keep it
    return merged[torch.sort(scores[merged], descending=True, stable=True).indices]


def score_candidates(
    loc: Tensor,
    logits: Tensor,
    priors: Tensor,
    score_threshold: float = 0.01,
    candidates_per_class: int = 400,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The first half of :func:`detect`: decoded, scored boxes per class, before any NMS.

    For every image: decode the offsets, softmax over classes, drop the background; for each object
    class keep the ``candidates_per_class`` best-scored default boxes (equal scores: the lower
    default-box index first) whose score is greater than ``score_threshold``. A default box can
    appear once per class.

    Args:
        loc: ``[B, P, 4]`` predicted offsets (default-box order).
        logits: ``[B, P, C]`` class scores before softmax; class 0 is the background.
        priors: ``[P, 4]`` cxcywh default boxes.
        score_threshold: class scores at or below this are dropped (paper: 0.01).
        candidates_per_class: boxes per class kept (released models: 400).

    Returns:
        One ``(boxes [M, 4] xyxy, scores [M], labels [M] long in 1..C-1)`` per image, grouped by
        class (label 1 first) and by score within a class, highest first; ``M = 0`` when nothing
        passes.

    Paper: §3.7 (the 0.01 confidence filter before NMS).
    """
    _check_outputs(loc, logits, priors, score_threshold, candidates_per_class)
    results = []
    for b in range(loc.shape[0]):
        boxes = decode(loc[b], priors)  # [P, 4] xyxy
        probs = torch.softmax(logits[b], dim=-1)  # [P, C]
        found = ([], [], [])
        for c in range(1, probs.shape[1]):
            best = torch.sort(probs[:, c], descending=True, stable=True).indices
            best = best[:candidates_per_class]  # [top] default-box indices, best first
            best = best[probs[best, c] > score_threshold]  # [M_c]
            for part, values in zip(found, (boxes[best], probs[best, c], torch.full_like(best, c))):
                part.append(values)
        cand_boxes, cand_scores, cand_labels = (torch.cat(part) for part in found)
        results.append((cand_boxes.reshape(-1, 4), cand_scores, cand_labels))
    return results


def detect(
    loc: Tensor,
    logits: Tensor,
    priors: Tensor,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
    candidates_per_class: int = 400,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """SSD's detection output: decode, score, per-class NMS, best ``top_k`` per image.

    For every image: :func:`score_candidates`, then :func:`batched_nms` over its candidates, then
    the ``top_k`` best survivors of all classes (equal scores: in class order).

    Args:
        loc: ``[B, P, 4]`` predicted offsets (default-box order).
        logits: ``[B, P, C]`` class scores before softmax; class 0 is the background.
        priors: ``[P, 4]`` cxcywh default boxes.
        score_threshold: class scores at or below this are dropped (paper: 0.01).
        iou_threshold: NMS overlap threshold (paper: 0.45).
        top_k: detections kept per image (paper: 200).
        candidates_per_class: boxes per class that enter NMS (released models: 400).

    Returns:
        One ``(boxes [K, 4] xyxy, scores [K], labels [K] long in 1..C-1)`` per image, highest score
        first, ``K <= top_k``; ``K = 0`` (tensors of shapes ``[0, 4]``, ``[0]``, ``[0]``) for an
        image with no detection.

    Paper: §3.7 (0.01 filter, NMS at 0.45 per class, top 200 per image).
    """
    _check_threshold("iou_threshold", iou_threshold)
    _check_positive_int("top_k", top_k)
    results = []
    for boxes, scores, labels in score_candidates(
        loc, logits, priors, score_threshold, candidates_per_class
    ):
        keep = batched_nms(boxes, scores, labels, iou_threshold)[:top_k]  # [K]
        results.append((boxes[keep], scores[keep], labels[keep]))
    return results


# ---------------------------------------------------------------- input checks (shared by fast/)


def _check_threshold(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_scores(boxes: Tensor, scores: Tensor) -> None:
    _check_boxes("boxes", boxes, ndim=2)
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores must have shape [N] with N = {boxes.shape[0]} (one per box), "
            f"got {list(scores.shape)}"
        )
    if scores.device != boxes.device:
        raise ValueError(f"scores is on {scores.device} but boxes is on {boxes.device}")
    # a NaN sorts above every number: it would be kept first and rank as the best detection
    for name, t in (("scores", scores), ("boxes", boxes)):
        if torch.isnan(t).any():
            first = int(torch.nonzero(torch.isnan(t))[0, 0])  # the row (box) holding the NaN
            raise ValueError(f"{name}[{first}] is NaN: NMS needs numbers")


def _check_classes(boxes: Tensor, scores: Tensor, classes: Tensor) -> None:
    if not isinstance(classes, Tensor) or classes.shape != scores.shape:
        got = list(classes.shape) if isinstance(classes, Tensor) else type(classes).__name__
        raise ValueError(f"classes must have shape [N] with N = {boxes.shape[0]}, got {got}")
    if classes.is_floating_point() or classes.dtype == torch.bool:
        raise TypeError(f"classes must be an integer tensor, got dtype {classes.dtype}")
    if classes.device != boxes.device:
        raise ValueError(f"classes is on {classes.device} but boxes is on {boxes.device}")


def _check_outputs(
    loc: Tensor, logits: Tensor, priors: Tensor, score_threshold: float, candidates_per_class: int
) -> None:
    _check_boxes("loc", loc, ndim=3)
    _check_boxes("priors", priors, ndim=2)
    if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != loc.shape[:2]:
        got = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"logits must have shape [B, P, C] with [B, P] = {list(loc.shape[:2])}, got {got}"
        )
    if logits.shape[2] < 2:
        raise ValueError(
            f"logits needs C >= 2 classes (background + objects), got {logits.shape[2]}"
        )
    if priors.shape[0] != loc.shape[1]:
        raise ValueError(
            f"priors must have shape [P, 4] with P = {loc.shape[1]}, got {list(priors.shape)}"
        )
    _check_threshold("score_threshold", score_threshold)
    _check_positive_int("candidates_per_class", candidates_per_class)
    for name, t in (("loc", loc), ("logits", logits)):
        # one reduction first (a sum is NaN when any term is), the search only when it is
        if torch.isnan(t.sum()) and torch.isnan(t).any():
            b, p = (int(i) for i in torch.nonzero(torch.isnan(t).flatten(2).any(2))[0])
            raise ValueError(
                f"{name} of image {b} is NaN at default box {p}: the network's output is broken "
                f"(a diverged model, or NaN weights)"
            )
