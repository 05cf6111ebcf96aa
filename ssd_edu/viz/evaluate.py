"""Drawings of the evaluation: precision-recall curves per class and how AP reads them.

Pairs with notebook 08 (mAP); :func:`pr_curves_figure` is its explorer's drawing.

Paper: §3, §3.1 (VOC2007 test mAP, a detection counts at jaccard overlap 0.5).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.viz.core import class_colour


def plot_pr_curves(ax: Axes, result, labels: list[int] | None = None) -> None:
    """Precision-recall curves per class from :func:`ssd_edu.evaluate.evaluate_detections`.

    Args:
        ax: where to draw.
        result: an ``EvalResult`` (its ``recall``, ``precision``, ``ap``, ``class_names``).
        labels: which classes to draw (1..C); default every class with a defined AP.
    """
    if labels is None:
        labels = [c + 1 for c in range(len(result.class_names)) if not bool(result.ap[c].isnan())]
    for label in labels:
        c = label - 1
        recall = result.recall[c].numpy()
        precision = result.precision[c].numpy()
        # start each curve at recall 0 so a class with a first miss is visible too
        ax.plot(
            np.concatenate(([0.0], recall)),
            np.concatenate(([precision[0] if len(precision) else 0.0], precision)),
            color=class_colour(label),
            linewidth=1.8,
            label=f"{result.class_names[c]} (AP {float(result.ap[c]):.3f})",
        )
    form = "11-point" if result.use_07_metric else "area"
    ax.set_title(f"mAP {result.mean_ap:.3f} ({form}, IoU > {result.iou_threshold:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def plot_ap_interpolation(ax: Axes, recall, precision, title: str | None = None) -> None:
    """One class's PR points, their envelope (area form, shaded) and the 11 sampled levels.

    Args:
        ax: where to draw.
        recall, precision: ``[K]`` points in score order (as ``EvalResult.recall[c]``).
        title: optional title; by default both AP numbers.
    """
    from ssd_edu.evaluate import average_precision, interpolated_precision

    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    levels = np.arange(11) / 10
    # envelope: best precision at this recall or beyond (what both AP forms read), and its value
    # at the 11 levels, from the library so the picture shows exactly what AP computes
    envelope, sampled = (t.numpy() for t in interpolated_precision(recall, precision, levels))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    menv = np.concatenate((envelope[:1] if len(envelope) else [0.0], envelope, [0.0]))
    ax.fill_between(mrec, menv, step="pre", alpha=0.2, color="tab:blue", label="area form")
    ax.step(mrec, menv, where="pre", color="tab:blue", linewidth=1.2)
    ax.plot(recall, precision, "o-", color="tab:grey", markersize=5, linewidth=1, label="raw P/R")
    ax.vlines(levels, 0, sampled, color="tab:red", linewidth=1)
    ax.plot(levels, sampled, "s", color="tab:red", markersize=5, label="11-point samples")
    ap07 = average_precision(recall, precision, use_07_metric=True)
    ap_area = average_precision(recall, precision, use_07_metric=False)
    ax.set_title(title or f"11-point AP {ap07:.4f}   area AP {ap_area:.4f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left", fontsize=8)


def pr_curves_figure(
    detections,
    ground_truths,
    class_names,
    iou_threshold: float = 0.5,
    use_07_metric: bool = True,
) -> Figure:
    """Evaluate detections (:func:`ssd_edu.evaluate.evaluate_detections`) and draw the PR curves.

    The drawing behind notebook 08's explorer: one knob is the overlap a detection needs, the
    other the AP form. Arguments are those of ``evaluate_detections``.

    Returns:
        A new figure with the per-class precision-recall curves and the mAP in the title.
    """
    from ssd_edu.evaluate import evaluate_detections

    result = evaluate_detections(
        detections, ground_truths, class_names, iou_threshold, use_07_metric
    )
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    plot_pr_curves(ax, result)
    return fig


TP_COLOUR, FP_COLOUR, IGNORED_COLOUR = "tab:green", "tab:red", "tab:grey"


def draw_verdicts(
    ax: Axes,
    image,
    detections,
    ground_truth,
    class_names: list[str],
    score_threshold: float = 0.0,
    iou_threshold: float = 0.5,
) -> Tensor:
    """One image with its objects labelled and its detections coloured by the evaluation's verdict.

    Objects are dashed black boxes captioned with their class; each detection with a score of at
    least ``score_threshold`` is green (true positive), red (false positive) or grey (ignored:
    it found a difficult object), captioned with its class and score. The verdicts come from
    :func:`ssd_edu.evaluate.detection_verdicts`, the same rule that computes AP.

    Args:
        ax: where to draw.
        image: ``[3, H, W]`` in [0, 1].
        detections: ``(boxes [K, 4] xyxy fractions, scores [K], labels [K])``.
        ground_truth: ``(boxes [G, 4], labels [G])`` or with ``difficult [G]`` as a third entry.
        class_names: names of classes 1..C.
        score_threshold: detections below it are left out of the drawing (not of the verdicts).
        iou_threshold: the overlap a true positive needs.

    Returns:
        ``[K]`` long verdicts of all detections (1 TP, 0 FP, -1 ignored), drawn or not.
    """
    from matplotlib.lines import Line2D

    from ssd_edu.evaluate import detection_verdicts
    from ssd_edu.viz.core import draw_boxes, show_image

    verdicts = detection_verdicts(detections, ground_truth, iou_threshold)  # [K]
    size = show_image(ax, image)
    gt_boxes, gt_labels = ground_truth[0], ground_truth[1]
    draw_boxes(ax, gt_boxes, size, labels=gt_labels, class_names=class_names, colour="black",
               linestyle="--", linewidth=1.5)
    boxes, scores, labels = detections
    shown = scores >= score_threshold  # [K]
    for value, colour in ((1, TP_COLOUR), (0, FP_COLOUR), (-1, IGNORED_COLOUR)):
        keep = shown & (verdicts == value)
        draw_boxes(ax, boxes[keep], size, labels=labels[keep], scores=scores[keep],
                   class_names=class_names, colour=colour, linewidth=1.5)
    handles = [Line2D([], [], color="black", linestyle="--", label="object (truth)"),
               Line2D([], [], color=TP_COLOUR, label="true positive"),
               Line2D([], [], color=FP_COLOUR, label="false positive")]
    ax.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.8)
    return verdicts
