"""Tests for ssd_edu.coverage and ssd_edu.fit_boxes: which objects a default box can match (§2.2),
and default boxes fitted to the training boxes (eq. 4)."""

from __future__ import annotations

import pytest
import torch

import ssd_edu.coverage as coverage_module
from ssd_edu.boxes import cxcywh_to_xyxy
from ssd_edu.coverage import as_boxes, best_overlaps, coverage
from ssd_edu.fit_boxes import TILING, fit_default_boxes, fitted_ratios, tiles
from ssd_edu.priors import SSD128_SHAPES, PriorConfig, default_boxes

# one cell, the whole image: squares of side 0.5 and sqrt(0.5 * 0.5) = 0.5, and (2, 1/2) boxes
ONE_CELL = PriorConfig(100, (1,), (100,), (50,), (50,), ((2,),))
# three maps on a 128 px input whose smallest default box is 0.4 of the image side
LARGE_ONLY = PriorConfig.from_scales(128, (16, 8, 4), ((2,), (2,), (2,)), s_min=0.4, s_max=0.9)


def centred_square(side: float) -> torch.Tensor:
    lo, hi = 0.5 - side / 2, 0.5 + side / 2
    return torch.tensor([[lo, lo, hi, hi]])


def random_squares(n: int, low: float, high: float, seed: int = 0) -> torch.Tensor:
    """``[n, 4]`` squares of side in ``[low, high)`` at random places inside the image."""
    g = torch.Generator().manual_seed(seed)
    side = low + (high - low) * torch.rand(n, 1, generator=g)
    xy = torch.rand(n, 2, generator=g) * (1 - side)
    return torch.cat([xy, xy + side], dim=1)


# ---------------------------------------------------------------- hand-worked cases


def test_a_centred_square_of_the_default_box_size_is_covered_exactly():
    cov = coverage(centred_square(0.5), ONE_CELL)
    torch.testing.assert_close(cov.best_iou, torch.tensor([1.0]))
    assert cov.n_covered == 1 and cov.share == 1.0


def test_a_square_a_quarter_the_area_is_not_covered():
    # side 0.25 inside the 0.5 square: IoU = 0.0625 / 0.25 = 0.25 (the (2, 1/2) boxes do worse)
    cov = coverage(centred_square(0.25), ONE_CELL)
    torch.testing.assert_close(cov.best_iou, torch.tensor([0.25]))
    assert cov.n_covered == 0 and cov.share == 0.0


def test_a_square_of_side_0_4_is_covered_at_iou_0_64():
    cov = coverage(centred_square(0.4), ONE_CELL)
    torch.testing.assert_close(cov.best_iou, torch.tensor([0.16 / 0.25]))
    assert cov.covered.tolist() == [True]


def test_the_threshold_counts_equality_as_covered():
    # IoU exactly 0.5 (side 0.5 * sqrt(0.5) is not exact in float): use a box of half the area
    half = torch.tensor([[0.25, 0.25, 0.75, 0.5]])  # 0.5 x 0.25 inside the 0.5 x 0.5 square
    cov = coverage(half, ONE_CELL)
    assert float(cov.best_iou) == 0.5 and cov.n_covered == 1


def test_best_overlaps_equals_a_plain_loop_and_does_not_depend_on_the_chunk(monkeypatch):
    gt = random_squares(37, 0.02, 0.9, seed=3)
    priors = default_boxes(SSD128_SHAPES)
    corners = cxcywh_to_xyxy(priors)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union

    expected = torch.tensor(
        [max(iou(g.tolist(), p.tolist()) for p in corners) for g in gt], dtype=torch.float32
    )
    torch.testing.assert_close(best_overlaps(gt, priors), expected)
    monkeypatch.setattr(coverage_module, "_CHUNK_ELEMENTS", 3 * len(priors))  # 3 objects a chunk
    torch.testing.assert_close(best_overlaps(gt, priors), expected)


# ---------------------------------------------------------------- datasets


def test_objects_much_smaller_than_every_default_box_are_uncovered_and_fitting_helps():
    boxes = random_squares(200, 0.1, 0.15)  # 13 to 19 px at 128 px; the smallest box is 51 px
    before = coverage(boxes, LARGE_ONLY)
    assert before.share == 0.0
    for _, _, covered in before.by_size():
        assert covered == 0
    fit = fit_default_boxes(boxes, LARGE_ONLY)
    assert fit.changed and fit.before.share == 0.0
    assert fit.after.share > 0.6
    torch.testing.assert_close(fit.after.best_iou, coverage(boxes, fit.config).best_iou)


def test_a_dataset_made_of_the_default_boxes_is_covered_fully_and_fitting_keeps_it():
    priors = default_boxes(SSD128_SHAPES)
    corners = cxcywh_to_xyxy(priors)
    inside = ((corners >= 0) & (corners <= 1)).all(dim=1)
    boxes = corners[inside][::7]  # a sample of the default boxes themselves
    cov = coverage(boxes, SSD128_SHAPES)
    assert cov.share == 1.0
    fit = fit_default_boxes(boxes, SSD128_SHAPES)
    assert not fit.changed and fit.config == SSD128_SHAPES and fit.after.share == 1.0


def test_fitting_keeps_the_structure_so_the_model_keeps_its_shape():
    from ssd_edu.model import ssd_small

    boxes = random_squares(300, 0.05, 0.3, seed=1)
    fit = fit_default_boxes(boxes, SSD128_SHAPES)
    cfg = fit.config
    assert cfg.feature_maps == SSD128_SHAPES.feature_maps
    assert cfg.steps == SSD128_SHAPES.steps and cfg.image_size == SSD128_SHAPES.image_size
    assert cfg.boxes_per_location == SSD128_SHAPES.boxes_per_location
    model = ssd_small(3, cfg=cfg, width=8)
    assert model.priors.shape == (SSD128_SHAPES.num_priors, 4)


@pytest.mark.parametrize("seed", range(3))
def test_fitting_never_lowers_the_training_coverage(seed):
    g = torch.Generator().manual_seed(seed)
    low = 0.02 + 0.3 * float(torch.rand(1, generator=g))
    boxes = random_squares(150, low, low + 0.4, seed=seed)
    stretch = 1 + 2 * torch.rand(150, generator=g)  # widen some boxes: aspect ratios to 3
    boxes[:, 2] = (boxes[:, 0] + (boxes[:, 2] - boxes[:, 0]) * stretch).clamp(max=1)
    fit = fit_default_boxes(boxes, SSD128_SHAPES, max_objects=60, seed=seed)
    assert fit.after.share >= fit.before.share
    assert tiles(fit.config)
    assert fit.summary().startswith("default boxes fitted to 150 training boxes")


def test_small_objects_do_not_shrink_the_coarse_maps_below_their_cells():
    # all objects under 20 px: every s_k would shrink to them, leaving the 2x2 and 1x1 maps'
    # boxes far smaller than their cells; the tiling rule keeps each map's boxes near its cells
    fit = fit_default_boxes(random_squares(300, 0.06, 0.15, seed=2), SSD128_SHAPES)
    assert fit.changed and fit.after.share > fit.before.share
    for s_k, step in zip(fit.config.min_sizes, fit.config.steps):
        assert s_k >= TILING * step
    assert not tiles(PriorConfig.from_scales(128, (16, 8, 4, 2, 1), ((2,),) * 5, 0.1, 0.2))


def test_tall_objects_get_tall_default_boxes():
    boxes = random_squares(100, 0.1, 0.2)
    boxes[:, 3] = boxes[:, 1] + 3 * (boxes[:, 3] - boxes[:, 1])  # h = 3 w
    ratios = fitted_ratios((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]), [1, 2])
    assert ratios == ((3.0,), (2.0, 3.0)) or ratios == ((3.0,), (3.0, 4.0))
    assert fitted_ratios(torch.ones(50), [1, 2]) is None  # all square: nothing to estimate


def test_per_bin_counts_add_up_including_boxes_on_the_edges():
    boxes = torch.cat([random_squares(80, 0.01, 0.95, seed=5), centred_square(0.125)])
    boxes = torch.cat([boxes, torch.tensor([[0.0, 0.0, 0.25, 0.1]])])  # w / h = 2.5, an edge
    cov = coverage(boxes, SSD128_SHAPES)
    for rows in (cov.by_size(), cov.by_ratio()):
        assert sum(n for _, n, _ in rows) == cov.n_objects == 82
        assert sum(c for _, _, c in rows) == cov.n_covered
    # an edge value falls in the bin above it
    assert [n for name, n, _ in cov.by_ratio() if name.startswith(">=")] == [1]
    assert "objects" in cov.table() and "(16 px)" in cov.table()


def test_lists_of_per_image_boxes_and_empty_inputs():
    per_image = [centred_square(0.5), torch.zeros(0, 4), centred_square(0.25)]
    cov = coverage(per_image, ONE_CELL)
    assert cov.n_objects == 2 and cov.n_covered == 1
    empty = coverage(torch.zeros(0, 4), ONE_CELL)
    assert empty.n_objects == 0 and empty.share == 1.0
    assert coverage(centred_square(0.5), default_boxes(ONE_CELL)).share == 1.0  # priors tensor


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "boxes, message",
    [
        (torch.tensor([[0.5, 0.1, 0.4, 0.3]]), r"boxes\[0\].*x2 > x1"),
        (torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.1, 0.3, 0.4, 0.3]]), r"boxes\[1\]"),
        (torch.tensor([[0.1, float("nan"), 0.4, 0.3]]), "finite"),
        (torch.zeros(3, 2), r"\[N, 4\]|\[\.\.\., 4\]"),
    ],
)
def test_bad_boxes_are_rejected_by_name(boxes, message):
    with pytest.raises(ValueError, match=message):
        coverage(boxes, ONE_CELL)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="threshold"):
        coverage(centred_square(0.5), ONE_CELL, threshold=0)
    with pytest.raises(ValueError, match="size_edges"):
        coverage(centred_square(0.5), ONE_CELL, size_edges=(0.2, 0.1))
    with pytest.raises(TypeError, match="torch.Tensor"):
        as_boxes([[0.1, 0.1, 0.2, 0.2]])
    with pytest.raises(ValueError, match="no boxes"):
        fit_default_boxes(torch.zeros(0, 4), ONE_CELL)
    with pytest.raises(TypeError, match="PriorConfig"):
        fit_default_boxes(centred_square(0.5), default_boxes(ONE_CELL))
    with pytest.raises(ValueError, match="max_objects"):
        fit_default_boxes(centred_square(0.5), ONE_CELL, max_objects=0)


def test_plot_coverage_draws_one_bar_per_size_bin_and_configuration():
    import matplotlib

    matplotlib.use("Agg")
    from ssd_edu.viz import plot_coverage

    boxes = random_squares(200, 0.1, 0.15)
    fit = fit_default_boxes(boxes, LARGE_ONLY)
    fig = plot_coverage([fit.before, fit.after], [fit.base, fit.config])
    ax_sizes, ax_cover = fig.axes
    used = [(n, c) for _, n, c in fit.after.by_size() if n]
    heights = [p.get_height() for p in ax_cover.patches]
    assert len(heights) == 2 * len(used)
    assert heights[len(used) :] == pytest.approx([c / n for n, c in used])
    assert ax_cover.get_ylabel().startswith("share covered")
    with pytest.raises(ValueError, match="one coverage per config"):
        plot_coverage([fit.before], [])
