"""The explorers: the default-box drawing (checked patch by patch), and the widgets driven as a
student drives them (one redraw per action, the cell kept in place, one figure shown)."""

from __future__ import annotations

import base64
import math

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ssd_edu.priors import SSD300_VOC, PriorConfig, default_boxes  # noqa: E402
from ssd_edu.viz import (  # noqa: E402
    cell_at,
    cell_box_names,
    plot_cell_default_boxes,
    plot_default_boxes_per_map,
    square_image,
)
from ssd_edu.widgets import (  # noqa: E402
    NOT_RUN_TEXT,
    RATIO_CHOICES,
    Explorer,
    default_box_explorer,
    draw_default_box_explorer,
    explorer,
    explorer_config,
    same_place_cell,
)

# a small grey image keeps the tests fast; the drawing does not depend on its content
IMAGE = torch.full((3, 40, 60), 0.5)


def patches(ax, gid: str) -> list[Rectangle]:
    return [p for p in ax.patches if p.get_gid() == gid]


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_one_by_one_map_boxes_drawn_where_worked_out(ax):
    cfg = PriorConfig(300, (1,), (300,), (30,), (60,), ((2,),))
    boxes = plot_cell_default_boxes(ax, IMAGE, cfg, 0)
    drawn = patches(ax, "default_box")
    assert len(drawn) == 4
    # small square: side 30 px centred at 150 px -> corner (135, 135)
    assert drawn[0].get_xy() == pytest.approx((135, 135))
    assert (drawn[0].get_width(), drawn[0].get_height()) == pytest.approx((30, 30))
    side = math.sqrt(30 * 60)
    assert drawn[1].get_width() == pytest.approx(side)
    assert drawn[2].get_width() == pytest.approx(30 * math.sqrt(2))
    assert drawn[3].get_height() == pytest.approx(30 * math.sqrt(2))
    torch.testing.assert_close(boxes, default_boxes(cfg))


def test_cell_boxes_are_the_library_boxes_of_that_cell(ax):
    k, i, j = 2, 3, 7
    boxes = plot_cell_default_boxes(ax, IMAGE, SSD300_VOC, k, i, j)
    f, per_cell = SSD300_VOC.feature_maps[k], SSD300_VOC.boxes_per_location[k]
    start = sum(SSD300_VOC.boxes_per_map[:k]) + (i * f + j) * per_cell
    want = default_boxes(SSD300_VOC)[start : start + per_cell]
    torch.testing.assert_close(boxes, want)
    drawn = patches(ax, "default_box")
    assert len(drawn) == per_cell == 6
    for rect, (cx, cy, w, h) in zip(drawn, (want * 300).tolist()):
        assert rect.get_xy() == pytest.approx((cx - w / 2, cy - h / 2), abs=1e-3)
        assert (rect.get_width(), rect.get_height()) == pytest.approx((w, h), abs=1e-3)
    # the shaded cell: step 32 px, row 3, column 7
    (cell,) = patches(ax, "cell")
    assert cell.get_xy() == pytest.approx((7 * 32, 3 * 32))
    assert cell.get_width() == pytest.approx(32)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == cell_box_names(SSD300_VOC, k)


def test_default_cell_is_the_middle_one(ax):
    boxes = plot_cell_default_boxes(ax, IMAGE, SSD300_VOC, 4)  # 3x3 map: cell (1, 1)
    torch.testing.assert_close(boxes[0, :2], torch.tensor([0.5, 0.5]))


def test_cell_errors(ax):
    with pytest.raises(ValueError, match=r"k must be a feature-map index in \[0, 5\], got 6"):
        plot_cell_default_boxes(ax, IMAGE, SSD300_VOC, 6)
    with pytest.raises(ValueError, match=r"j must be a cell index in \[0, 2\] for map 4, got 3"):
        plot_cell_default_boxes(ax, IMAGE, SSD300_VOC, 4, 0, 3)
    with pytest.raises(ValueError, match=r"image must be a \[3, H, W\] tensor, got \[40, 60\]"):
        square_image(IMAGE[0], 300)


def test_square_image_shape_and_range():
    out = square_image(torch.rand(3, 40, 60), 32)
    assert out.shape == (3, 32, 32)
    assert out.min() >= 0 and out.max() <= 1


def test_per_map_figure_has_one_panel_per_map():
    fig = plot_default_boxes_per_map(IMAGE, SSD300_VOC)
    used = [ax for ax in fig.axes if patches(ax, "default_box")]
    assert [len(patches(ax, "default_box")) for ax in used] == [4, 6, 6, 6, 4, 4]
    assert len(fig.legends) == 1
    plt.close(fig)


def test_explorer_config_follows_the_scale_equation():
    cfg = explorer_config(0.2, 0.9, "[2] on every map")
    assert cfg.min_sizes == pytest.approx([60, 102, 144, 186, 228, 270])
    assert cfg.aspect_ratios == ((2,),) * 6
    assert explorer_config(0.3, 0.1, "squares only").max_sizes[0] == pytest.approx(90)
    with pytest.raises(ValueError, match="ratios must be one of"):
        explorer_config(0.2, 0.9, "[4]")


def test_explorer_drawing_clamps_cells_to_small_maps():
    fig = draw_default_box_explorer(5, 30, 30, ratios="squares only", image=IMAGE)
    (ax,) = fig.axes
    assert len(patches(ax, "default_box")) == 2
    assert "cell (0, 0)" in ax.get_title()
    plt.close(fig)


def test_explorer_widget_builds_and_resizes_cell_sliders():
    box = default_box_explorer(image=IMAGE)
    sliders = {w.description: w for row in box.children[:2] for w in row.children}
    assert set(sliders) == {"map k", "row i", "column j", "s_min", "s_max", "ratios"}
    assert list(sliders["ratios"].options) == list(RATIO_CHOICES)
    assert sliders["row i"].max == 37
    sliders["map k"].value = 4  # the 3x3 map: the middle cell, not the corner
    assert sliders["row i"].max == 2
    assert (sliders["row i"].value, sliders["column j"].value) == (1, 1)
    sliders["map k"].value = 0  # back to 38x38: room for the row again
    assert sliders["row i"].max == 37
    plt.close("all")


def test_cell_at_finds_the_cell_by_steps():
    # SSD300's 10x10 map has 32 px steps: its cells reach 320 px, past the 300 px image
    assert cell_at(SSD300_VOC, 2, 0.0, 0.0) == (0, 0)
    assert cell_at(SSD300_VOC, 2, 0.99, 0.5) == (4, 9)  # 297 px: column 9, row 150 // 32 = 4
    assert cell_at(SSD300_VOC, 5, 0.7, 0.2) == (0, 0)
    assert cell_at(SSD300_VOC, 0, 1.0, 1.0) == (37, 37)  # the far edge stays on the map


@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("new_k", range(6))
def test_same_place_cell_holds_the_old_centre(k, new_k):
    f, step = SSD300_VOC.feature_maps, SSD300_VOC.steps
    for i, j in ((0, 0), (f[k] // 2, f[k] // 2), (f[k] - 1, 0), (f[k] - 1, f[k] - 1)):
        ni, nj = same_place_cell(SSD300_VOC, k, i, j, new_k)
        assert 0 <= ni < f[new_k] and 0 <= nj < f[new_k]
        cy, cx = (i + 0.5) * step[k], (j + 0.5) * step[k]  # px
        # the new cell holds the old centre; a centre on the map's far edge (38 x 8 px = 304 px
        # for map 0, so its last centre is at 300 px) takes the last cell
        for centre, cell in ((cy, ni), (cx, nj)):
            assert cell * step[new_k] <= centre
            assert centre < (cell + 1) * step[new_k] or cell == f[new_k] - 1


class DrawRecorder:
    """Stands in for a drawing function: records each call's arguments, returns a small figure."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, image=None, **values):
        self.calls.append(values)
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(repr(values))
        plt.subplots(figsize=(1, 1))  # a stray figure: the explorer must close it too
        return fig


@pytest.fixture
def recorder(monkeypatch):
    draw = DrawRecorder()
    monkeypatch.setattr("ssd_edu.widgets.draw_default_box_explorer", draw)
    yield draw
    plt.close("all")


def controls_of(box):
    return {w.description: w for row in box.children[:2] for w in row.children}


def test_changing_the_map_redraws_once_with_the_cell_in_place(recorder):
    box = default_box_explorer(image=IMAGE)
    assert len(recorder.calls) == 1  # the first drawing
    controls = controls_of(box)
    controls["map k"].value = 1
    assert len(recorder.calls) == 2, recorder.calls  # one key press, one redraw
    assert recorder.calls[-1] == {
        "k": 1, "i": 9, "j": 9, "s_min": 0.2, "s_max": 0.9, "ratios": list(RATIO_CHOICES)[0]
    }  # fmt: skip
    # the 1x1 cell's centre (150 px) is in the middle cell of 5x5 (128..191 px), whose centre
    # (160 px) is in cell 20 of 38x38
    for value, cell in ((5, (0, 0)), (3, (2, 2)), (0, (20, 20))):
        controls["map k"].value = value
        assert (recorder.calls[-1]["i"], recorder.calls[-1]["j"]) == cell
    assert len(recorder.calls) == 5
    controls["row i"].value = 7
    controls["ratios"].value = "squares only"
    assert len(recorder.calls) == 7 and recorder.calls[-1]["i"] == 7


def test_explorer_shows_one_figure_and_leaves_none_open(recorder):
    box = default_box_explorer(image=IMAGE)
    controls_of(box)["s_min"].value = 0.3
    (shown,) = box.output.outputs  # one figure, replaced, never appended
    assert shown["output_type"] == "display_data"
    assert base64.b64decode(shown["data"]["image/png"]).startswith(b"\x89PNG")
    assert plt.get_fignums() == []  # the inline backend would show an open figure again
    assert repr(box) == NOT_RUN_TEXT  # the text JupyterLab shows before the kernel runs


def test_explorer_sliders_redraw_on_release_and_labels_fit():
    box = Explorer(
        DrawRecorder(),
        {"a": widgets.FloatSlider(description="a long description"), "b": widgets.Checkbox()},
    )
    a, b = box.controls["a"], box.controls["b"]
    assert a.continuous_update is False  # a drag is one action, not one per pixel
    assert a.style.description_width == b.style.description_width == "initial"
    assert b.description == "b"
    assert "ssd-edu-explorer" in box._dom_classes
    plt.close("all")


def test_explorer_shows_a_drawing_error_in_place_of_the_figure():
    def broken(x):
        raise RuntimeError(f"no figure for {x}")

    box = explorer(broken, x=widgets.IntSlider(3))
    (shown,) = box.output.outputs
    assert shown["output_type"] == "error" and shown["evalue"] == "no figure for 3"
    assert any("RuntimeError" in line for line in shown["traceback"])
    box = explorer(lambda x: None, x=widgets.IntSlider(3))
    assert "must return a matplotlib Figure, got NoneType" in box.output.outputs[0]["evalue"]


def test_explorer_rows_must_name_every_control():
    with pytest.raises(ValueError, match="rows must name each control once"):
        Explorer(DrawRecorder(), {"a": widgets.IntSlider()}, rows=[["a", "b"]])
    plt.close("all")
