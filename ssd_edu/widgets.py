"""Explorers for the notebooks: ipywidgets controls wired to plain plotting functions.

Each idea with a knob (the scales of the default boxes, the matching threshold, the NMS overlap)
gets an explorer. The design keeps them thin: an :class:`Explorer` only holds its controls and,
on every change, calls a plain function that takes ordinary arguments and returns a matplotlib
``Figure``. That function lives in this module or in :mod:`ssd_edu.viz`; the tests call it
directly (no browser, no kernel), and the notebook draws it once statically before the explorer,
so the lesson reads well on GitHub where widgets do not run.

What a student meets in JupyterLab decides the rules of :class:`Explorer`: one figure, replaced
once per action (a slider redraws when it is released, not at every pixel of a drag, and a control
that moves others redraws once for all of them), labels that are never cut, and a plain-text form
that says to run the notebook (what JupyterLab shows before the kernel has built the widget).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.core.pylabtools import print_figure
from matplotlib.figure import Figure
from torch import Tensor

from ssd_edu.priors import SSD300_VOC, PriorConfig
from ssd_edu.viz import cell_at, plot_cell_default_boxes, sample_photo

# the text a notebook shows in place of an explorer until its kernel has built it
NOT_RUN_TEXT = "Explorer: run the notebook (Run > Run All Cells) to use it."


class Explorer(widgets.VBox):
    """Controls above one figure, redrawn once per change of a control.

    Args:
        draw: called as ``draw(**values)``, each control's value under its name; returns the
            ``Figure`` to show (the explorer closes it, and any other figure ``draw`` opened).
        controls: name -> widget with a ``value`` (slider, dropdown, checkbox, ...). Sliders are
            set to redraw on release; labels get the width their text needs.
        rows: names of the controls in each row; by default one control per row.
        adjust: called with each change (traitlets' dict) before the redraw; it may set other
            controls, whose changes join this one redraw.

    Attributes:
        controls: the widgets by name; ``output``: the ``Output`` holding the figure.
    """

    def __init__(
        self,
        draw: Callable[..., Figure],
        controls: dict[str, widgets.ValueWidget],
        rows: Sequence[Sequence[str]] | None = None,
        adjust: Callable[[dict], None] | None = None,
    ):
        rows = [[name] for name in controls] if rows is None else [list(r) for r in rows]
        if sorted(n for row in rows for n in row) != sorted(controls):
            raise ValueError(f"rows must name each control once, got {rows} for {list(controls)}")
        self.draw, self.controls, self.adjust = draw, dict(controls), adjust
        self.output = widgets.Output()
        self._adjusting = False
        for name, control in self.controls.items():
            control.description = control.description or name
            if "continuous_update" in control.traits():
                # a drag would otherwise queue a redraw per pixel moved, each taking up to a second
                control.continuous_update = False
            control.style.description_width = "initial"  # the default width cuts labels off
            control.observe(self._changed, names="value")
        children = [widgets.HBox([self.controls[n] for n in row]) for row in rows]
        super().__init__([*children, self.output])
        self.add_class("ssd-edu-explorer")  # how the browser test finds it
        self.redraw()

    def __repr__(self) -> str:
        return NOT_RUN_TEXT

    def _changed(self, change: dict) -> None:
        if self._adjusting:
            return  # set by `adjust` while handling another change: that change redraws
        self._adjusting = True
        try:
            if self.adjust is not None:
                self.adjust(change)
        finally:
            self._adjusting = False
        self.redraw()

    def redraw(self) -> None:
        """Draw with the controls' values and replace the figure in one update of ``output``."""
        before = set(plt.get_fignums())
        try:
            fig = self.draw(**{name: c.value for name, c in self.controls.items()})
            if not isinstance(fig, Figure):
                raise TypeError(f"draw must return a matplotlib Figure, got {type(fig).__name__}")
            # the PNG the inline backend would make; displayed here only, so never twice
            data = {"image/png": print_figure(fig, "png", base64=True), "text/plain": repr(fig)}
            shown = {"output_type": "display_data", "data": data, "metadata": {}}
        except Exception as error:  # shown in the explorer: a callback's error reaches no cell
            lines = "".join(traceback.format_exception(error)).splitlines()
            shown = {"output_type": "error", "ename": type(error).__name__,
                     "evalue": str(error), "traceback": lines}  # fmt: skip
        finally:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)  # an open figure would be shown again after the next cell runs
        # one assignment: the front end swaps the old figure for the new, with no blank between
        self.output.outputs = (shown,)


def explorer(draw: Callable[..., Figure], /, **controls: widgets.ValueWidget) -> Explorer:
    """An :class:`Explorer` with one control per keyword, in the order given.

    Example: ``explorer(lambda beta: plot_smooth_l1(beta), beta=FloatSlider(1.0, min=0.1))``.
    """
    return Explorer(draw, controls)


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


def same_place_cell(cfg: PriorConfig, k: int, i: int, j: int, new_k: int) -> tuple[int, int]:
    """The cell of map ``new_k`` that holds the centre of cell ``(i, j)`` of map ``k``.

    What the default-box explorer does when the map changes: the cell stays at the same place in
    the image (the middle of the 38x38 map becomes the middle of the 19x19 one), where clamping
    the row and column to the smaller map would jump to its corner.

    Returns:
        ``(row, column)`` on map ``new_k``.

    Paper: §2.2 (cell centres ``((j + 0.5) / |f_k|, (i + 0.5) / |f_k|)``; with the released
    models' steps, docs/design.md "Default-box order").
    """
    step, size = cfg.steps[k], cfg.image_size
    return cell_at(cfg, new_k, (j + 0.5) * step / size, (i + 0.5) * step / size)


def default_box_explorer(image: Tensor | None = None) -> Explorer:
    """Sliders for map, cell, scales and aspect ratios, redrawing the default boxes of one cell.

    Changing the map keeps the cell at the same place in the image (:func:`same_place_cell`) and
    resizes the row and column sliders to the new map, in one redraw.

    Args:
        image: ``[3, H, W]`` photo; the Grace Hopper sample when ``None``.

    Returns:
        The explorer (controls above the drawing); display it, or end a notebook cell with it.

    Paper: §2.2, eq. 4.
    """
    image = sample_photo() if image is None else image
    fmaps = SSD300_VOC.feature_maps
    middle = fmaps[0] // 2
    controls = {
        "k": widgets.IntSlider(0, 0, len(fmaps) - 1, description="map k"),
        "i": widgets.IntSlider(middle, 0, fmaps[0] - 1, description="row i"),
        "j": widgets.IntSlider(middle, 0, fmaps[0] - 1, description="column j"),
        "s_min": widgets.FloatSlider(0.2, min=0.05, max=0.5, step=0.01, description="s_min"),
        "s_max": widgets.FloatSlider(0.9, min=0.5, max=1.0, step=0.01, description="s_max"),
        "ratios": widgets.Dropdown(options=list(RATIO_CHOICES), description="ratios"),
    }
    row, column = controls["i"], controls["j"]

    def keep_cell_in_place(change: dict) -> None:
        if change["owner"] is not controls["k"]:
            return
        i, j = same_place_cell(SSD300_VOC, change["old"], row.value, column.value, change["new"])
        for slider, value in ((row, i), (column, j)):
            slider.max = fmaps[change["new"]] - 1  # first: a larger map needs room for the value
            slider.value = value

    def draw(**values) -> Figure:
        # looked up at each call, so a test can count the drawings
        return draw_default_box_explorer(**values, image=image)

    rows = (("k", "i", "j"), ("s_min", "s_max", "ratios"))
    return Explorer(draw, controls, rows, adjust=keep_cell_in_place)


# ---------------------------------------------------------------- matching (notebook 02)


def matching_explorer(
    image: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    priors: Tensor,
    class_names: list[str] | None = None,
) -> Explorer:
    """A slider for the matching threshold, redrawing the positives of each object.

    The drawing is :func:`ssd_edu.viz.plot_matches`; see it for the arguments.

    Returns:
        The explorer (slider above the drawing).

    Paper: §2.2, "Matching strategy".
    """
    from ssd_edu.viz import plot_matches

    threshold = widgets.FloatSlider(0.5, min=0.1, max=0.9, step=0.05, description="IoU threshold")
    return explorer(
        lambda iou_threshold: plot_matches(
            image, gt_boxes, gt_labels, priors, iou_threshold, class_names
        ),
        iou_threshold=threshold,
    )
