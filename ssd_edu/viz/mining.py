"""Drawing of hard negative mining: the positives and the negatives the 3:1 rule keeps.

Pairs with notebook 03 (hard negative mining); :func:`plot_mined_negatives` is its explorer's
drawing.

Paper: §2.2 "Hard negative mining".
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.viz.core import class_colour, draw_boxes, draw_priors, show_image


def draw_mined_negatives(
    ax: Axes,
    image: Tensor | np.ndarray,
    priors: Tensor,
    conf_loss: Tensor,
    cls_t: Tensor,
    neg_pos_ratio: float = 3,
    gt_boxes: Tensor | None = None,
    gt_labels: Tensor | None = None,
    class_names: list[str] | None = None,
) -> Tensor:
    """One image's positives (class colours) and the negatives mining keeps (dashed, black-white).

    Args:
        ax: where to draw.
        image: ``[3, H, W]`` in [0, 1] (or ``[H, W, 3]``).
        priors: ``[P, 4]`` cxcywh default boxes.
        conf_loss: ``[P]`` per-box confidence loss of this image.
        cls_t: ``[P]`` long targets, 0 = background.
        neg_pos_ratio: negatives per positive (the explorer's slider).
        gt_boxes, gt_labels: optional ``[G, 4]`` xyxy and ``[G]`` ground truth, drawn thick.
        class_names: names of classes 1..C for the ground-truth captions.

    Returns:
        ``[P]`` bool, the mined negatives.

    Paper: §2.2 "Hard negative mining".
    """
    from ssd_edu.mining import hard_negative_mask

    positive = cls_t > 0  # [P]
    mined = hard_negative_mask(conf_loss[None].detach(), positive[None], neg_pos_ratio)[0]  # [P]
    size = show_image(ax, image)
    # white dashes over a black line: visible on dark and light backgrounds alike
    draw_priors(ax, priors[mined], size, colour="black", linewidth=1.6)
    draw_priors(ax, priors[mined], size, colour="white", linewidth=0.8, linestyle="--")
    for label in cls_t[positive].unique().tolist():
        chosen = positive & (cls_t == label)
        draw_priors(ax, priors[chosen], size, colour=class_colour(label), linewidth=1.0)
    if gt_boxes is not None:
        draw_boxes(ax, gt_boxes, size, labels=gt_labels, class_names=class_names, linewidth=2.5)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ax.set_title(
        f"ratio {neg_pos_ratio:g}: {n_pos} positives, {int(mined.sum())} of {n_neg} negatives kept",
        fontsize=9,
    )
    return mined


def plot_mined_negatives(
    image: Tensor | np.ndarray,
    priors: Tensor,
    conf_loss: Tensor,
    cls_t: Tensor,
    neg_pos_ratio: float = 3,
    gt_boxes: Tensor | None = None,
    gt_labels: Tensor | None = None,
    class_names: list[str] | None = None,
) -> Figure:
    """:func:`draw_mined_negatives` on a new figure: the drawing of the mining explorer."""
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_mined_negatives(
        ax, image, priors, conf_loss, cls_t, neg_pos_ratio, gt_boxes, gt_labels, class_names
    )
    fig.tight_layout()
    return fig
