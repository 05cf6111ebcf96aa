"""Drawings of the matching step: overlap heat maps per feature map, and the positives.

Pairs with notebook 02 (matching); :func:`plot_matches` is its explorer's drawing.

Paper: §2.2 "Matching strategy".
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.boxes import cxcywh_to_xyxy
from ssd_edu.viz.core import class_colour, draw_boxes, draw_priors, show_image


def plot_iou_maps(
    iou: Tensor, cfg, gt_box: Tensor | None = None, title: str | None = None
) -> Figure:
    """One heat map per feature map: the best overlap of any default box of each cell.

    Args:
        iou: ``[P]`` overlap of every default box with one object, in default-box order.
        cfg: the :class:`ssd_edu.priors.PriorConfig` that made the default boxes.
        gt_box: ``[4]`` xyxy fractions of the object, outlined on every panel.
        title: figure title.

    Returns:
        The figure: panels share the colour scale 0..1; cell ``(i, j)`` is drawn where it sits
        on the image, so the object's outline lies over the cells that overlap it.

    Paper: §2.2 "Matching strategy" (jaccard overlap per default box).
    """
    if iou.ndim != 1 or iou.shape[0] != cfg.num_priors:
        raise ValueError(f"iou must have shape [{cfg.num_priors}], got {list(iou.shape)}")
    iou = iou.detach().cpu().float()
    m = len(cfg.feature_maps)
    fig, axes = plt.subplots(1, m, figsize=(2.3 * m + 0.8, 2.9), squeeze=False)
    start = 0
    for k, ax in enumerate(axes[0]):
        f, n = cfg.feature_maps[k], cfg.boxes_per_map[k]
        grid = iou[start : start + n].reshape(f, f, -1).amax(-1)  # [f, f]: best box per cell
        start += n
        image = ax.imshow(grid.numpy(), extent=(0, 1, 1, 0), vmin=0, vmax=1, cmap="viridis")
        if gt_box is not None:
            x1, y1, x2, y2 = gt_box.tolist()
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", lw=1.5))
        ax.set_title(f"{f}x{f} map, best {float(grid.max()):.2f}", fontsize=9)
        ax.set_xlabel("x (fraction of width)", fontsize=8)
        if k == 0:
            ax.set_ylabel("y (fraction of height)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=list(axes[0]), fraction=0.015, pad=0.01, label="IoU")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def draw_matches(
    ax: Axes,
    image: Tensor | np.ndarray,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    priors: Tensor,
    iou_threshold: float = 0.5,
    class_names: list[str] | None = None,
) -> Tensor:
    """Draw the objects and the default boxes matched to them (positives) at one threshold.

    Positives are thin boxes in their object's class colour; forced matches (kept although their
    overlap is below the threshold) are dashed and thicker. The title counts positives per object.

    Args:
        ax: where to draw.
        image: ``[3, H, W]`` tensor or ``[H, W, 3]`` array.
        gt_boxes: ``[G, 4]`` xyxy fractions.
        gt_labels: ``[G]`` classes in 1..C.
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: the threshold of the matching's second step.
        class_names: names of classes 1..C, for the captions.

    Returns:
        ``[P]`` the matches (object index or -1), as :func:`ssd_edu.matching.match` gives them.

    Paper: §2.2 "Matching strategy".
    """
    from ssd_edu.boxes import box_iou
    from ssd_edu.matching import match

    matches = match(gt_boxes, priors, iou_threshold).cpu()  # [P]
    gt_boxes, gt_labels, priors = gt_boxes.cpu(), gt_labels.cpu(), priors.cpu()
    size = show_image(ax, image)
    positive = torch.nonzero(matches >= 0).squeeze(1)  # [N]
    owner = matches[positive]  # [N]
    overlap = box_iou(gt_boxes, cxcywh_to_xyxy(priors[positive]))[owner, torch.arange(len(owner))]
    forced = overlap < iou_threshold  # [N]
    for g in range(len(gt_boxes)):
        colour = class_colour(int(gt_labels[g]))
        mine = owner == g
        draw_priors(ax, priors[positive[mine & ~forced]], size, colour=colour, linewidth=0.8)
        draw_priors(
            ax, priors[positive[mine & forced]], size, colour=colour, linewidth=2, linestyle="--"
        )
    draw_boxes(ax, gt_boxes, size, labels=gt_labels, class_names=class_names, linewidth=3)
    counts = torch.bincount(owner, minlength=len(gt_boxes)).tolist()
    ax.set_title(f"IoU >= {iou_threshold:.2f}: positives per object {counts}", fontsize=9)
    return matches


def plot_matches(
    image: Tensor | np.ndarray,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    priors: Tensor,
    iou_threshold: float = 0.5,
    class_names: list[str] | None = None,
) -> Figure:
    """:func:`draw_matches` on a new figure: the drawing of the matching explorer."""
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_matches(ax, image, gt_boxes, gt_labels, priors, iou_threshold, class_names)
    fig.tight_layout()
    return fig


def match_decisions(iou: Tensor, matches: Tensor, iou_threshold: float = 0.5) -> list[list[str]]:
    """Name the matching decision behind every cell of a small ``[G, P]`` overlap table.

    Args:
        iou: ``[G, P]`` overlaps of G objects with P default boxes.
        matches: ``[P]`` the result of :func:`ssd_edu.matching.match` (object index or -1).
        iou_threshold: the threshold step's overlap.

    Returns:
        ``[G][P]`` strings: ``"forced"`` (the object's best box among those matched to it, kept by
        step 1), ``"threshold"`` (matched by step 2), ``"overridden"`` (the box's best overlap,
        at or above the threshold, lost to another object's forced match) or ``""``.
    """
    g_count, p_count = iou.shape
    out = [[""] * p_count for _ in range(g_count)]
    best_gt = iou.argmax(0)  # [P] each box's best object
    for g in range(g_count):
        mine = torch.nonzero(matches == g).squeeze(1)  # [k] the boxes matched to g
        forced = int(mine[iou[g, mine].argmax()]) if len(mine) else -1
        for p in range(p_count):
            if p == forced:
                out[g][p] = "forced"
            elif int(matches[p]) == g:
                out[g][p] = "threshold"
            elif int(best_gt[p]) == g and iou[g, p] >= iou_threshold:
                out[g][p] = "overridden"
    return out


DECISION_COLOURS = {"forced": "gold", "threshold": "palegreen", "overridden": "lightsalmon"}


def plot_match_table(
    iou: Tensor,
    matches: Tensor,
    iou_threshold: float = 0.5,
    object_names: list[str] | None = None,
) -> Figure:
    """A worked matching example as a table: the overlaps, each decision coloured, the result.

    Rows are objects and columns default boxes; each cell shows the overlap and is coloured by
    :func:`match_decisions` (gold forced, green threshold, salmon overridden); the bottom row is
    what the default box ends up with.

    Args:
        iou: ``[G, P]`` overlaps (:func:`ssd_edu.boxes.box_iou` of objects and default boxes).
        matches: ``[P]`` from :func:`ssd_edu.matching.match`.
        iou_threshold: the threshold step's overlap.
        object_names: a name per object (default A, B, C, ...).

    Returns:
        A new figure.
    """
    g_count, p_count = iou.shape
    names = object_names or [chr(ord("A") + g) for g in range(g_count)]
    decisions = match_decisions(iou, matches, iou_threshold)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * p_count, 0.9 + 0.5 * (g_count + 1)))
    for g in range(g_count):
        for p in range(p_count):
            colour = DECISION_COLOURS.get(decisions[g][p], "white")
            ax.add_patch(Rectangle((p, g), 1, 1, facecolor=colour, edgecolor="grey"))
            weight = "bold" if iou[g, p] >= iou_threshold else "normal"
            ax.text(p + 0.5, g + 0.5, f"{float(iou[g, p]):.2f}", ha="center", va="center",
                    fontweight=weight, fontsize=9)
    for p in range(p_count):  # the outcome row
        m = int(matches[p])
        ax.add_patch(Rectangle((p, g_count), 1, 1, facecolor="0.92", edgecolor="grey"))
        ax.text(p + 0.5, g_count + 0.5, names[m] if m >= 0 else "bg", ha="center", va="center",
                fontsize=9, fontweight="bold")
    ax.set_xlim(0, p_count)
    ax.set_ylim(g_count + 1, 0)
    ax.set_xticks(np.arange(p_count) + 0.5, [f"d{p}" for p in range(p_count)])
    ax.set_yticks(np.arange(g_count + 1) + 0.5, [*names, "match"])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    handles = [Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="grey", label=k)
               for k, c in DECISION_COLOURS.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3,
              fontsize=8, frameon=False)
    ax.set_title(f"overlaps (bold: >= {iou_threshold})", fontsize=9, pad=18)
    fig.tight_layout()
    return fig
