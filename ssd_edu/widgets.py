"""Explorers for the notebooks: ipywidgets sliders wired to plain plotting functions.

Each idea with a knob (the scales of the default boxes, the matching threshold, the NMS overlap)
gets an explorer here. The design keeps them thin: an explorer only builds its controls and, on
every change, calls a plain function that takes ordinary arguments and returns a matplotlib
``Figure``. That function lives in this module or in :mod:`ssd_edu.viz`; the tests call it
directly (no browser, no kernel), and the notebook draws it once statically before the explorer,
so the lesson reads well on GitHub where widgets do not run.

Every explorer returns its widget container, so a notebook cell ending with the call displays it
and a test can inspect its controls.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.priors import SSD300_VOC, PriorConfig
from ssd_edu.viz import plot_cell_default_boxes, sample_photo

# ---------------------------------------------------------------- default boxes (notebook 01)

# aspect-ratio choices of the default-box explorer, one tuple of ratios per SSD300 map
RATIO_CHOICES: dict[str, tuple[tuple[float, ...], ...]] = {
    "released: [2] | [2, 3] x3 | [2] x2": SSD300_VOC.aspect_ratios,
    "[2, 3] on every map": ((2, 3),) * 6,
    "[2] on every map": ((2,),) * 6,
    "squares only": ((),) * 6,
}


def explorer_config(s_min: float, s_max: float, ratios: str) -> PriorConfig:
    """SSD300's six maps with scales from the paper's equation and a choice of aspect ratios.

    Args:
        s_min: scale of the largest map.
        s_max: scale of the smallest map; raised to ``s_min`` if a slider puts it below.
        ratios: a key of :data:`RATIO_CHOICES`.

    Returns:
        The configuration (300 x 300 input, maps 38 to 1).

    Paper: §2.2, eq. 4.
    """
    if ratios not in RATIO_CHOICES:
        raise ValueError(f"ratios must be one of {list(RATIO_CHOICES)}, got {ratios!r}")
    return PriorConfig.from_scales(
        300, SSD300_VOC.feature_maps, RATIO_CHOICES[ratios], s_min, max(s_min, s_max)
    )


def draw_default_box_explorer(
    k: int,
    i: int,
    j: int,
    s_min: float = 0.2,
    s_max: float = 0.9,
    ratios: str = "released: [2] | [2, 3] x3 | [2] x2",
    image: Tensor | None = None,
) -> Figure:
    """The explorer's picture: default boxes of cell ``(i, j)`` of map ``k`` on a photo.

    Cell indices past the edge of a small map are moved to its last row/column, so sliders sized
    for the largest map stay valid on every map.

    Args:
        k: feature map, 0-based (0 is the 38x38 map).
        i: cell row.
        j: cell column.
        s_min, s_max, ratios: as in :func:`explorer_config`.
        image: ``[3, H, W]`` photo; the Grace Hopper sample when ``None``.

    Returns:
        A new figure with one axes.
    """
    cfg = explorer_config(s_min, s_max, ratios)
    f = cfg.feature_maps[k]
    fig, ax = plt.subplots(figsize=(8, 5))
    image = sample_photo() if image is None else image
    plot_cell_default_boxes(ax, image, cfg, k, min(i, f - 1), min(j, f - 1))
    return fig


def default_box_explorer(image: Tensor | None = None) -> widgets.VBox:
    """Sliders for map, cell, scales and aspect ratios, redrawing the default boxes of one cell.

    Args:
        image: ``[3, H, W]`` photo; the Grace Hopper sample when ``None``.

    Returns:
        The widget (controls above the drawing); display it, or end a notebook cell with it.
    """
    image = sample_photo() if image is None else image
    fmaps = SSD300_VOC.feature_maps
    k = widgets.IntSlider(0, 0, len(fmaps) - 1, description="map k")
    i = widgets.IntSlider(fmaps[0] // 2, 0, fmaps[0] - 1, description="row i")
    j = widgets.IntSlider(fmaps[0] // 2, 0, fmaps[0] - 1, description="column j")
    s_min = widgets.FloatSlider(0.2, min=0.05, max=0.5, step=0.01, description="s_min")
    s_max = widgets.FloatSlider(0.9, min=0.5, max=1.0, step=0.01, description="s_max")
    ratios = widgets.Dropdown(options=list(RATIO_CHOICES), description="ratios")

    def fit_cell_sliders(change) -> None:
        # a smaller map has fewer cells: shrink the row/column sliders to it
        f = fmaps[change["new"]]
        for slider in (i, j):
            slider.value = min(slider.value, f - 1)
            slider.max = f - 1

    k.observe(fit_cell_sliders, names="value")

    def show(**kwargs) -> None:
        fig = draw_default_box_explorer(**kwargs, image=image)
        display(fig)
        plt.close(fig)

    controls = {"k": k, "i": i, "j": j, "s_min": s_min, "s_max": s_max, "ratios": ratios}
    out = widgets.interactive_output(show, controls)
    return widgets.VBox(
        [widgets.HBox([k, i, j]), widgets.HBox([s_min, s_max, ratios]), out],
        layout=widgets.Layout(width="100%"),
    )


# ---------------------------------------------------------------- matching (notebook 02)


def matching_explorer(
    image: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    priors: Tensor,
    class_names: list[str] | None = None,
) -> widgets.VBox:
    """A slider for the matching threshold, redrawing the positives of each object.

    The drawing is :func:`ssd_edu.viz.plot_matches`; see it for the arguments.

    Returns:
        The widget (slider above the drawing).
    """
    from ssd_edu.viz import plot_matches

    threshold = widgets.FloatSlider(
        0.5, min=0.1, max=0.9, step=0.05, description="IoU threshold", continuous_update=False
    )

    def show(iou_threshold: float) -> None:
        fig = plot_matches(image, gt_boxes, gt_labels, priors, iou_threshold, class_names)
        display(fig)
        plt.close(fig)

    out = widgets.interactive_output(show, {"iou_threshold": threshold})
    return widgets.VBox([threshold, out])
