"""Shared drawing helpers: images, boxes and default boxes, in one colour per class everywhere.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``), so the
notebooks, the ipywidgets explorers and the tests all call the same plain functions. Boxes are
fractions of the image (docs/design.md); the functions scale them to the pixels of the image shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.atomic import atomic_write
from ssd_edu.boxes import _check_boxes, cxcywh_to_xyxy

# the repository's top-level figures/ (this file is ssd_edu/viz/core.py)
FIGURES_DIR = Path(__file__).resolve().parents[2] / "figures"


def is_smoke() -> bool:
    """True when ``SSD_EDU_SMOKE=1``: notebooks then run small versions of heavy cells."""
    return os.environ.get("SSD_EDU_SMOKE", "0") not in ("", "0", "false", "False")


def save_figure(fig: Figure, name: str, dpi: int = 100) -> Path | None:
    """Write ``fig`` to ``figures/name`` (PNG), atomically; skipped in smoke mode.

    Smoke runs (the tests) must not change the work tree, and a half-written PNG must never
    replace a good one, hence the temporary file and ``os.replace``.

    Returns:
        The path written, or ``None`` in smoke mode.
    """
    if is_smoke():
        return None
    return atomic_write(
        FIGURES_DIR / name, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    )


def class_colour(label: int) -> tuple[float, float, float, float]:
    """The colour of a class: the same in every figure; background (0) is grey."""
    if label == 0:
        return (0.5, 0.5, 0.5, 1.0)
    return plt.get_cmap("tab20")((2 * (label - 1)) % 20 + ((label - 1) // 10) % 2)


def sample_photo() -> Tensor:
    """A real photo that ships with matplotlib (Grace Hopper), as ``[3, H, W]`` floats in [0, 1]."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = plt.imread(f)
    # np.array copies: imread's array is read-only, which torch warns about
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0


def _to_hwc(image: Tensor | np.ndarray) -> np.ndarray:
    """``[3, H, W]`` tensor or ``[H, W, 3]`` array -> ``[H, W, 3]`` array for imshow."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"image tensor must have shape [3, H, W], got {list(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).float().numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8 and image.max() > 1.0:
        image = image / 255.0
    return np.clip(image, 0, 1) if image.dtype != np.uint8 else image


def show_image(ax: Axes, image: Tensor | np.ndarray, title: str | None = None) -> tuple[int, int]:
    """Show an image without axes ticks.

    Args:
        ax: where to draw.
        image: ``[3, H, W]`` tensor (floats in [0, 1] or [0, 255]) or ``[H, W, 3]`` array.
        title: optional title.

    Returns:
        ``(width, height)`` in pixels, to pass to the box-drawing functions.
    """
    hwc = _to_hwc(image)
    ax.imshow(hwc)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return hwc.shape[1], hwc.shape[0]


# a box starting this close to the image's top (a fraction of its height) has no room above it
# for an 8-point caption in the figures of the notebooks (panels 2 to 5 inches tall)
CAPTION_INSIDE_BELOW = 0.08


def draw_boxes(
    ax: Axes,
    boxes: Tensor,
    image_size: tuple[int, int],
    labels: Tensor | None = None,
    scores: Tensor | None = None,
    class_names: list[str] | None = None,
    colour=None,
    linewidth: float = 2.0,
    linestyle: str = "-",
    alpha: float = 1.0,
) -> None:
    """Draw xyxy boxes given as fractions, scaled to an image of ``image_size = (width, height)``.

    Args:
        ax: where to draw.
        boxes: ``[N, 4]`` xyxy fractions.
        image_size: ``(width, height)`` in pixels of the image shown on ``ax``.
        labels: ``[N]`` class indices; sets the colour and, with ``class_names``, the caption.
        scores: ``[N]`` confidences, added to the caption.
        class_names: names of the object classes 1..C (label ``l`` is ``class_names[l - 1]``).
        colour: one colour for all boxes (overrides the class colour).
    """
    _check_boxes("boxes", boxes, ndim=2)
    width, height = image_size
    boxes = boxes.detach().cpu().float()
    for n, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        label = int(labels[n]) if labels is not None else None
        c = colour if colour is not None else class_colour(label if label is not None else 1)
        ax.add_patch(
            Rectangle(
                (x1 * width, y1 * height),
                (x2 - x1) * width,
                (y2 - y1) * height,
                fill=False,
                edgecolor=c,
                linewidth=linewidth,
                linestyle=linestyle,
                alpha=alpha,
            )
        )
        caption = []
        if label is not None and class_names is not None:
            caption.append(class_names[label - 1] if label > 0 else "background")
        if scores is not None:
            caption.append(f"{float(scores[n]):.2f}")
        if caption:
            # above the box, or inside it when the box starts at the image's top: above it, the
            # caption would cover the panel's title
            inside = y1 < CAPTION_INSIDE_BELOW
            ax.text(
                x1 * width,
                y1 * height,
                " ".join(caption),
                fontsize=8,
                color="white",
                va="top" if inside else "bottom",
                bbox={"facecolor": c, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
            )


def draw_priors(
    ax: Axes, priors: Tensor, image_size: tuple[int, int], colour="tab:orange", **kwargs
) -> None:
    """Draw default boxes, ``[N, 4]`` cxcywh fractions, on an image of ``(width, height)`` px."""
    draw_boxes(ax, cxcywh_to_xyxy(priors), image_size, colour=colour, **kwargs)


# one colour per position within a cell: small square, large square, then (a, 1/a) per ratio
_CELL_BOX_COLOURS = ("tab:orange", "tab:red", "tab:cyan", "tab:blue", "tab:olive", "tab:green")


def square_image(image: Tensor, size: int) -> Tensor:
    """Resize a ``[3, H, W]`` image to ``[3, size, size]``: what an SSD of that input size sees.

    SSD squashes every photo to a square (aspect ratio not kept), so drawing default boxes on the
    squashed photo shows them exactly as the network's cells cover it.
    """
    if not isinstance(image, Tensor) or image.ndim != 3:
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a [3, H, W] tensor, got {got}")
    resized = torch.nn.functional.interpolate(
        image[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].clamp(0, 1)  # [3, size, size]
