"""COCO's detection metric as pycocotools' COCOeval computes it: AP, AP50, AP75, ..., ARl.

The COCO benchmark scores a detector by twelve figures. This module follows COCOeval's rules (box
mode) step by step; ``tests/test_coco_eval.py`` holds it to pycocotools within 1e-6. For each class
(each label found in the ground truth or the detections), each area range (all; small, up to 32^2
pixels; medium, 32^2 to 96^2; large, from 96^2; both ends of a range count) and each image:

1. **Detections**: the image's detections of the class, best score first (a stable sort: equal
   scores keep their input order), at most 100; the rest are never seen. The limit holds per image
   *and class*, not per image.
2. **Overlaps**: every detection against every object of the class, in COCO's box form
   ``[x, y, w, h]`` in pixels (:func:`ssd_edu.coco_json.coco_boxes`) with pycocotools' arithmetic,
   so that an overlap of exactly a threshold falls the same way. For a crowd region the union is
   the *detection's* area: a detection inside a crowd overlaps it fully, however small it is.
3. **Ignored objects**: crowd regions, and objects whose area is outside the range. The area is the
   box's ``w h`` in pixels: our format has no masks (COCO's files give the mask's area, so on COCO's
   own ground truth APs, APm and APl can differ a little from pycocotools run on the file).
4. **Matching**, at each IoU threshold t in 0.50, 0.55, ..., 0.95, detections in score order: among
   the objects a detection overlaps by ``>= t`` and that are still free (a crowd region is never
   used up), it takes the one of highest overlap (the later object on equal overlaps), a regular
   object before any ignored one. Matched to a regular object: a true positive; to an ignored one:
   ignored. Unmatched: a false positive, unless its own area is outside the range: then ignored.
5. **Accumulation**, for each detection limit m in 1, 10, 100: the m best detections of each image
   are gathered over the data set, sorted by score (stable: ties in image order), ignored ones
   skipped. After k detections ``recall = TP / n`` (n: the class's regular objects) and
   ``precision = TP / (TP + FP + eps)`` (``eps = np.spacing(1)``, pycocotools' guard); the envelope
   of precision is read at the recall levels 0, 0.01, ..., 1 (0 where recall never gets there), and
   the setting's recall is its last one. With n = 0 the setting is undefined (pycocotools: -1).
6. **Summary**: AP is the mean of the defined precisions over thresholds, levels and classes (all
   areas, m = 100); AP50 and AP75 keep one threshold; APs, APm, APl one area range. AR1, AR10, AR100
   are the mean recall over thresholds and classes for m = 1, 10, 100; ARs, ARm, ARl one area range
   (m = 100). A figure with no defined entry is -1, as pycocotools reports it.

This is COCO's own metric. :func:`ssd_edu.evaluate.coco_map` is another number: "COCO-style" AP,
the mean over the same ten thresholds of the VOC devkit's rule (the best-overlap object, overlap
``> t``, no crowds, areas or limits), beside our VOC results.

Speed: a plain loop over detections, as COCOeval's. On one CPU core, 300 images x 200 detections of
20 classes take about 2 s and VOC2007 test's size (4952 images) 38 s, where pycocotools takes 52 s;
a training run evaluates a few hundred images, so there is no fast form.

Paper: §3.4, Table 5 reports these figures for SSD on COCO test-dev; the rules are COCO's (not in
the paper), and they matter because a number compares with published COCO results only when it is
computed by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ssd_edu.coco_json import check_image_sizes, coco_boxes
from ssd_edu.eval_result import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_LEVELS,
    check_inputs,
    interpolated_precision,
)

# object areas in pixels, as COCOeval's areaRng (1e5 ** 2 stands for "no upper bound")
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
MAX_DETECTIONS: tuple[int, ...] = (1, 10, 100)  # per image and class
SUMMARY_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"
)  # fmt: skip
# pycocotools divides by TP + FP + eps, against 0 / 0 where ignored detections come first; we skip
# those, so here eps only moves a precision by about 1e-16, but it keeps the arithmetic the same
_EPS = float(np.spacing(1))


class _Pair(NamedTuple):
    """One image and one class: its (at most 100) detections, best first, and its objects."""

    scores: list[float]  # [D]
    det_areas: list[float]  # [D] w h in pixels
    obj_areas: list[float]  # [G]
    crowd: list[bool]  # [G]
    ious: list[list[float]]  # [D][G]


def coco_eval(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, ...]],
    image_sizes: Sequence[tuple[float, float]],
) -> dict[str, float]:
    """COCO's twelve summary figures of a detector's output over a data set (the module's rules).

    Args:
        detections: per image, ``(boxes [K, 4] xyxy fractions, scores [K], labels [K] >= 1)``.
        ground_truths: per image (same order), ``(boxes [G, 4] xyxy fractions, labels [G] >= 1,
            iscrowd [G] bool)``; a 2-tuple means no crowd regions.
        image_sizes: per image, ``(width, height)`` in pixels: overlaps and area ranges are
            measured in pixels.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
        "ARl"}`` (``SUMMARY_NAMES``) as floats in [0, 1], or -1 where undefined.

    Paper: §3.4, Table 5 (COCO test-dev); the rules are pycocotools' COCOeval, not the paper's.
    """
    dets, gts = check_inputs(detections, ground_truths, None, flag="iscrowd")
    sizes = check_image_sizes(image_sizes, len(dets))
    # per image, {label: _Pair}: its detections and objects of that class, with their overlaps
    pairs = [_pairs(d, g, size) for d, g, size in zip(dets, gts, sizes)]
    labels = sorted({label for image in pairs for label in image})
    T, R, K = len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_LEVELS), len(labels)
    A, M = len(AREA_RANGES), len(MAX_DETECTIONS)
    precision = torch.full((T, R, K, A, M), -1.0, dtype=torch.float64)  # -1: undefined
    recall = torch.full((T, K, A, M), -1.0, dtype=torch.float64)
    for k, label in enumerate(labels):
        mine = [image[label] for image in pairs if label in image]
        for a, (low, high) in enumerate(AREA_RANGES.values()):
            judged = [_judge(pair, low, high) for pair in mine]
            for m, max_dets in enumerate(MAX_DETECTIONS):
                curves = _accumulate(judged, max_dets)
                if curves is not None:  # the class has regular objects in this range
                    precision[:, :, k, a, m], recall[:, k, a, m] = curves
    return _summarize(precision, recall)


def _pairs(det: tuple, gt: tuple, size: tuple[float, float]) -> dict[int, _Pair]:
    """One image's detections and objects, class by class (steps 1 and 2)."""
    d_boxes, d_scores, d_labels = (t.cpu() for t in det)
    g_boxes, g_labels, g_crowd = (t.cpu() for t in gt)
    d_xywh, g_xywh = coco_boxes(d_boxes, *size), coco_boxes(g_boxes, *size)  # pixels
    out = {}
    for label in sorted(set(d_labels.tolist()) | set(g_labels.tolist())):
        mine = torch.nonzero(d_labels == label).squeeze(1)  # [D_c] input order
        scores = d_scores[mine].to(torch.float64)
        best = torch.sort(scores, descending=True, stable=True).indices[: MAX_DETECTIONS[-1]]
        d, scores = d_xywh[mine[best]], scores[best]  # [D, 4], [D] best first
        objects = torch.nonzero(g_labels == label).squeeze(1)  # [G]
        g, crowd = g_xywh[objects], g_crowd[objects].bool()
        out[label] = _Pair(
            scores.tolist(),
            (d[:, 2] * d[:, 3]).tolist(),
            (g[:, 2] * g[:, 3]).tolist(),
            crowd.tolist(),
            _overlaps(d, g, crowd).tolist(),
        )
    return out


def _overlaps(d: Tensor, g: Tensor, crowd: Tensor) -> Tensor:
    """``[D, G]`` overlaps of ``[x, y, w, h]`` pixel boxes, computed as pycocotools' bbIou does
    (right edge as ``x + w``); over a crowd region the union is the detection's area."""
    iw = torch.minimum(d[:, None, 0] + d[:, None, 2], g[None, :, 0] + g[None, :, 2])
    iw = iw - torch.maximum(d[:, None, 0], g[None, :, 0])  # [D, G]
    ih = torch.minimum(d[:, None, 1] + d[:, None, 3], g[None, :, 1] + g[None, :, 3])
    ih = ih - torch.maximum(d[:, None, 1], g[None, :, 1])
    inter = iw.clamp(min=0) * ih.clamp(min=0)  # [D, G]
    d_area, g_area = (d[:, 2] * d[:, 3])[:, None], (g[:, 2] * g[:, 3])[None, :]
    union = torch.where(crowd[None, :], d_area, d_area + g_area - inter)
    return torch.where(inter > 0, inter / union, torch.zeros_like(inter))  # no overlap: 0


def _judge(pair: _Pair, low: float, high: float) -> tuple[Tensor, Tensor, Tensor, int]:
    """One image and class in one area range (steps 3 and 4): ``(scores [D], true_positive [D, T],
    counted [D, T], n)`` with ``n`` the regular objects; a detection not counted is ignored."""
    ignore = [crowd or not low <= area <= high for crowd, area in zip(pair.crowd, pair.obj_areas)]
    inside = [low <= area <= high for area in pair.det_areas]  # [D]
    T, D, G = len(COCO_IOU_THRESHOLDS), len(pair.scores), len(pair.crowd)
    if D and G:
        hits, counted = [], []
        for threshold in COCO_IOU_THRESHOLDS:
            taken = _match(pair.ious, ignore, pair.crowd, threshold)  # [D] object or -1
            hits.append([g >= 0 and not ignore[g] for g in taken])
            counted.append([not ignore[g] if g >= 0 else ok for g, ok in zip(taken, inside)])
        hit, count = torch.tensor(hits, dtype=torch.bool).T, torch.tensor(counted).T  # [D, T]
    else:  # no objects (or no detections): nothing to match, every detection is unmatched
        hit = torch.zeros((D, T), dtype=torch.bool)
        count = torch.tensor(inside, dtype=torch.bool).reshape(D, 1).expand(D, T)
    n = sum(not flag for flag in ignore)
    return torch.tensor(pair.scores, dtype=torch.float64), hit, count, n


def _match(ious: list[list[float]], ignore: list[bool], crowd: list[bool], t: float) -> list[int]:
    """COCOeval's greedy matching at threshold ``t``: per detection (best score first), the object
    it takes, or -1."""
    used = [False] * len(crowd)
    taken = []
    for row in ious:  # [G] this detection's overlaps
        free = [g for g, iou in enumerate(row) if iou >= t and (crowd[g] or not used[g])]
        # a regular object beats any ignored one, however much better the ignored one overlaps
        pool = [g for g in free if not ignore[g]] or free
        if not pool:
            taken.append(-1)
            continue
        best = max(row[g] for g in pool)
        g = [g for g in pool if row[g] == best][-1]  # equal overlaps: COCOeval keeps the later
        used[g] = True
        taken.append(g)
    return taken


def _accumulate(judged: list[tuple], max_dets: int) -> tuple[Tensor, Tensor] | None:
    """Step 5 over the images of one class and area range: ``(precision [T, R], recall [T])`` with
    each image's ``max_dets`` best detections, or None when the class has no regular object."""
    n = sum(objects for *_, objects in judged)
    if n == 0:
        return None
    scores = torch.cat([s[:max_dets] for s, *_ in judged])  # [N] image by image
    hit = torch.cat([h[:max_dets] for _, h, _, _ in judged])  # [N, T]
    counted = torch.cat([c[:max_dets] for _, _, c, _ in judged])  # [N, T]
    order = torch.sort(scores, descending=True, stable=True).indices  # ties: image order
    hit, counted = hit.index_select(0, order), counted.index_select(0, order)
    T, levels = hit.shape[1], torch.tensor(COCO_RECALL_LEVELS, dtype=torch.float64)  # [R]
    precision = torch.zeros((T, len(levels)), dtype=torch.float64)  # [T, R]
    recall = torch.zeros(T, dtype=torch.float64)  # [T]
    for t in range(T):
        tp = hit[:, t][counted[:, t]].to(torch.float64)  # [K] ignored: neither TP nor FP
        tp_sum, fp_sum = tp.cumsum(0), (1.0 - tp).cumsum(0)  # [K]
        rec, prec = tp_sum / n, tp_sum / (fp_sum + tp_sum + _EPS)
        precision[t] = interpolated_precision(rec, prec, levels)[1]  # [R] 0 beyond the last point
        recall[t] = rec[-1] if len(rec) else 0.0
    return precision, recall


def _summarize(precision: Tensor, recall: Tensor) -> dict[str, float]:
    """Step 6: the twelve figures from ``precision [T, R, K, A, M]`` and ``recall [T, K, A, M]``."""

    def mean(values: Tensor) -> float:  # over the defined entries; -1 when there are none
        defined = values[values > -1]
        return float(defined.mean()) if defined.numel() else -1.0

    t50, t75 = COCO_IOU_THRESHOLDS.index(0.5), COCO_IOU_THRESHOLDS.index(0.75)
    a = {name: i for i, name in enumerate(AREA_RANGES)}
    m100 = MAX_DETECTIONS.index(100)
    figures = [
        precision[:, :, :, a["all"], m100],
        precision[t50, :, :, a["all"], m100],
        precision[t75, :, :, a["all"], m100],
        precision[:, :, :, a["small"], m100],
        precision[:, :, :, a["medium"], m100],
        precision[:, :, :, a["large"], m100],
        *(recall[:, :, a["all"], m] for m in range(len(MAX_DETECTIONS))),
        recall[:, :, a["small"], m100],
        recall[:, :, a["medium"], m100],
        recall[:, :, a["large"], m100],
    ]
    return {name: mean(values) for name, values in zip(SUMMARY_NAMES, figures, strict=True)}
