"""Drawing for the notebooks: images, boxes, default boxes, in one colour per class everywhere.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``), so the
notebooks, the ipywidgets explorers and the tests all call the same plain functions. Boxes are
fractions of the image (DESIGN.md); the functions scale them to the pixels of the image shown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.boxes import _check_boxes, cxcywh_to_xyxy

FIGURES_DIR = Path(__file__).resolve().parent.parent / "figures"


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
    FIGURES_DIR.mkdir(exist_ok=True)
    path = FIGURES_DIR / name
    with tempfile.NamedTemporaryFile(dir=FIGURES_DIR, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile makes 0600 files
    os.replace(tmp.name, path)
    return path


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
            ax.text(
                x1 * width,
                y1 * height,
                " ".join(caption),
                fontsize=8,
                color="white",
                va="bottom",
                bbox={"facecolor": c, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
            )


def draw_priors(
    ax: Axes, priors: Tensor, image_size: tuple[int, int], colour="tab:orange", **kwargs
) -> None:
    """Draw default boxes, ``[N, 4]`` cxcywh fractions, on an image of ``(width, height)`` px."""
    draw_boxes(ax, cxcywh_to_xyxy(priors), image_size, colour=colour, **kwargs)


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
    from ssd_edu.evaluate import average_precision

    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    # envelope: best precision at this recall or beyond (what both AP forms read)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    mrec = np.concatenate(([0.0], recall, [1.0]))
    menv = np.concatenate((envelope[:1] if len(envelope) else [0.0], envelope, [0.0]))
    ax.fill_between(mrec, menv, step="pre", alpha=0.2, color="tab:blue", label="area form")
    ax.step(mrec, menv, where="pre", color="tab:blue", linewidth=1.2)
    ax.plot(recall, precision, "o-", color="tab:grey", markersize=5, linewidth=1, label="raw P/R")
    levels = np.arange(11) / 10
    sampled = [envelope[recall >= t].max() if (recall >= t).any() else 0.0 for t in levels]
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
        from ssd_edu.train import read_log

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


# ---------------------------------------------------------------- default boxes (notebook 01)

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


def cell_box_names(cfg, k: int) -> list[str]:
    """Legend names of the boxes of one cell of map ``k``, in DESIGN.md order."""
    names = [r"1:1, side $s_k$", r"1:1, side $s'_k = \sqrt{s_k s_{k+1}}$"]
    for a in cfg.aspect_ratios[k]:
        names += [f"{a:g}:1 ($a_r = {a:g}$)", f"1:{a:g} ($a_r = 1/{a:g}$)"]
    return names


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
    ax.add_patch(
        Rectangle(
            (j * step, i * step),
            step,
            step,
            facecolor="white",
            alpha=0.45,
            edgecolor="none",
            gid="cell",
        )
    )
    centre = torch.tensor([(j + 0.5) * step, (i + 0.5) * step], dtype=torch.float64) / side
    wh = cell_boxes_wh(cfg, k, dtype=torch.float64)  # [A, 2]
    boxes = torch.cat((centre.expand_as(wh), wh), dim=1)  # [A, 4] cxcywh
    for n, ((x1, y1, x2, y2), name) in enumerate(
        zip((cxcywh_to_xyxy(boxes) * side).tolist(), cell_box_names(cfg, k))
    ):
        ax.add_patch(
            Rectangle(
                (x1, y1),
                x2 - x1,
                y2 - y1,
                fill=False,
                linewidth=2,
                edgecolor=_CELL_BOX_COLOURS[n % len(_CELL_BOX_COLOURS)],
                label=name,
                gid="default_box",
            )
        )
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


# ---------------------------------------------------------------- matching (notebook 02)


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


# --- notebook 06: the network (fc6/fc7 decimation, receptive fields) ------------------------------


def draw_fc6_decimation() -> Figure:
    """How VGG16's fc6/fc7 become SSD's atrous fc6 and 1x1 fc7, drawn in input pixels.

    Left: VGG16's fc6 reads a 7x7 window of pool5 (cells 32 px apart); the decimation keeps taps
    0, 3 and 6 in each direction. Middle: SSD's pool5 keeps stride 16, so the same taps are 6 cells
    apart: a 3x3 kernel with dilation 6 covering the same 192 px. Right: the filters kept (every
    4th of fc6's 4096 outputs; for fc7 every 4th output and input), shown on a corner of fc7.

    Returns:
        A new figure with three panels.

    Paper: §2.1 (fc6/fc7 subsampled, atrous algorithm), figure 2.
    """
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for ax, n, step, title in (
        (axes[0], 7, 32, "VGG16 fc6: 7x7 taps on pool5\n(32 px apart)"),
        (axes[1], 13, 16, "SSD fc6: 3x3 taps, dilation 6\n(pool5 at stride 16: 16 px apart)"),
    ):
        kept_every = 3 if n == 7 else 6
        for r in range(n):
            for c in range(n):
                kept = r % kept_every == 0 and c % kept_every == 0
                ax.add_patch(
                    Rectangle(
                        (c * step - step / 2, r * step - step / 2),
                        step,
                        step,
                        facecolor="tab:red" if kept else "white",
                        edgecolor="0.6",
                        linewidth=0.8,
                    )
                )
        ax.set_xlim(-step, 6 * 32 + step)
        ax.set_ylim(6 * 32 + step, -step)
        ax.set_aspect("equal")
        ax.set_xlabel("x offset of the tap in the input (px)")
        ax.set_ylabel("y offset (px)")
        ax.set_title(title, fontsize=10)
    corner = np.zeros((16, 16))
    corner[::4, ::4] = 1.0  # fc7[::4, ::4]
    axes[2].imshow(corner, cmap="Reds", vmin=0, vmax=1.3)
    axes[2].set_xticks(range(0, 16, 4))
    axes[2].set_yticks(range(0, 16, 4))
    axes[2].set_xlabel("fc7 input (fc6 filter) index")
    axes[2].set_ylabel("fc7 output index")
    axes[2].set_title("fc7 [4096, 4096] -> [1024, 1024]:\nevery 4th row and column", fontsize=10)
    fig.tight_layout()
    return fig


def plot_receptive_fields(ax: Axes, cfg, rfs, names: list[str] | None = None) -> None:
    """Theoretical receptive field of each map's predictions against its default-box sizes.

    Args:
        ax: where to draw.
        cfg: the :class:`~ssd_edu.priors.PriorConfig`.
        rfs: one receptive-field side (px) per map, e.g. ``ssd_edu.model.receptive_fields``.
        names: map names for the x axis (default ``map k``).

    Paper: §2.2 (the default boxes need not follow the receptive fields).
    """
    m = len(cfg.feature_maps)
    if len(rfs) != m:
        raise ValueError(f"rfs must have one entry per feature map ({m}), got {len(rfs)}")
    x = np.arange(m)
    s_k = np.asarray(cfg.min_sizes, dtype=float)
    s_k_prime = np.sqrt(s_k * np.asarray(cfg.max_sizes, dtype=float))
    widest = np.array([s * np.sqrt(max(r, default=1)) for s, r in zip(s_k, cfg.aspect_ratios)])
    ax.plot(x, rfs, "o-", color="tab:purple", label="receptive field (theoretical)")
    ax.plot(x, s_k, "s-", color="tab:orange", label=r"default box side $s_k$")
    ax.plot(x, s_k_prime, "s--", color="tab:red", label=r"$s'_k = \sqrt{s_k s_{k+1}}$")
    ax.plot(x, widest, "^:", color="tab:blue", label="longest side (widest ratio)")
    ax.axhline(cfg.image_size, color="0.5", linewidth=1)
    ax.text(0, cfg.image_size * 1.05, f"image ({cfg.image_size} px)", color="0.4", fontsize=8)
    labels = names or [f"map {k}" for k in range(m)]
    ax.set_xticks(x, [f"{n}\n{f}x{f}" for n, f in zip(labels, cfg.feature_maps)], fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("source feature map")
    ax.set_ylabel("size in input pixels (log scale)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")


def receptive_field_figure(
    image: Tensor, cfg, rfs, k: int, x: float = 0.5, y: float = 0.5
) -> tuple[Figure, list[int]]:
    """One cell of map ``k``: its default boxes and its theoretical receptive field on a photo.

    The drawing behind notebook 06's explorer. The cell is the one containing the point ``(x, y)``
    (fractions of the image).

    Args:
        image: ``[3, H, W]`` in [0, 1]; shown squashed to ``cfg.image_size`` as the network sees it.
        cfg: the :class:`~ssd_edu.priors.PriorConfig`.
        rfs: receptive-field side (px) per map.
        k: map index, 0-based.
        x, y: a point of the image, fractions in [0, 1].

    Returns:
        The figure and the output rows (indices into the ``P`` default boxes) of the cell's boxes.
    """
    from ssd_edu.priors import cell_boxes_wh

    if not 0 <= k < len(cfg.feature_maps):
        raise ValueError(f"k must be a map index in [0, {len(cfg.feature_maps) - 1}], got {k}")
    f, size = cfg.feature_maps[k], cfg.image_size
    i, j = min(int(y * f), f - 1), min(int(x * f), f - 1)
    n_boxes = cfg.boxes_per_location[k]
    first = sum(cfg.boxes_per_map[:k]) + (i * f + j) * n_boxes
    rows = list(range(first, first + n_boxes))

    fig, ax = plt.subplots(figsize=(5, 5))
    show_image(ax, square_image(image, size))
    cx, cy = (j + 0.5) * cfg.steps[k], (i + 0.5) * cfg.steps[k]  # px
    step = cfg.steps[k]
    ax.add_patch(
        Rectangle((cx - step / 2, cy - step / 2), step, step, color="white", alpha=0.5)
    )  # the cell itself
    rf = rfs[k]
    ax.add_patch(
        Rectangle(
            (cx - rf / 2, cy - rf / 2), rf, rf, fill=False, edgecolor="tab:purple", linewidth=2.5,
            linestyle="--",
            label=f"receptive field {rf} px" + (" (beyond the image)" if rf >= size else ""),
        )
    )  # fmt: skip
    for a, (w, h) in enumerate(cell_boxes_wh(cfg, k).tolist()):
        ax.add_patch(
            Rectangle(
                (cx - w * size / 2, cy - h * size / 2), w * size, h * size, fill=False,
                edgecolor=_CELL_BOX_COLOURS[a % len(_CELL_BOX_COLOURS)], linewidth=1.8,
            )
        )
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"map {k} ({f}x{f}), cell (i={i}, j={j}): rows {rows[0]}..{rows[-1]}", fontsize=9)
    fig.tight_layout()
    return fig, rows


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


# --- data augmentation (notebook 07) ---------------------------------------------------------


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

    from ssd_edu.data.transforms import TrainTransform, denormalize

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
    from ssd_edu.data.transforms import TrainTransform, denormalize

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
    from ssd_edu.data.transforms import TrainTransform, denormalize, to_pil

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


# ---------------------------------------------------------------- hard negative mining (nb 03)


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


# ---------------------------------------------------------------- Smooth L1 (nb 04)


def plot_smooth_l1(beta: float = 1.0, x_max: float = 3.0) -> Figure:
    """Smooth L1 next to L1 and L2, as values (left) and as gradients (right).

    Args:
        beta: where Smooth L1 turns from quadratic to linear (1 in the paper).
        x_max: the curves span ``[-x_max, x_max]``.

    Returns:
        The figure.

    Paper: §2.2, eq. 2 (Smooth L1 for the localisation loss).
    """
    from ssd_edu.loss import smooth_l1

    x = torch.linspace(-x_max, x_max, 601, dtype=torch.float64, requires_grad=True)
    curves = {
        "L1  |x|": x.abs(),
        "L2  x²/2": 0.5 * x**2,
        f"Smooth L1 (beta={beta:g})": smooth_l1(x, beta=beta),
    }
    styles = {"L1  |x|": ":", "L2  x²/2": "--"}
    fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, y in curves.items():
        (grad,) = torch.autograd.grad(y.sum(), x)
        xs = x.detach().numpy()
        ax_v.plot(xs, y.detach().numpy(), styles.get(name, "-"), label=name, lw=2)
        ax_g.plot(xs, grad.numpy(), styles.get(name, "-"), label=name, lw=2)
    ax_v.set_ylim(0, x_max)
    ax_v.set(xlabel="x = prediction - target", ylabel="loss", title="loss")
    ax_g.set(xlabel="x = prediction - target", ylabel="d loss / d x", title="gradient")
    for ax in (ax_v, ax_g):
        ax.axvspan(-beta, beta, color="0.92", zorder=0)
        ax.grid(alpha=0.3)
    ax_v.legend(fontsize=8)
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
