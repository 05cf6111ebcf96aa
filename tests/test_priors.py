"""Tests for ssd_edu.priors: the default boxes of §2.2 (eq. 4), their order, count and configs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_edu.boxes import cxcywh_to_xyxy
from ssd_edu.priors import (
    SSD128_SHAPES,
    SSD300_VOC,
    SSD512_VOC,
    PriorConfig,
    cell_boxes_wh,
    default_boxes,
    paper_scales,
)

SETTINGS = settings(max_examples=40, deadline=None, database=None)


def one_map(**overrides) -> PriorConfig:
    """A 1x1 map on a 300 px image: one cell, easy to work out by hand."""
    fields = dict(
        image_size=300,
        feature_maps=(1,),
        steps=(300,),
        min_sizes=(30,),
        max_sizes=(60,),
        aspect_ratios=((2,),),
    )
    fields.update(overrides)
    return PriorConfig(**fields)


# ---------------------------------------------------------------- hand-worked cases


def test_one_by_one_map_by_hand():
    # s_k = 30/300 = 0.1; s_k' = sqrt(0.1 * 0.2) = 0.1414; ratio 2 gives 0.1*sqrt(2) x 0.1/sqrt(2)
    r2 = math.sqrt(2)
    want = torch.tensor(
        [
            [0.5, 0.5, 0.1, 0.1],
            [0.5, 0.5, math.sqrt(0.02), math.sqrt(0.02)],
            [0.5, 0.5, 0.1 * r2, 0.1 / r2],
            [0.5, 0.5, 0.1 / r2, 0.1 * r2],
        ]
    )
    torch.testing.assert_close(default_boxes(one_map()), want)


def test_one_by_one_map_with_two_ratios():
    boxes = default_boxes(one_map(aspect_ratios=((2, 3),)))
    assert boxes.shape == (6, 4)
    r3 = math.sqrt(3)
    torch.testing.assert_close(boxes[4, 2:], torch.tensor([0.1 * r3, 0.1 / r3]))
    torch.testing.assert_close(boxes[5, 2:], torch.tensor([0.1 / r3, 0.1 * r3]))
    # every box of a ratio a has w / h = a, and area s_k^2 like the small square
    aspect = boxes[:, 2] / boxes[:, 3]
    torch.testing.assert_close(aspect, torch.tensor([1, 1, 2, 1 / 2, 3, 1 / 3]).float())


def test_two_by_two_map_order_is_row_then_column():
    cfg = PriorConfig(
        image_size=100,
        feature_maps=(2,),
        steps=(50,),
        min_sizes=(20,),
        max_sizes=(45,),
        aspect_ratios=((),),
    )
    boxes = default_boxes(cfg)  # two squares per cell
    centres = boxes[::2, :2]
    # cell (i, j) centre is ((j + 0.5) * 50 / 100, (i + 0.5) * 50 / 100); j runs fastest
    want = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    torch.testing.assert_close(centres, want)
    torch.testing.assert_close(boxes[1, 2:], torch.tensor([0.3, 0.3]))  # sqrt(0.2 * 0.45)


def test_cell_boxes_wh_matches_default_boxes():
    for k in range(len(SSD300_VOC.feature_maps)):
        start = sum(SSD300_VOC.boxes_per_map[:k])
        n = SSD300_VOC.boxes_per_location[k]
        torch.testing.assert_close(
            cell_boxes_wh(SSD300_VOC, k), default_boxes(SSD300_VOC)[start : start + n, 2:]
        )
    with pytest.raises(IndexError, match="map index k=6 out of range for 6 feature maps"):
        cell_boxes_wh(SSD300_VOC, 6)


# ---------------------------------------------------------------- the paper's counts


def test_ssd300_count_is_8732_with_per_map_breakdown():
    assert SSD300_VOC.boxes_per_location == (4, 6, 6, 6, 4, 4)
    assert SSD300_VOC.boxes_per_map == (5776, 2166, 600, 150, 36, 4)
    assert SSD300_VOC.num_priors == 8732
    assert default_boxes(SSD300_VOC).shape == (8732, 4)


def test_ssd512_count_is_24564():
    assert SSD512_VOC.boxes_per_map == (16384, 6144, 1536, 384, 96, 16, 4)
    assert SSD512_VOC.num_priors == 24564
    assert default_boxes(SSD512_VOC).shape == (24564, 4)


def test_released_config_values():
    assert SSD300_VOC.image_size == 300
    assert SSD300_VOC.feature_maps == (38, 19, 10, 5, 3, 1)
    assert SSD300_VOC.steps == (8, 16, 32, 64, 100, 300)
    assert SSD300_VOC.min_sizes == (30, 60, 111, 162, 213, 264)
    assert SSD300_VOC.max_sizes == (60, 111, 162, 213, 264, 315)
    assert SSD300_VOC.aspect_ratios == ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    assert SSD300_VOC.clip is False
    assert SSD512_VOC.image_size == 512
    assert SSD512_VOC.feature_maps == (64, 32, 16, 8, 4, 2, 1)
    assert SSD512_VOC.steps == (8, 16, 32, 64, 128, 256, 512)
    assert SSD512_VOC.min_sizes == (35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8)
    assert SSD512_VOC.max_sizes == (76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)
    assert SSD512_VOC.aspect_ratios == ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,))
    assert SSD512_VOC.clip is False


def test_ssd300_first_box_and_last_box():
    boxes = default_boxes(SSD300_VOC)
    # first: cell (0, 0) of the 38x38 map, centre 4/300, side 30/300
    torch.testing.assert_close(boxes[0], torch.tensor([4 / 300, 4 / 300, 0.1, 0.1]))
    # last: the 1x1 map's (1/2, 2) box, centre of the image
    w, h = 264 / 300 / math.sqrt(2), 264 / 300 * math.sqrt(2)
    torch.testing.assert_close(boxes[-1], torch.tensor([0.5, 0.5, w, h]))


# ---------------------------------------------------------------- scales


def test_paper_scales_six_maps():
    # 0.2 + 0.7 / 5 * (k - 1): 0.2, 0.34, 0.48, 0.62, 0.76, 0.9
    want = [0.2, 0.34, 0.48, 0.62, 0.76, 0.9]
    assert paper_scales(6) == pytest.approx(want)
    assert paper_scales(1) == [0.2]
    assert paper_scales(3, 0.1, 0.5) == pytest.approx([0.1, 0.3, 0.5])


@SETTINGS
@given(st.integers(2, 12), st.floats(0.01, 0.5), st.floats(0.0, 0.5))
def test_paper_scales_evenly_spaced(m, s_min, extra):
    s = paper_scales(m, s_min, s_min + extra)
    assert len(s) == m
    assert s[0] == pytest.approx(s_min) and s[-1] == pytest.approx(s_min + extra)
    gaps = [b - a for a, b in zip(s, s[1:])]
    assert gaps == pytest.approx([gaps[0]] * (m - 1), abs=1e-12)


def test_paper_scales_errors():
    with pytest.raises(ValueError, match="m .number of feature maps. must be at least 1, got 0"):
        paper_scales(0)
    with pytest.raises(ValueError, match="need 0 < s_min <= s_max, got s_min=0.9, s_max=0.2"):
        paper_scales(6, 0.9, 0.2)
    with pytest.raises(ValueError, match="need 0 < s_min <= s_max, got s_min=0.0"):
        paper_scales(6, 0.0, 0.9)


def test_from_scales_follows_the_equation():
    cfg = PriorConfig.from_scales(300, (38, 19, 10, 5, 3, 1), SSD300_VOC.aspect_ratios)
    assert cfg.min_sizes == pytest.approx([60, 102, 144, 186, 228, 270])
    # the extra square uses s_{k+1}; after the last map the step 0.14 continues (0.9 + 0.14)
    assert cfg.max_sizes == pytest.approx([102, 144, 186, 228, 270, 312])
    assert cfg.steps == pytest.approx([300 / f for f in (38, 19, 10, 5, 3, 1)])
    assert cfg.num_priors == 8732
    assert cfg.clip is False


def test_from_scales_small_image_and_one_map():
    assert SSD128_SHAPES.image_size == 128
    assert SSD128_SHAPES.min_sizes == pytest.approx([12.8, 38.4, 64.0, 89.6, 115.2])
    assert SSD128_SHAPES.max_sizes == pytest.approx([38.4, 64.0, 89.6, 115.2, 140.8])
    one = PriorConfig.from_scales(64, (4,), ((2,),), s_min=0.25, s_max=0.5)
    assert one.min_sizes == (16.0,) and one.max_sizes == (32.0,)
    # centres of a from_scales config sit at (j + 0.5) / f exactly
    torch.testing.assert_close(default_boxes(one)[::4, 0][:4], torch.tensor([1, 3, 5, 7]) / 8)


# ---------------------------------------------------------------- plain reference


def default_boxes_reference(cfg: PriorConfig) -> torch.Tensor:
    """Nested loops over maps, rows, columns and boxes, written straight from docs/design.md."""
    rows = []
    for k, f in enumerate(cfg.feature_maps):
        s_k = cfg.min_sizes[k] / cfg.image_size
        s_k_prime = math.sqrt(s_k * cfg.max_sizes[k] / cfg.image_size)
        for i in range(f):
            for j in range(f):
                cx = (j + 0.5) * cfg.steps[k] / cfg.image_size
                cy = (i + 0.5) * cfg.steps[k] / cfg.image_size
                rows.append([cx, cy, s_k, s_k])
                rows.append([cx, cy, s_k_prime, s_k_prime])
                for a in cfg.aspect_ratios[k]:
                    rows.append([cx, cy, s_k * math.sqrt(a), s_k / math.sqrt(a)])
                    rows.append([cx, cy, s_k / math.sqrt(a), s_k * math.sqrt(a)])
    out = torch.tensor(rows, dtype=torch.float64)
    if cfg.clip:
        clipped = []
        for cx, cy, w, h in out.tolist():
            # each corner coordinate is clamped to [0, 1], as Caffe's PriorBox does
            x1, y1, x2, y2 = (
                min(1.0, max(0.0, v)) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            )
            clipped.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        out = torch.tensor(clipped, dtype=torch.float64)
    return out


@pytest.mark.parametrize("cfg", [SSD300_VOC, SSD512_VOC, SSD128_SHAPES], ids=["300", "512", "128"])
def test_default_boxes_match_loop_reference(cfg):
    torch.testing.assert_close(
        default_boxes(cfg, dtype=torch.float64), default_boxes_reference(cfg), rtol=0, atol=1e-12
    )


@st.composite
def configs(draw):
    m = draw(st.integers(1, 3))
    image_size = draw(st.integers(16, 400))
    maps = tuple(draw(st.integers(1, 5)) for _ in range(m))
    lo = [draw(st.floats(1.0, 300.0)) for _ in range(m)]
    return PriorConfig(
        image_size=image_size,
        feature_maps=maps,
        steps=tuple(draw(st.floats(1.0, 200.0)) for _ in range(m)),
        min_sizes=tuple(lo),
        max_sizes=tuple(v + draw(st.floats(0.0, 100.0)) for v in lo),
        aspect_ratios=tuple(
            tuple(draw(st.lists(st.floats(1.01, 5.0), max_size=3))) for _ in range(m)
        ),
        clip=draw(st.booleans()),
    )


@SETTINGS
@given(configs())
def test_random_configs_match_loop_reference(cfg):
    got = default_boxes(cfg, dtype=torch.float64)
    assert got.shape == (cfg.num_priors, 4)
    torch.testing.assert_close(got, default_boxes_reference(cfg), rtol=0, atol=1e-12)


def test_follows_device_and_dtype():
    assert default_boxes(SSD128_SHAPES, dtype=torch.float64).dtype == torch.float64
    assert default_boxes(SSD128_SHAPES, device="cpu").device.type == "cpu"
    if torch.cuda.is_available():
        assert default_boxes(SSD128_SHAPES, device="cuda").device.type == "cuda"


# ---------------------------------------------------------------- clipping


def test_unclipped_released_boxes_leave_the_image():
    corners = cxcywh_to_xyxy(default_boxes(SSD300_VOC))
    assert corners.min() < 0 and corners.max() > 1  # as the released Caffe model has them


def test_clip_keeps_corners_inside_and_inner_boxes_unchanged():
    clipped_cfg = PriorConfig(**{**SSD300_VOC.__dict__, "clip": True})
    plain, clipped = default_boxes(SSD300_VOC), default_boxes(clipped_cfg)
    corners = cxcywh_to_xyxy(clipped)
    assert corners.min() >= 0 and corners.max() <= 1 + 1e-6
    inside = ((cxcywh_to_xyxy(plain) >= 0) & (cxcywh_to_xyxy(plain) <= 1)).all(dim=1)
    torch.testing.assert_close(clipped[inside], plain[inside])
    # the first box (centre 4/300, side 30/300) loses the part left of and above the image
    torch.testing.assert_close(clipped[0], torch.tensor([19 / 600, 19 / 600, 19 / 300, 19 / 300]))


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"steps": (8, 16)}, "steps has 2 entries but feature_maps has 1"),
        ({"min_sizes": ()}, "min_sizes has 0 entries but feature_maps has 1"),
        ({"max_sizes": (60, 70)}, "max_sizes has 2 entries but feature_maps has 1"),
        ({"aspect_ratios": ((2,), (3,))}, "aspect_ratios has 2 entries but feature_maps has 1"),
        ({"aspect_ratios": ((1,),)}, r"aspect_ratios\[0\] contains 1; give finite ratios > 1 only"),
        ({"aspect_ratios": ((0.5,),)}, r"aspect_ratios\[0\] contains 0.5; give finite ratios > 1"),
        ({"max_sizes": (20,)}, r"max_sizes\[0\] = 20 is smaller than min_sizes\[0\] = 30"),
        ({"min_sizes": (0,)}, r"min_sizes\[0\] must be positive and finite, got 0"),
        ({"max_sizes": (-1,)}, r"max_sizes\[0\] must be positive and finite, got -1"),
        ({"steps": (0,)}, r"steps\[0\] must be positive and finite, got 0"),
        ({"steps": (float("nan"),)}, r"steps\[0\] must be positive and finite, got nan"),
        ({"max_sizes": (float("inf"),)}, r"max_sizes\[0\] must be positive and finite, got inf"),
        ({"aspect_ratios": ((float("inf"),),)}, r"aspect_ratios\[0\] contains inf"),
        ({"feature_maps": (0,)}, r"feature_maps\[0\] must be a positive int, got 0"),
        ({"feature_maps": (2.5,)}, r"feature_maps\[0\] must be a positive int, got 2.5"),
        ({"image_size": 0}, "image_size must be a positive int, got 0"),
        ({"image_size": 300.0}, "image_size must be a positive int, got 300.0"),
        (
            {
                "feature_maps": (),
                "steps": (),
                "min_sizes": (),
                "max_sizes": (),
                "aspect_ratios": (),
            },
            "feature_maps must name at least one feature map",
        ),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        one_map(**overrides)


def test_config_normalises_lists_to_tuples():
    cfg = one_map(feature_maps=[1], steps=[300], aspect_ratios=[[2]])
    assert cfg == one_map()
    assert hash(cfg) == hash(one_map())
