"""Drawings of default boxes: one cell's boxes on a photo, and one cell per feature map.

Pairs with notebook 01 (default boxes) and its explorer in :mod:`ssd_edu.widgets`.

Paper: §2.2 "Choosing scales and aspect ratios for default boxes" (eq. 4).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.boxes import cxcywh_to_xyxy
from ssd_edu.viz.core import _CELL_BOX_COLOURS, show_image, square_image


def cell_box_names(cfg, k: int) -> list[str]:
    """Legend names of the boxes of one cell of map ``k``, in docs/design.md order."""
    names = [r"1:1, side $s_k$", r"1:1, side $s'_k = \sqrt{s_k s_{k+1}}$"]
    for a in cfg.aspect_ratios[k]:
        names += [f"{a:g}:1 ($a_r = {a:g}$)", f"1:{a:g} ($a_r = 1/{a:g}$)"]
    return names


def cell_at(cfg, k: int, x: float, y: float) -> tuple[int, int]:
    """The cell ``(i, j)`` of feature map ``k`` whose square holds the point ``(x, y)``.

    Cell ``(i, j)`` covers ``[j, j + 1) * step_k`` by ``[i, i + 1) * step_k`` input pixels (its
    centre is at ``(j + 0.5) * step_k``). ``f_k * step_k`` may pass the image (SSD300's 10x10 map:
    320 px), so the cell is found by steps, not by splitting the image in ``f_k``.

    Args:
        cfg: a :class:`ssd_edu.priors.PriorConfig`.
        k: feature map, 0-based.
        x, y: the point, fractions of the image in [0, 1].

    Returns:
        ``(row, column)``, each in ``[0, f_k - 1]``.

    Paper: §2.2 (default boxes tile the feature maps in a convolutional manner).
    """
    f, step, size = cfg.feature_maps[k], cfg.steps[k], cfg.image_size
    return min(math.floor(y * size / step), f - 1), min(math.floor(x * size / step), f - 1)


def plot_cell_default_boxes(
    ax: Axes,
    image: Tensor,
    cfg,
    k: int,
    i: int | None = None,
    j: int | None = None,
    grid: bool = True,
    margin: float = 0.15,
    legend: bool = True,
) -> Tensor:
    """Draw the default boxes of cell ``(i, j)`` of feature map ``k`` on a photo.

    The photo is squashed to ``cfg.image_size`` pixels square (what the network sees); the map's
    cells are drawn as a faint grid, the chosen cell shaded, and each of its default boxes drawn
    in its own colour. The axes extend ``margin`` of the image beyond each side, because large
    default boxes leave the image (the released models do not clip them).

    Args:
        ax: where to draw.
        image: ``[3, H, W]`` photo, floats in [0, 1].
        cfg: a :class:`ssd_edu.priors.PriorConfig`.
        k: feature map, 0-based (0 is the largest map).
        i: cell row; the middle row when ``None``.
        j: cell column; the middle column when ``None``.
        grid: draw the map's cell grid.
        margin: extra space around the image, as a fraction of its side.
        legend: add a legend naming each box's aspect ratio.

    Returns:
        ``[A, 4]`` cxcywh fractions: the boxes drawn, in default-box order (A = 2 + 2 * ratios).

    Paper: §2.2, "Choosing scales and aspect ratios for default boxes" (eq. 4).
    """
    from ssd_edu.priors import cell_boxes_wh

    m = len(cfg.feature_maps)
    if not 0 <= k < m:
        raise ValueError(f"k must be a feature-map index in [0, {m - 1}], got {k}")
    f = cfg.feature_maps[k]
    i = f // 2 if i is None else i
    j = f // 2 if j is None else j
    for name, v in (("i", i), ("j", j)):
        if not 0 <= v < f:
            raise ValueError(f"{name} must be a cell index in [0, {f - 1}] for map {k}, got {v}")

    side = cfg.image_size
    show_image(ax, square_image(image, side))
    step = cfg.steps[k]  # pixels of input per cell
    if grid:
        lines = np.arange(f + 1) * step
        ax.vlines(lines, 0, f * step, colors="white", linewidth=0.5, alpha=0.5)
        ax.hlines(lines, 0, f * step, colors="white", linewidth=0.5, alpha=0.5)
    cell = Rectangle((j * step, i * step), step, step, facecolor="white", alpha=0.45)
    cell.set(edgecolor="none", gid="cell")
    ax.add_patch(cell)
    centre = torch.tensor([(j + 0.5) * step, (i + 0.5) * step], dtype=torch.float64) / side
    wh = cell_boxes_wh(cfg, k, dtype=torch.float64)  # [A, 2]
    boxes = torch.cat((centre.expand_as(wh), wh), dim=1)  # [A, 4] cxcywh
    corners = (cxcywh_to_xyxy(boxes) * side).tolist()
    for n, ((x1, y1, x2, y2), name) in enumerate(zip(corners, cell_box_names(cfg, k))):
        colour = _CELL_BOX_COLOURS[n % len(_CELL_BOX_COLOURS)]
        box = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, linewidth=2, edgecolor=colour)
        box.set(label=name, gid="default_box")
        ax.add_patch(box)
    ax.plot(*(centre * side).tolist(), marker="o", color="white", markeredgecolor="black")
    pad = margin * side
    for spine in ax.spines.values():
        spine.set_visible(False)  # the margin around the photo needs no frame
    ax.set_xlim(-pad, side + pad)
    ax.set_ylim(side + pad, -pad)
    ax.set_title(f"map {k}: {f}x{f}, cell ({i}, {j}), s_k = {cfg.min_sizes[k] / side:.3g}")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return boxes.to(torch.float32)


def plot_default_boxes_per_map(image: Tensor, cfg, ncols: int = 3) -> Figure:
    """One panel per feature map: the default boxes of its middle cell drawn on the photo.

    Small maps (coarse cells) carry large boxes; large maps (fine cells) small ones: each map
    answers for objects of one range of sizes.

    Args:
        image: ``[3, H, W]`` photo, floats in [0, 1].
        cfg: a :class:`ssd_edu.priors.PriorConfig`.
        ncols: panels per row.

    Returns:
        The figure; one legend (the boxes of the map with the most ratios) below the panels.

    Paper: §2.2 and Fig. 1 (default boxes on 8x8 and 4x4 maps).
    """
    m = len(cfg.feature_maps)
    nrows = -(-m // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 3.0 * nrows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= m:
            ax.axis("off")
            continue
        plot_cell_default_boxes(ax, image, cfg, k, legend=False)
        ax.set_title(f"map {k}: {cfg.feature_maps[k]}x{cfg.feature_maps[k]}", fontsize=10)
    widest = max(range(m), key=lambda k: len(cfg.aspect_ratios[k]))
    handles, labels = axes.flat[widest].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
