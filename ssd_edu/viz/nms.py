"""Drawing of non-maximum suppression: raw detections beside what per-class NMS keeps.

Pairs with notebook 05 (NMS); :func:`plot_nms` is its explorer's drawing.

Paper: §2.1 (NMS gives the final detections); §3.7 (0.01 filter, NMS at 0.45, top 200).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.viz.core import draw_boxes, show_image


def plot_nms(
    image: Tensor,
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float,
    class_names: list[str] | None = None,
    figsize: tuple[float, float] = (10.0, 4.6),
) -> Figure:
    """Raw detections (left) beside what per-class NMS at ``iou_threshold`` keeps of them (right).

    The plain function behind notebook 05's threshold slider.

    Args:
        image: ``[3, H, W]`` image.
        boxes: ``[N, 4]`` xyxy fractions.
        scores: ``[N]`` confidences.
        labels: ``[N]`` classes 1..C (colours; NMS runs per class).
        iou_threshold: the NMS overlap threshold.
        class_names: names of classes 1..C for the captions of the kept boxes.

    Returns:
        A figure with two image panels.

    Paper: §3.7 (per-class NMS at test time).
    """
    from ssd_edu.nms import batched_nms

    kept = batched_nms(boxes, scores, labels, iou_threshold)  # [K]
    fig, (before, after) = plt.subplots(1, 2, figsize=figsize)
    size = show_image(before, image, f"before NMS: {len(boxes)} boxes")
    draw_boxes(before, boxes, size, labels=labels, linewidth=1.0, alpha=0.6)
    show_image(after, image, f"after NMS at overlap {iou_threshold:.2f}: {len(kept)} kept")
    draw_boxes(
        after, boxes[kept], size, labels=labels[kept], scores=scores[kept], class_names=class_names
    )
    fig.tight_layout()
    return fig
