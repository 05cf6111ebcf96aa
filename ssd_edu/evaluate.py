"""Evaluation: PASCAL VOC average precision (AP) per class and its mean (mAP), plus COCO-style AP.

The paper reports VOC2007 test mAP at jaccard overlap 0.5 (section 3, Table 1). For one class:

1. Gather every detection of that class over the whole test set and sort them by score, highest
   first (ties keep input order: image index, then position in that image's list).
2. Walk down the list. A detection's *best-overlap* ground truth is the object of the same class in
   the same image that it overlaps most (the first such object on ties). If that overlap is
   ``> iou_threshold``:
   - the object is marked "difficult": the detection is *ignored* (neither right nor wrong);
   - the object is not yet taken: the detection is a *true positive* and takes it;
   - the object is already taken: *false positive* (a duplicate).
   Otherwise (no object of the class in the image, or overlap too small): *false positive*.
3. After ``k`` counted detections: ``precision = TP_k / (TP_k + FP_k)`` and
   ``recall = TP_k / n_pos`` where ``n_pos`` counts the class's objects that are *not* difficult.
4. AP summarises the precision-recall curve (:func:`average_precision`): VOC2007's 11-point form
   (the paper's numbers) or, from VOC2010 on, the area under the precision envelope.

This module is that rule as the devkit writes it, a loop over detections. The fast form, without
the loop and identical in result, is :func:`ssd_edu.fast.evaluate.evaluate_detections`.

Boxes are ``[N, 4]`` xyxy fractions (docs/design.md); overlap is plain area ratio. The devkit
measures integer pixel boxes (``x1..x2`` is ``x2 - x1 + 1`` pixels wide): ``pixel=True`` (boxes in
pixels) moves every box's far corner out by one pixel before measuring, which is the same.

Our conventions (tested): a class with no non-difficult object gets AP NaN, left out of the mAP
(the devkit would divide by zero); 11-point recall levels are exactly ``i / 10`` (the common
port's ``np.arange(0, 1.1, 0.1)`` makes a recall of exactly 0.3, 0.6 or 0.7 miss its level).

COCO-style AP (:func:`coco_map`): the mean over IoU thresholds 0.50, 0.55, ..., 0.95 of AP with
COCO's 101-point interpolation, keeping the VOC matching rule above. pycocotools instead matches
each detection to the best object *still free* at overlap ``>=`` threshold, keeps the 100 best
detections per image and class, and has crowd regions and area ranges: COCO's own twelve figures
(AP .. ARl) are :func:`ssd_edu.coco_eval.coco_eval`, handed on here as ``coco_eval``.

Paper: §3 (VOC2007 test, mAP at IoU 0.5); the rule is the PASCAL VOC devkit's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ssd_edu.boxes import box_iou
from ssd_edu.coco_eval import coco_eval  # noqa: F401  (COCO's own metric, handed on)
from ssd_edu.eval_result import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_LEVELS,
    EvalResult,
    as_1d,
    as_float64,
    check_inputs,
    interpolated_precision,
    nanmean,
)


def average_precision(recall, precision, use_07_metric: bool = True) -> float:
    """Average precision of one class from its precision-recall points.

    11-point form (VOC2007, the paper's numbers), with ``p_interp(r) = max_{r' >= r} p(r')``:

        AP = 1/11 * sum_{t in {0, 0.1, ..., 1}} p_interp(t)      (0 where no point reaches t)

    Area form (VOC2010 on): add points ``(0, 0)`` and ``(1, 0)``, replace each precision by the
    largest precision at equal or higher recall (the envelope), and sum
    ``(r_{k+1} - r_k) * p_interp(r_{k+1})`` over the recall steps.

    Args:
        recall: ``[K]`` recall after each counted detection, in score order (non-decreasing).
        precision: ``[K]`` precision after each counted detection.
        use_07_metric: True for the 11-point form, False for the area form.

    Returns:
        AP in ``[0, 1]``; 0 when there are no points.

    Paper: §3 (VOC2007 test mAP); the metric is the PASCAL VOC devkit's.
    """
    recall, precision = as_1d("recall", recall), as_1d("precision", precision)
    if recall.shape != precision.shape:
        raise ValueError(
            f"recall and precision must have the same shape, got {list(recall.shape)} "
            f"and {list(precision.shape)}"
        )
    for name, t in (("recall", recall), ("precision", precision)):
        if t.numel() and not (bool((t >= 0).all()) and bool((t <= 1).all())):
            raise ValueError(f"{name} must lie in [0, 1], got values from {t.min()} to {t.max()}")
    if recall.numel() > 1 and bool((recall[1:] < recall[:-1]).any()):
        raise ValueError("recall must be non-decreasing (points in score order), got a decrease")
    if recall.numel() == 0:
        return 0.0
    if use_07_metric:
        levels = torch.arange(11, dtype=torch.float64) / 10  # exactly i / 10
        return float(interpolated_precision(recall, precision, levels)[1].mean())
    mrec = torch.cat((recall.new_zeros(1), recall, recall.new_ones(1)))  # [K + 2]
    mpre = torch.cat((precision.new_zeros(1), precision, precision.new_zeros(1)))  # [K + 2]
    envelope = mpre.flip(0).cummax(0).values.flip(0)  # [K + 2]
    # each recall step is weighted by the envelope at its right end; zero steps add nothing
    return float(((mrec[1:] - mrec[:-1]) * envelope[1:]).sum())


def evaluate_detections(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, ...]],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    use_07_metric: bool = True,
    pixel: bool = False,
    coco: bool = False,
) -> EvalResult:
    """PASCAL VOC evaluation of a detector's output over a data set (the module docstring's rule).

    Args:
        detections: per image, ``(boxes [K, 4] xyxy, scores [K], labels [K] in 1..C)``, e.g. the
            output of ``ssd_edu.nms.detect``. An image may have ``K = 0``.
        ground_truths: per image (same order), ``(boxes [G, 4] xyxy, labels [G] in 1..C,
            difficult [G] bool)``; a 2-tuple means nothing is difficult. ``G = 0`` is allowed.
        class_names: the C object class names (label ``l`` is ``class_names[l - 1]``).
        iou_threshold: a detection needs overlap strictly above this with its object (0.5 in VOC).
        use_07_metric: VOC2007 11-point AP (the paper's) if True, else the area form.
        pixel: boxes are in pixels with the devkit's inclusive convention (width ``x2 - x1 + 1``).
        coco: also compute COCO-style AP over IoU 0.50:0.95 (``coco_ap``, ``coco_map``): the VOC
            rule at ten thresholds, not COCO's own metric (that is :func:`coco_eval`).

    Returns:
        :class:`EvalResult` with per-class AP, mAP, PR points and counts.

    Paper: §3 (VOC2007 test, mAP at IoU 0.5); the rule is the PASCAL VOC devkit's.
    """
    dets, gts = check_inputs(detections, ground_truths, class_names, iou_threshold)
    # a loop over detections runs on the CPU; boxes in float64, as the devkit's numpy has them
    dets = [(as_float64(b, pixel).cpu(), s.cpu().double(), lab.cpu().long()) for b, s, lab in dets]
    gts = [(as_float64(b, pixel).cpu(), lab.cpu().long(), d.cpu().bool()) for b, lab, d in gts]
    difficult = [g_difficult.tolist() for _, _, g_difficult in gts]
    curves, coco_ap = [], []
    for c in range(1, len(class_names) + 1):
        npos = sum(int((g_labels[~g_diff] == c).sum()) for _, g_labels, g_diff in gts)
        found = _best_overlaps(c, dets, gts)  # the class's detections, best score first
        verdicts = _devkit_walk(found, difficult, iou_threshold)
        curves.append(_class_curve(npos, [score for score, *_ in found], verdicts))
        if coco:
            coco_ap.append(_coco_ap(found, difficult, npos))
    result = _result(class_names, curves, iou_threshold, use_07_metric)
    if coco:
        result.coco_ap = torch.tensor(coco_ap, dtype=torch.float64)  # [C]
        result.coco_map = nanmean(result.coco_ap)
    return result


def detection_verdicts(
    detections: tuple[Tensor, Tensor, Tensor],
    ground_truth: tuple[Tensor, ...],
    iou_threshold: float = 0.5,
) -> Tensor:
    """The rule's verdict on each detection of one image, in the detections' own order.

    An object can only be claimed from its own image, so these are the verdicts
    :func:`evaluate_detections` gives these detections in any data set, kept in input order.

    Args:
        detections: ``(boxes [K, 4] xyxy, scores [K], labels [K] in 1..C)`` of one image.
        ground_truth: ``(boxes [G, 4] xyxy, labels [G], difficult [G] bool)`` of that image; a
            2-tuple means nothing is difficult.
        iou_threshold: a detection needs overlap strictly above this with its object.

    Returns:
        ``[K]`` long: 1 true positive, 0 false positive, -1 ignored (best object difficult).

    Paper: §3 (a detection counts at jaccard overlap 0.5); the rule is the PASCAL VOC devkit's.
    """
    d_boxes, d_scores, d_labels = (t.detach().cpu() for t in detections)
    g_boxes, g_labels, *rest = (t.detach().cpu() for t in ground_truth)
    g_difficult = rest[0].bool() if rest else torch.zeros(len(g_labels), dtype=torch.bool)
    dets = [(d_boxes.double(), d_scores.double(), d_labels)]
    gts = [(g_boxes.double(), g_labels.long(), g_difficult)]
    out = torch.zeros(len(d_scores), dtype=torch.long)
    for c in d_labels.unique().tolist():
        mine = torch.nonzero(d_labels == c).squeeze(1)  # [D_c] input positions
        order = sorted(range(len(mine)), key=lambda k: -float(d_scores[mine[k]]))  # stable
        verdicts = _devkit_walk(_best_overlaps(c, dets, gts), [g_difficult.tolist()], iou_threshold)
        for k, verdict in zip(order, verdicts):
            out[mine[k]] = -1 if verdict is None else int(verdict)
    return out


def _best_overlaps(c: int, dets: list, gts: list) -> list[tuple[float, int, float, int]]:
    """Every detection of class ``c`` over the data set as ``(score, image, best overlap, object)``,
    best score first (ties in input order); overlap -1 and object -1 when the image holds no
    object of the class."""
    found = []
    for i, ((d_boxes, d_scores, d_labels), (g_boxes, g_labels, _)) in enumerate(zip(dets, gts)):
        mine = torch.nonzero(d_labels == c).squeeze(1)  # [D_c] this image's detections of c
        objects = torch.nonzero(g_labels == c).squeeze(1)  # [G_c] and its objects of c
        best = torch.full((len(mine),), -1.0, dtype=torch.float64)
        which = torch.full((len(mine),), -1, dtype=torch.long)
        if len(mine) and len(objects):
            best, j = box_iou(d_boxes[mine], g_boxes[objects]).max(dim=1)  # first object on ties
            which = objects[j]  # [D_c] index into the image's ground truth
        found += zip(d_scores[mine].tolist(), [i] * len(mine), best.tolist(), which.tolist())
    found.sort(key=lambda row: -row[0])  # Python's sort is stable: ties keep input order
    return found


def _devkit_walk(found: list, difficult: list[list[bool]], iou_threshold: float) -> list:
    """The devkit's loop: ``True`` (TP), ``False`` (FP) or ``None`` (ignored) per detection."""
    taken = set()  # (image, object) pairs already detected
    verdicts = []
    for _, image, best, obj in found:
        if best > iou_threshold and difficult[image][obj]:
            verdicts.append(None)  # a difficult object: neither right nor wrong
        elif best > iou_threshold and (image, obj) not in taken:
            taken.add((image, obj))
            verdicts.append(True)
        else:
            verdicts.append(False)  # no object close enough, or a duplicate
    return verdicts


def _coco_ap(found: list, difficult: list[list[bool]], npos: int) -> float:
    """COCO-style AP of one class: 101-point AP averaged over the ten IoU thresholds."""
    if npos == 0:
        return math.nan
    levels = torch.tensor(COCO_RECALL_LEVELS, dtype=torch.float64)  # [101]
    aps = []
    for threshold in COCO_IOU_THRESHOLDS:
        verdicts = [v for v in _devkit_walk(found, difficult, threshold) if v is not None]
        ctp = torch.tensor(verdicts, dtype=torch.float64).cumsum(0)  # [K]
        seen = torch.arange(1, len(verdicts) + 1, dtype=torch.float64)  # [K]
        if len(verdicts) == 0:
            aps.append(0.0)
            continue
        aps.append(float(interpolated_precision(ctp / npos, ctp / seen, levels)[1].mean()))
    return sum(aps) / len(aps)


def _class_curve(npos: int, scores: list[float], verdicts: list) -> tuple:
    """One class's curve from its verdicts in score order: ``(npos, recall [K], precision [K],
    scores [K], tp_flags [K], detections)`` over the ``K`` counted (not ignored) detections."""
    counted = [k for k, v in enumerate(verdicts) if v is not None]
    tp = torch.tensor([verdicts[k] for k in counted], dtype=torch.bool)  # [K]
    ctp = tp.to(torch.float64).cumsum(0)  # [K] true positives so far
    precision = ctp / torch.arange(1, len(counted) + 1, dtype=torch.float64)  # TP / (TP + FP)
    recall = ctp / npos if npos else torch.full_like(ctp, math.nan)
    kept_scores = torch.tensor([scores[k] for k in counted], dtype=torch.float64)
    return npos, recall, precision, kept_scores, tp, len(verdicts)


def _result(
    class_names: Sequence[str], curves: list[tuple], iou_threshold: float, use_07_metric: bool
) -> EvalResult:
    """The :class:`EvalResult` of per-class curves (as :func:`_class_curve` returns them)."""
    ap = torch.full((len(curves),), math.nan, dtype=torch.float64)  # [C]
    for c, (npos, recall, precision, *_) in enumerate(curves):
        if npos:  # a class without objects has no AP
            ap[c] = average_precision(recall, precision, use_07_metric) if len(recall) else 0.0
    tp = [int(flags.sum()) for *_, flags, _ in curves]
    return EvalResult(
        class_names=list(class_names),
        ap=ap,
        mean_ap=nanmean(ap),
        recall=[curve[1] for curve in curves],
        precision=[curve[2] for curve in curves],
        scores=[curve[3] for curve in curves],
        tp_flags=[curve[4] for curve in curves],
        num_positives=torch.tensor([curve[0] for curve in curves], dtype=torch.long),
        true_positives=torch.tensor(tp, dtype=torch.long),
        false_positives=torch.tensor([len(c[4]) - t for c, t in zip(curves, tp)], dtype=torch.long),
        ignored=torch.tensor([c[5] - len(c[4]) for c in curves], dtype=torch.long),
        iou_threshold=float(iou_threshold),
        use_07_metric=use_07_metric,
    )


def coco_map(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, ...]],
    class_names: Sequence[str],
    pixel: bool = False,
) -> float:
    """COCO-style AP@[.50:.95]: 101-point AP averaged over IoU 0.50, 0.55, ..., 0.95 and classes.

    Matching follows the VOC rule of :func:`evaluate_detections` at each threshold; the module
    docstring lists how this differs from pycocotools. It is not COCO's AP: for the number COCO
    results report (crowds, area ranges, 100 detections per image and class), use
    :func:`coco_eval`.

    Args:
        detections, ground_truths, class_names, pixel: as for :func:`evaluate_detections`.

    Returns:
        The mean over classes that have objects (NaN if none has).

    Paper: not in the paper (COCO's metric, for comparison with later detectors).
    """
    result = evaluate_detections(detections, ground_truths, class_names, pixel=pixel, coco=True)
    return float(result.coco_map)
