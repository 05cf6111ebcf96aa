"""Drawings of the data: the augmentation step by step, many seeds, crop overlaps, shapes, and the
photometric distortion deferred to the GPU.

Pairs with notebook 07 (data augmentation); :func:`show_augmentation` is its explorer's drawing.

Paper: §2.2 "Data augmentation"; §3.6 (zoom out for small objects).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.viz.core import draw_boxes, show_image


def plot_augmentation_steps(
    image,
    boxes: Tensor,
    labels: Tensor,
    aug,
    transform=None,
    class_names: list[str] | None = None,
) -> Figure:
    """One sample through the augmentation, one panel per step, boxes drawn on each.

    Args:
        image: PIL image or ``[3, H, W]`` tensor.
        boxes: ``[N, 4]`` xyxy fractions; labels: ``[N]``.
        aug: an :class:`ssd_edu.data.transforms.Augmentation` (from ``transform.draw``); the
            panels switch its steps on one after another.
        transform: the :class:`~ssd_edu.data.transforms.TrainTransform` (default: size 300).
        class_names: names of classes 1..C for the captions.
    """
    import dataclasses

    from ssd_edu.data.transforms import TrainTransform
    from ssd_edu.imagenet import denormalize

    t = transform if transform is not None else TrainTransform()
    difficult = torch.zeros(len(labels), dtype=torch.bool)
    none = dataclasses.replace(aug, photometric=None, expand=None, crop=None, flip=False)
    steps = [
        ("resized only", none),
        ("+ photometric", dataclasses.replace(none, photometric=aug.photometric)),
        ("+ zoom out", dataclasses.replace(none, photometric=aug.photometric, expand=aug.expand)),
        ("+ min-IoU crop", dataclasses.replace(aug, flip=False)),
        ("+ flip = final", aug),
    ]
    fig, axes = plt.subplots(1, len(steps), figsize=(3.0 * len(steps), 3.4))
    for ax, (title, a) in zip(axes, steps):
        x, b, l, _ = t.apply(image, boxes, labels, difficult, a)
        if title == "+ min-IoU crop" and aug.crop is not None:
            title += f" ({aug.sampler})"
        size = show_image(ax, denormalize(x), title)
        draw_boxes(ax, b, size, labels=l, class_names=class_names)
    fig.tight_layout()
    return fig


def plot_augmented_grid(
    image,
    boxes: Tensor,
    labels: Tensor,
    transform=None,
    seeds=range(12),
    ncols: int = 6,
    class_names: list[str] | None = None,
) -> Figure:
    """The same sample augmented with several seeds: what the network sees over many epochs."""
    from ssd_edu.data.transforms import TrainTransform
    from ssd_edu.imagenet import denormalize

    t = transform if transform is not None else TrainTransform()
    seeds = list(seeds)
    nrows = (len(seeds) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.3 * nrows), squeeze=False)
    difficult = torch.zeros(len(labels), dtype=torch.bool)
    for ax in axes.flat[len(seeds) :]:
        ax.axis("off")
    for ax, seed in zip(axes.flat, seeds):
        g = torch.Generator().manual_seed(int(seed))
        x, b, l, _ = t(image, boxes, labels, difficult, generator=g)
        size = show_image(ax, denormalize(x), f"seed {seed}: {len(b)} box{'es' * (len(b) != 1)}")
        ax.title.set_fontsize(8)
        draw_boxes(ax, b, size, labels=l, class_names=class_names, linewidth=1.5)
    fig.tight_layout()
    return fig


def plot_deferred_photometric(raw: Tensor, finished: Tensor, reference: Tensor) -> Figure:
    """Deferred photometric distortion, column per image: the worker's output, then two finishes.

    Args:
        raw: ``[B, 3, S, S]`` uint8 from ``FastTrainTransform(defer_photometric=True)`` (geometry
            only).
        finished: ``[B, 3, S, S]`` normalised, ``finish_batch`` of ``raw``.
        reference: ``[B, 3, S, S]`` normalised, the same draws with the distortion done on the CPU
            (PIL, 8-bit HSV).
    """
    from ssd_edu.imagenet import denormalize

    rows = (
        ("from the worker: uint8,\ngeometry only", raw),
        ("finish_batch\n(the GPU's step)", finished),
        ("photometric on the CPU\n(PIL, 8-bit HSV)", reference),
    )
    n = raw.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(1.8 * n + 0.4, 5.6), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for b in range(n):
            image = images[b] if images.dtype == torch.uint8 else denormalize(images[b])
            show_image(axes[r, b], image)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_min_iou_behaviour(
    best_ious: dict, success: dict, trials: int = 50, title: str | None = None
) -> Figure:
    """Histograms of the overlap the crop sampler achieves, one per minimum-IoU setting.

    Args:
        best_ious: ``{min_iou: [best IoU of each accepted patch]}`` (``None`` = no constraint).
        success: ``{min_iou: fraction of images for which one of the trials met the constraint}``.
        trials: trials per image (for the caption).
    """
    keys = list(best_ious)
    fig, axes = plt.subplots(1, len(keys), figsize=(2.4 * len(keys), 2.8), sharey=True)
    bins = np.linspace(0, 1, 21)
    for k, (ax, key) in enumerate(zip(np.atleast_1d(axes), keys)):
        values = np.asarray(best_ious[key], dtype=float)
        ax.hist(values, bins=bins, color=plt.get_cmap("viridis")(k / max(1, len(keys) - 1)))
        if key is not None:
            ax.axvline(key, color="black", linestyle="--", linewidth=1)
        name = "no constraint" if key is None else f"min IoU {key}"
        ax.set_title(f"{name}\nfound in {100 * success[key]:.0f}% of images", fontsize=9)
        ax.set_xlabel("best IoU of patch")
    np.atleast_1d(axes)[0].set_ylabel(f"patches (first of {trials} trials)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_augmentation(
    image,
    boxes: Tensor,
    labels: Tensor,
    seed: int = 0,
    distort: bool = True,
    expand: bool = True,
    crop: bool = True,
    flip: bool = True,
    size: int = 300,
    class_names: list[str] | None = None,
) -> Figure:
    """The explorer's drawing: the sample and one augmented version, steps switched on or off."""
    from ssd_edu.data.transforms import TrainTransform, to_pil
    from ssd_edu.imagenet import denormalize

    t = TrainTransform(size=size, distort=distort, expand=expand, crop=crop, flip=flip)
    aug = t.draw(boxes, torch.Generator().manual_seed(int(seed)))
    difficult = torch.zeros(len(labels), dtype=torch.bool)
    x, b, l, _ = t.apply(image, boxes, labels, difficult, aug)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.8))
    wh = show_image(left, np.asarray(to_pil(image)), "input")
    draw_boxes(left, boxes, wh, labels=labels, class_names=class_names)
    if aug.crop is not None or aug.expand is not None:
        # the output's field of view, drawn on the input (it may reach past the image)
        wx1, wy1, wx2, wy2 = aug.window().tolist()
        left.add_patch(
            Rectangle(
                (wx1 * wh[0], wy1 * wh[1]),
                (wx2 - wx1) * wh[0],
                (wy2 - wy1) * wh[1],
                fill=False,
                edgecolor="white",
                linestyle="--",
                linewidth=1.5,
            )
        )
        left.set_xlim(min(0, wx1 * wh[0]), max(wh[0], wx2 * wh[0]))
        left.set_ylim(max(wh[1], wy2 * wh[1]), min(0, wy1 * wh[1]))
    sampler = "" if aug.crop is None else f", crop: {aug.sampler}"
    zoom = "" if aug.expand is None else f", zoom out x{aug.expand[0]:.2f}"
    out = show_image(right, denormalize(x), f"seed {seed}{zoom}{sampler}{', flipped' * aug.flip}")
    right.title.set_fontsize(9)
    draw_boxes(right, b, out, labels=l, class_names=class_names)
    fig.tight_layout()
    return fig


def plot_shapes_samples(dataset, indices=range(12), ncols: int = 6) -> Figure:
    """Items of a :class:`~ssd_edu.data.shapes.ShapesDataset` with their labelled boxes."""
    indices = list(indices)
    nrows = (len(indices) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols, 2.1 * nrows), squeeze=False)
    for ax in axes.flat[len(indices) :]:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        image, boxes, labels = dataset.render(i)
        size = show_image(ax, image, f"item {i}")
        ax.title.set_fontsize(8)
        draw_boxes(ax, boxes, size, labels=labels, class_names=dataset.class_names, linewidth=1.2)
    fig.tight_layout()
    return fig
