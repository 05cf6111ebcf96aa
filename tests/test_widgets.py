"""The default-box explorer: its plain drawing functions (checked patch by patch) and its widget."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ssd_edu.priors import SSD300_VOC, PriorConfig, default_boxes  # noqa: E402
from ssd_edu.viz import (  # noqa: E402
    cell_box_names,
    plot_cell_default_boxes,
    plot_default_boxes_per_map,
    square_image,
)
from ssd_edu.widgets import (  # noqa: E402
    RATIO_CHOICES,
    default_box_explorer,
    draw_default_box_explorer,
    explorer_config,
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


def test_explorer_widget_builds_and_shrinks_cell_sliders():
    box = default_box_explorer(image=IMAGE)
    sliders = {w.description: w for row in box.children[:2] for w in row.children}
    assert set(sliders) == {"map k", "row i", "column j", "s_min", "s_max", "ratios"}
    assert list(sliders["ratios"].options) == list(RATIO_CHOICES)
    assert sliders["row i"].max == 37
    sliders["map k"].value = 4  # the 3x3 map
    assert sliders["row i"].max == 2 and sliders["row i"].value == 2
    plt.close("all")
