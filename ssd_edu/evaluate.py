"""Evaluation: PASCAL VOC average precision (AP) per class and its mean (mAP), plus COCO-style AP.

The paper reports VOC2007 test mAP at jaccard overlap 0.5 (section 3, Table 1). For one class:

1. Gather every detection of that class over the whole test set and sort them by score, highest
   first (ties keep input order: image index, then position in that image's list).
2. Walk down the list. A detection's *best-overlap* ground truth is the object of the same class in
   the same image that it overlaps most. If that overlap is ``> iou_threshold``:
   - the object is marked "difficult": the detection is *ignored* (neither right nor wrong);
   - the object is not yet taken: the detection is a *true positive* and takes it;
   - the object is already taken: *false positive* (a duplicate).
   Otherwise (no object of the class in the image, or overlap too small): *false positive*.
3. After ``k`` counted detections: ``precision = TP_k / (TP_k + FP_k)`` and
   ``recall = TP_k / n_pos`` where ``n_pos`` counts the class's objects that are *not* difficult.
4. AP summarises the precision-recall curve (:func:`average_precision`): VOC2007's 11-point form
   (the paper's numbers) or, from VOC2010 on, the area under the precision envelope.

Because the rule looks at the best-overlap object only (not the best object still free), step 2 has
an exact vectorised form: a detection is a true positive iff it is the first, in score order, among
the detections whose best-overlap object is that same non-difficult object (with overlap above the
threshold). So no loop over detections is needed; see :func:`evaluate_detections`.

Coordinates: boxes are ``[N, 4]`` xyxy fractions of the image (docs/design.md) and overlap is plain
area ratio. The official devkit measures integer pixel boxes whose corners are both inside the
box, so a box from x1 to x2 is ``x2 - x1 + 1`` pixels wide; ``pixel=True`` uses that convention
(give ground truths and detections in pixels: fractions times ``[W, H, W, H]`` of each image).

Conventions we chose (each one tested):
- a class with no non-difficult object has no defined AP: it gets NaN and is left out of the mAP
  (the devkit would divide by zero; VOC's test set has no such class);
- 11-point recall levels are exactly ``i / 10``; the popular Python port uses
  ``np.arange(0, 1.1, 0.1)``, whose 0.30000000000000004 makes a recall of exactly 0.3 (also 0.6,
  0.7) miss its level, which changes AP only when a recall lands exactly on such a value.

COCO-style AP (:func:`coco_map`): the mean over IoU thresholds 0.50, 0.55, ..., 0.95 of AP with
COCO's 101-point interpolation. It keeps the VOC matching rule above (best-overlap object,
difficult ignored, overlap ``>`` threshold); pycocotools instead matches each detection to the best
object *still free* with overlap ``>=`` threshold, keeps at most 100 detections per image and has
crowd regions and area ranges. On typical detector output the two differ slightly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes

# COCO's grids, built with numpy.linspace exactly as pycocotools builds them, so the floats agree
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.5, 0.95, 10).tolist())
COCO_RECALL_LEVELS: tuple[float, ...] = tuple(np.linspace(0.0, 1.0, 101).tolist())


def _as_1d_float64(name: str, values) -> Tensor:
    """``values`` (tensor, array or sequence) as a 1-D float64 CPU tensor, or a clear error."""
    if isinstance(values, Tensor):
        t = values.detach().to("cpu", torch.float64)
    else:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {list(t.shape)}")
    return t


def interpolated_precision(recall, precision, recall_levels) -> tuple[Tensor, Tensor]:
    """The precision envelope ``p_interp(r) = max_{r' >= r} p(r')``, at the points and at levels.

    Args:
        recall: ``[K]`` recall after each counted detection, in score order (non-decreasing).
        precision: ``[K]`` precision after each counted detection.
        recall_levels: ``[L]`` recall levels to sample (``i / 10`` for VOC07, 101 for COCO).

    Returns:
        ``envelope`` ``[K]`` float64 (best precision at this point or any later one) and
        ``sampled`` ``[L]`` float64 (``p_interp`` at each level; 0 where no point reaches it).

    Paper: §3 (VOC2007 11-point AP reads this envelope).
    """
    recall = _as_1d_float64("recall", recall)
    precision = _as_1d_float64("precision", precision)
    levels = _as_1d_float64("recall_levels", recall_levels)
    envelope = precision.flip(0).cummax(0).values.flip(0)  # [K] best precision from here on
    # recall is non-decreasing, so the first point at or past a level sees every later point
    first = torch.searchsorted(recall, levels, side="left")  # [L]
    padded = torch.cat((envelope, envelope.new_zeros(1)))  # index K means "no such point": 0
    return envelope, padded[first]  # [K], [L]


def _interpolated_ap(recall: Tensor, precision: Tensor, recall_levels: Tensor) -> float:
    """Mean over ``recall_levels`` of the best precision at recall >= each level (0 if none)."""
    return float(interpolated_precision(recall, precision, recall_levels)[1].mean())


def _area_ap(recall: Tensor, precision: Tensor) -> float:
    """Area under the precision envelope, with sentinel points at recall 0 and 1."""
    mrec = torch.cat((recall.new_zeros(1), recall, recall.new_ones(1)))  # [K + 2]
    mpre = torch.cat((precision.new_zeros(1), precision, precision.new_zeros(1)))  # [K + 2]
    envelope = mpre.flip(0).cummax(0).values.flip(0)  # [K + 2]
    # each recall step is weighted by the envelope at its right end; zero steps add nothing
    return float(((mrec[1:] - mrec[:-1]) * envelope[1:]).sum())


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
    recall = _as_1d_float64("recall", recall)
    precision = _as_1d_float64("precision", precision)
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
        return _interpolated_ap(recall, precision, levels)
    return _area_ap(recall, precision)


@dataclass
class EvalResult:
    """What :func:`evaluate_detections` returns: per-class AP, the mAP and the curves behind them.

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


def _paired_iou(a: Tensor, b: Tensor, pixel: bool) -> Tensor:
    """Overlap of ``a[n]`` with ``b[n]`` for each n (``[N, 4]`` each -> ``[N]``)."""
    one = 1.0 if pixel else 0.0  # the devkit counts both corner pixels: width = x2 - x1 + 1
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2]) + one).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]  # [N]
    area_a = (a[:, 2:] - a[:, :2] + one).clamp(min=0).prod(1)  # [N]
    area_b = (b[:, 2:] - b[:, :2] + one).clamp(min=0).prod(1)  # [N]
    union = area_a + area_b - inter  # [N]
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def _gather(items: Sequence, name: str, parts: tuple[str, ...], num_classes: int, device):
    """Concatenate per-image tuples into flat tensors plus each row's image index."""
    if not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a list with one entry per image, got {type(items)}")
    columns: list[list[Tensor]] = [[] for _ in parts]
    counts = []
    for i, item in enumerate(items):
        if len(item) != len(parts) and not (name == "ground_truths" and len(item) == 2):
            raise ValueError(
                f"{name}[{i}] must be a tuple ({', '.join(parts)}), got {len(item)} items"
            )
        boxes = item[0]
        _check_boxes(f"{name}[{i}] boxes", boxes, ndim=2)
        k = boxes.shape[0]
        for j, part in enumerate(parts[1:], start=1):
            if j >= len(item):  # ground truth without a difficult flag: nothing is difficult
                t = torch.zeros(k, dtype=torch.bool, device=boxes.device)
            else:
                t = torch.as_tensor(item[j], device=boxes.device)
            if t.shape != (k,):
                raise ValueError(
                    f"{name}[{i}] {part} must have shape [{k}] (one per box), got {list(t.shape)}"
                )
            columns[j].append(t)
        columns[0].append(boxes)
        counts.append(k)
    if not counts:
        out = [torch.zeros(0, 4, dtype=torch.float64, device=device)]
        out += [torch.zeros(0, dtype=torch.long, device=device) for _ in parts[1:]]
        return out, torch.zeros(0, dtype=torch.long, device=device)
    out = [torch.cat([t.to(device) for t in col]) for col in columns]
    out[0] = out[0].to(torch.float64)  # overlaps and thresholds compared in double, as numpy does
    image = torch.repeat_interleave(
        torch.arange(len(counts), device=device), torch.tensor(counts, device=device)
    )
    labels = out[parts.index("labels")]
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{name} labels must be integers, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) > num_classes):
        raise ValueError(
            f"{name} labels must lie in 1..{num_classes} (len(class_names)), got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    return out, image


def _class_curves(
    is_tp: Tensor, counted: Tensor, order: Tensor, det_labels: Tensor, npos: Tensor, C: int
):
    """Cumulative precision/recall per class from per-detection verdicts, in score order."""
    keep = order[counted[order]]  # [K] counted detections, grouped by class, best score first
    labels = det_labels[keep]  # [K]
    tp = is_tp[keep].to(torch.float64)  # [K]
    per_class = torch.bincount(labels, minlength=C + 1)[1:]  # [C]
    ends = per_class.cumsum(0)  # [C]
    starts = ends - per_class  # [C]
    ctp_all = tp.cumsum(0)  # [K]
    before = torch.cat((ctp_all.new_zeros(1), ctp_all))[starts]  # [C] TPs of earlier classes
    ctp = ctp_all - before[labels - 1]  # [K] TPs within the class so far
    seen = torch.arange(1, len(keep) + 1, device=keep.device, dtype=torch.float64)
    seen = seen - starts.to(torch.float64)[labels - 1]  # [K] counted detections so far
    precision = ctp / seen  # [K]
    recall = ctp / npos.to(torch.float64)[labels - 1]  # [K]; NaN/inf where npos = 0, fixed below
    return keep, starts.tolist(), ends.tolist(), precision, recall


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
        pixel: boxes are in pixels with the devkit's inclusive convention (width ``x2 - x1 + 1``);
            by default boxes are fractions and width is ``x2 - x1``.
        coco: also compute COCO-style AP over IoU 0.50:0.95 (``coco_ap``, ``coco_map``).

    Returns:
        :class:`EvalResult` with per-class AP, mAP, PR points and counts.

    Paper: §3 (VOC2007 test, mAP at IoU 0.5); the rule is the PASCAL VOC devkit's.
    """
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"detections and ground_truths must have one entry per image, got {len(detections)} "
            f"and {len(ground_truths)}"
        )
    class_names = list(class_names)
    C = len(class_names)
    if C == 0:
        raise ValueError("class_names must name at least one object class, got []")
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1), got {iou_threshold}")
    device = detections[0][0].device if len(detections) else torch.device("cpu")

    (d_boxes, d_scores, d_labels), d_image = _gather(
        detections, "detections", ("boxes", "scores", "labels"), C, device
    )
    (g_boxes, g_labels, g_difficult), g_image = _gather(
        ground_truths, "ground_truths", ("boxes", "labels", "difficult"), C, device
    )
    d_labels, g_labels, g_difficult = d_labels.long(), g_labels.long(), g_difficult.bool()
    N, M = len(d_labels), len(g_labels)
    # recall counts only the objects that are not difficult
    npos = torch.bincount(g_labels[~g_difficult], minlength=C + 1)[1:]  # [C]

    # objects grouped by (image, class), input order kept inside a group: a detection's candidates
    # are then one contiguous run [start, start + count) of the sorted objects
    g_key = g_image * (C + 1) + g_labels  # [M]
    g_order = torch.sort(g_key, stable=True).indices  # [M]
    g_boxes, g_difficult = g_boxes[g_order], g_difficult[g_order]
    num_groups = len(detections) * (C + 1)
    g_count = torch.bincount(g_key, minlength=num_groups)  # [I * (C + 1)]
    g_start = g_count.cumsum(0) - g_count  # [I * (C + 1)]
    d_key = d_image * (C + 1) + d_labels  # [N]
    d_count, d_start = g_count[d_key], g_start[d_key]  # [N], [N]

    # every (detection, candidate object) pair, flat: no padding, no loop over images
    pair_det = torch.repeat_interleave(torch.arange(N, device=device), d_count)  # [Q]
    pair_offset = d_count.cumsum(0) - d_count  # [N]
    within = torch.arange(len(pair_det), device=device) - pair_offset[pair_det]  # [Q]
    pair_gt = d_start[pair_det] + within  # [Q]
    overlap = _paired_iou(d_boxes[pair_det], g_boxes[pair_gt], pixel)  # [Q]

    # best overlap per detection (-1 when its image has no object of its class) and, on ties,
    # the first object in input order, as an argmax over the image's objects would pick
    best = torch.full((N,), -1.0, dtype=torch.float64, device=device)
    best = best.scatter_reduce(0, pair_det, overlap, "amax")  # [N]
    is_best = overlap == best[pair_det]  # [Q]
    first_best = torch.full((N,), M, dtype=torch.long, device=device)
    first_best = first_best.scatter_reduce(
        0, pair_det[is_best], pair_gt[is_best], "amin"
    )  # [N] index into the sorted objects (M = none)

    # score order per class: classes together, highest score first, ties in input order
    by_score = torch.sort(d_scores.to(torch.float64), descending=True, stable=True).indices
    order = by_score[torch.sort(d_labels[by_score], stable=True).indices]  # [N]
    rank = torch.empty(N, dtype=torch.long, device=device)
    rank[order] = torch.arange(N, device=device)  # [N] position in that order

    def verdicts(threshold: float) -> tuple[Tensor, Tensor]:
        hit = best > threshold  # [N]
        target = first_best.clamp(max=max(M - 1, 0))  # [N] safe index; used only where hit
        ignored = hit & g_difficult[target] if M else torch.zeros_like(hit)  # [N]
        candidate = hit & ~ignored  # [N]
        # the first candidate (in score order) for each object takes it; later ones are duplicates
        first_rank = torch.full((M + 1,), N, dtype=torch.long, device=device)
        first_rank = first_rank.scatter_reduce(
            0, first_best[candidate], rank[candidate], "amin"
        )  # [M + 1]
        is_tp = candidate & (rank == first_rank[first_best])  # [N]
        return is_tp, ~ignored

    def curves(threshold: float):
        is_tp, counted = verdicts(threshold)
        keep, starts, ends, precision, recall = _class_curves(
            is_tp, counted, order, d_labels, npos, C
        )
        return is_tp, counted, keep, starts, ends, precision, recall

    is_tp, counted, keep, starts, ends, precision, recall = curves(iou_threshold)
    recall_cpu, precision_cpu = recall.cpu(), precision.cpu()
    scores_cpu = d_scores[keep].detach().to("cpu", torch.float64)
    flags_cpu = is_tp[keep].cpu()
    npos_cpu = npos.cpu()
    ap = torch.full((C,), math.nan, dtype=torch.float64)
    rec_list, prec_list, score_list, flag_list = [], [], [], []
    for c in range(C):  # 20 classes: a loop over classes, not over boxes
        r = recall_cpu[starts[c] : ends[c]]
        p = precision_cpu[starts[c] : ends[c]]
        if int(npos_cpu[c]) == 0:
            r = torch.full_like(r, math.nan)
        else:
            ap[c] = average_precision(r, p, use_07_metric) if len(r) else 0.0
        rec_list.append(r)
        prec_list.append(p)
        score_list.append(scores_cpu[starts[c] : ends[c]])
        flag_list.append(flags_cpu[starts[c] : ends[c]])

    label_cpu = d_labels.cpu()
    tp_count = torch.bincount(label_cpu[is_tp.cpu()], minlength=C + 1)[1:]
    counted_count = torch.bincount(label_cpu[counted.cpu()], minlength=C + 1)[1:]
    all_count = torch.bincount(label_cpu, minlength=C + 1)[1:]

    result = EvalResult(
        class_names=class_names,
        ap=ap,
        mean_ap=_nanmean(ap),
        recall=rec_list,
        precision=prec_list,
        scores=score_list,
        tp_flags=flag_list,
        num_positives=npos_cpu,
        true_positives=tp_count,
        false_positives=counted_count - tp_count,
        ignored=all_count - counted_count,
        iou_threshold=float(iou_threshold),
        use_07_metric=use_07_metric,
    )
    if coco:
        levels = torch.tensor(COCO_RECALL_LEVELS, dtype=torch.float64)  # [101]
        per_threshold = torch.full((len(COCO_IOU_THRESHOLDS), C), math.nan, dtype=torch.float64)
        for t, threshold in enumerate(COCO_IOU_THRESHOLDS):
            _, _, _, starts_t, ends_t, precision_t, recall_t = curves(threshold)
            precision_t, recall_t = precision_t.cpu(), recall_t.cpu()
            for c in range(C):
                if int(npos_cpu[c]) == 0:
                    continue
                r, p = recall_t[starts_t[c] : ends_t[c]], precision_t[starts_t[c] : ends_t[c]]
                per_threshold[t, c] = _interpolated_ap(r, p, levels) if len(r) else 0.0
        result.coco_ap = per_threshold.mean(0)  # [C]; NaN stays NaN for classes without objects
        result.coco_map = _nanmean(result.coco_ap)
    return result


def _nanmean(values: Tensor) -> float:
    """Mean over the entries that are not NaN; NaN when every entry is NaN."""
    defined = values[~values.isnan()]
    return float(defined.mean()) if len(defined) else math.nan


def coco_map(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, ...]],
    class_names: Sequence[str],
    pixel: bool = False,
) -> float:
    """COCO-style AP@[.50:.95]: 101-point AP averaged over IoU 0.50, 0.55, ..., 0.95 and classes.

    Matching follows the VOC rule of :func:`evaluate_detections` at each threshold; the module
    docstring lists how this differs from pycocotools.

    Args:
        detections, ground_truths, class_names, pixel: as for :func:`evaluate_detections`.

    Returns:
        The mean over classes that have objects (NaN if none has).

    Paper: not in the paper (COCO's metric, for comparison with later detectors).
    """
    result = evaluate_detections(detections, ground_truths, class_names, pixel=pixel, coco=True)
    return float(result.coco_map)
