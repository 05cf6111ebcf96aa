"""Drawings of the network: its architecture, fc6/fc7 decimation, receptive fields against boxes.

Pairs with notebook 06 (the SSD architecture); :func:`receptive_field_figure` is its explorer's
drawing.

Paper: §2.1 "Model" and figure 2; §3 "Base network" (fc6/fc7 subsampled, atrous fc6).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from ssd_edu.viz.core import _CELL_BOX_COLOURS, show_image, square_image
from ssd_edu.viz.priors import cell_at


def draw_fc6_decimation() -> Figure:
    """How VGG16's fc6/fc7 become SSD's atrous fc6 and 1x1 fc7, drawn in input pixels.

    Left: VGG16's fc6 reads a 7x7 window of pool5 (cells 32 px apart); the decimation keeps taps
    0, 3 and 6 in each direction. Middle: SSD's pool5 keeps stride 16, so the same taps are 6 cells
    apart: a 3x3 kernel with dilation 6 covering the same 192 px. Right: the filters kept (every
    4th of fc6's 4096 outputs; for fc7 every 4th output and input), shown on a corner of fc7.

    Returns:
        A new figure with three panels.

    Paper: §3 "Base network" (fc6/fc7 subsampled, atrous algorithm); figure 2.
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
    from ssd_edu.priors import cell_boxes_wh

    m = len(cfg.feature_maps)
    if len(rfs) != m:
        raise ValueError(f"rfs must have one entry per feature map ({m}), got {len(rfs)}")
    x = np.arange(m)
    # each cell's (w, h) in px, in docs/design.md order: [s_k square, s'_k square, ratio pairs...]
    wh = [cell_boxes_wh(cfg, k, torch.float64).numpy() * cfg.image_size for k in range(m)]
    s_k = np.array([b[0, 0] for b in wh])
    s_k_prime = np.array([b[1, 0] for b in wh])
    widest = np.array([b.max() for b in wh])
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
    f, size, step = cfg.feature_maps[k], cfg.image_size, cfg.steps[k]
    i, j = cell_at(cfg, k, x, y)
    n_boxes = cfg.boxes_per_location[k]
    first = sum(cfg.boxes_per_map[:k]) + (i * f + j) * n_boxes
    rows = list(range(first, first + n_boxes))

    fig, ax = plt.subplots(figsize=(5, 5))
    show_image(ax, square_image(image, size))
    cx, cy = (j + 0.5) * step, (i + 0.5) * step  # px
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
                (cx - w * size / 2, cy - h * size / 2),
                w * size,
                h * size,
                fill=False,
                edgecolor=_CELL_BOX_COLOURS[a % len(_CELL_BOX_COLOURS)],
                linewidth=1.8,
            )
        )
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    # below the photo, not on it: a large receptive field's box runs along the image's edges
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    ax.set_title(f"map {k} ({f}x{f}), cell (i={i}, j={j}): rows {rows[0]}..{rows[-1]}", fontsize=9)
    fig.tight_layout()
    return fig, rows


def _stage(name: str) -> str:
    """The block a layer of :func:`ssd_edu.model.layer_table` is drawn in: ``conv4_2`` ->
    ``conv4``; a pooling opens the next block (``pool3`` -> ``conv4``, ``pool5`` -> ``fc6``)."""
    if name.startswith("pool"):
        n = int(name[4:])
        return f"conv{n + 1}" if n < 5 else "fc6"
    return name.split(" ")[0].split("_")[0]


def architecture_blocks(model) -> list[dict]:
    """The model's layers grouped into the blocks of the architecture diagram.

    Args:
        model: an :class:`ssd_edu.model.SSD` built on the VGG16 backbone.

    Returns:
        Blocks in the order they run, each ``{"name", "layers", "out_shape" [C, H, W], "params",
        "part"}`` with ``part`` one of ``"base"`` (VGG16), ``"extra"`` or ``"head"``, and for the
        blocks that feed a head ``"source": k`` (the map index) and ``"head": {"loc", "conf",
        "boxes"}``: the two heads' channels and the number of default boxes of that map.
    """
    from ssd_edu.model.anatomy import _paper_name, layer_table

    rows = layer_table(model)
    blocks: list[dict] = []
    for r in rows:
        if "head" in r["name"]:
            continue
        name = _stage(r["name"])
        if not blocks or blocks[-1]["name"] != name:
            part = "extra" if int(name[4:] if name.startswith("conv") else 6) >= 8 else "base"
            blocks.append({"name": name, "layers": [], "params": 0, "part": part})
        blocks[-1]["layers"].append(r["name"])
        blocks[-1]["out_shape"] = r["out_shape"]
        blocks[-1]["params"] += r["params"]
    by_name = {b["name"]: b for b in blocks}
    for k, source in enumerate(model.backbone.source_names):
        block = by_name[_stage(_paper_name(f"backbone.{source}"))]
        loc = next(r for r in rows if r["name"] == f"loc head, map {k}")["out_shape"]
        conf = next(r for r in rows if r["name"] == f"conf head, map {k}")["out_shape"]
        n_boxes = loc[0] // 4 * loc[1] * loc[2]
        block["source"] = k
        block["head"] = {"loc": loc[0], "conf": conf[0], "boxes": n_boxes}
    return blocks


def plot_architecture(model) -> Figure:
    """SSD's architecture drawn from the model itself (paper figure 2, redrawn from the modules).

    One box per block (VGG16 stages in blue, extra layers in orange; height grows with the log of
    the map's side), its output ``C x H x W`` under it; every source map has a 3x3 head below it
    with its ``4k + ck`` channels and default-box count, and the heads feed the output rows.

    Args:
        model: an :class:`ssd_edu.model.SSD` on the VGG16 backbone.

    Returns:
        A new figure.

    Paper: §2.1 "Model", figure 2.
    """
    blocks = architecture_blocks(model)
    side = max(b["out_shape"][1] for b in blocks)
    fig, ax = plt.subplots(figsize=(13, 4.6))
    colours = {"base": "#9ecae1", "extra": "#fdae6b"}
    total = 0
    for x, b in enumerate(blocks):
        c, h, w = b["out_shape"]
        height = 0.6 + 2.2 * np.log(h) / np.log(side)  # 1x1 -> 0.6, the largest map -> 2.8
        ax.add_patch(Rectangle((x - 0.4, 3.2 - height / 2), 0.8, height,
                               facecolor=colours[b["part"]], edgecolor="black",
                               linewidth=2.5 if "source" in b else 0.8))
        label = b["name"] + ("\n+ L2Norm" if any("L2Norm" in n for n in b["layers"]) else "")
        ax.text(x, 3.3 + height / 2, label, ha="center", va="bottom", fontsize=8)
        ax.text(x, 1.6, f"{c}\n{h}x{w}", ha="center", va="top", fontsize=7)
        if x:
            ax.annotate("", xy=(x - 0.4, 3.2), xytext=(x - 0.6, 3.2),
                        arrowprops={"arrowstyle": "->", "lw": 0.8})
        if "source" in b:
            head = b["head"]
            total += head["boxes"]
            ax.annotate("", xy=(x, 0.55), xytext=(x, 0.95),
                        arrowprops={"arrowstyle": "->", "lw": 1.2})
            ax.add_patch(Rectangle((x - 0.45, -0.55), 0.9, 1.1, facecolor="#c7e9c0",
                                   edgecolor="black", linewidth=0.8))
            ax.text(x, 0.0, f"map {b['source']}\n3x3 conv\n{head['loc']}+{head['conf']}\n"
                    f"{head['boxes']} boxes", ha="center", va="center", fontsize=6.5)
    ax.text(len(blocks) - 0.3, 0.0, f"= {total} rows\nloc [B, {total}, 4]\n"
            f"conf [B, {total}, {model.num_classes}]", ha="left", va="center", fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "black"})
    handles = [Rectangle((0, 0), 1, 1, facecolor=colours["base"], label="VGG16 base"),
               Rectangle((0, 0), 1, 1, facecolor=colours["extra"], label="extra layers"),
               Rectangle((0, 0), 1, 1, facecolor="#c7e9c0", label="heads (loc + conf channels)"),
               Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", linewidth=2.5,
                         label="source map")]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=4)
    ax.set_xlim(-0.7, len(blocks) + 1.6)
    ax.set_ylim(-0.8, 5.4)
    ax.axis("off")
    ax.set_title(f"{type(model).__name__} at {model.cfg.image_size} px: "
                 f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    fig.tight_layout()
    return fig
