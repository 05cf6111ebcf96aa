"""Drawings of a training run: loss, learning-rate and mAP curves, and detections on images.

Pairs with notebooks 09 (training on shapes, CPU) and 10 (SSD300 on VOC, GPU);
:func:`plot_detections_above` is notebook 09's explorer's drawing.

Paper: §2.2 "Training objective" (eq. 1); §3, §3.1 (SGD settings, VOC2007 results).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.viz.core import draw_boxes, show_image


def plot_training_log(rows, title: str | None = None) -> Figure:
    """Loss curves, learning rate and held-out mAP of a training run, against iterations.

    Args:
        rows: the log of :func:`ssd_edu.train.train` (``TrainResult.log``), or the path of its
            ``log.csv``: dicts with ``iteration``, ``loss``, ``loc_loss``, ``conf_loss``, ``lr``
            and ``mAP`` (``None`` where not measured).
        title: optional figure title.

    Returns:
        A figure with two panels: losses (log scale) with the learning rate on a second axis, and
        mAP (drawn only where it was measured).
    """
    if isinstance(rows, (str, os.PathLike)):
        from ssd_edu.runlog import read_log

        rows = read_log(rows)
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 3.6))

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(r["iteration"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, label, style in (
        ("loss", "total", "-"),
        ("conf_loss", "confidence (softmax)", "--"),
        ("loc_loss", "localisation (smooth L1)", ":"),
    ):
        x, y = series(key)
        ax_loss.plot(x, y, style, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("training loss (mean over log window)")
    ax_lr = ax_loss.twinx()
    x, y = series("lr")
    ax_lr.plot(x, y, color="tab:grey", alpha=0.6, linewidth=1, label="learning rate")
    ax_lr.set_ylabel("learning rate", color="tab:grey")
    lines = ax_loss.get_legend_handles_labels()
    lr_lines = ax_lr.get_legend_handles_labels()
    ax_loss.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], fontsize=8, loc="upper right")

    x, y = series("mAP")
    ax_map.plot(x, y, "o-", color="tab:green")
    ax_map.set_ylim(0, 1)
    ax_map.set_xlabel("iteration")
    ax_map.set_ylabel("held-out mAP (VOC07 11-point)")
    ax_map.grid(alpha=0.3)
    for xi, yi in zip(x, y):
        ax_map.annotate(
            f"{yi:.3f}", (xi, yi), textcoords="offset points", xytext=(0, 6), ha="center", size=8
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_detections_grid(
    images: Tensor,
    detections,
    class_names: list[str],
    ground_truths=None,
    ncols: int = 4,
    titles: list[str] | None = None,
    normalised: bool = True,
) -> Figure:
    """A grid of images with their detections (coloured by class) and optional ground truth.

    Args:
        images: ``[B, 3, S, S]``; ImageNet-normalised model inputs when ``normalised``.
        detections: per image ``(boxes [K, 4] xyxy fractions, scores [K], labels [K])``.
        class_names: the C object class names (label ``l`` is ``class_names[l - 1]``).
        ground_truths: optional, per image ``(boxes [G, 4], labels [G], ...)``, drawn dashed white.
        ncols: images per row.
        titles: optional caption per image.
        normalised: undo the ImageNet normalisation before showing.

    Returns:
        The figure.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [B, 3, H, W], got {list(images.shape)}")
    if len(detections) != images.shape[0]:
        raise ValueError(
            f"detections must have one entry per image ({images.shape[0]}), got {len(detections)}"
        )
    if normalised:
        from ssd_edu.data.transforms import denormalize

        images = torch.stack([denormalize(im.detach().cpu().float()) for im in images])
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        size = show_image(ax, images[i], title=titles[i] if titles else None)
        if ground_truths is not None:
            gt_boxes = ground_truths[i][0]
            draw_boxes(ax, gt_boxes.float(), size, colour="white", linestyle="--", linewidth=1)
        boxes, scores, labels = detections[i]
        draw_boxes(ax, boxes.float(), size, labels=labels, scores=scores, class_names=class_names)
    fig.tight_layout()
    return fig


def plot_detections_above(
    images: Tensor,
    detections,
    class_names: list[str],
    score_threshold: float = 0.5,
    ground_truths=None,
    ncols: int = 4,
) -> Figure:
    """:func:`plot_detections_grid` keeping only detections scoring at least ``score_threshold``.

    The drawing behind notebook 09's explorer: raise the threshold and false positives vanish
    first, then the weaker true detections (precision against recall, one image at a time).

    Args:
        images: ``[B, 3, S, S]`` normalised model inputs.
        detections: per image ``(boxes [K, 4], scores [K], labels [K])``, e.g. from
            ``ssd_edu.train.predict`` with a low threshold.
        class_names: the C object class names.
        score_threshold: the minimum score drawn, in ``[0, 1]``.
        ground_truths: optional, per image ``(boxes [G, 4], labels [G], ...)``, drawn dashed.
        ncols: images per row.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must lie in [0, 1], got {score_threshold}")
    kept = []
    for boxes, scores, labels in detections:
        keep = scores >= score_threshold  # [K]
        kept.append((boxes[keep], scores[keep], labels[keep]))
    counts = [len(k[1]) for k in kept]
    titles = [f"{c} box{'es' if c != 1 else ''} >= {score_threshold:.2f}" for c in counts]
    return plot_detections_grid(images, kept, class_names, ground_truths, ncols, titles)
