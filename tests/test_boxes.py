"""Tests for ssd_edu.boxes: formats, jaccard overlap, encode/decode (paper §2.2, eq. 2)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_edu.boxes import (
    VARIANCES,
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    decode,
    encode,
    xyxy_to_cxcywh,
)

# no example database: tests must not write into the work tree
SETTINGS = settings(max_examples=60, deadline=None, database=None)

# ---------------------------------------------------------------- hand-worked cases


def test_formats_by_hand():
    # a box from (0.1, 0.2) to (0.5, 0.8): centre (0.3, 0.5), size 0.4 x 0.6
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.8]])
    cxcywh = torch.tensor([[0.3, 0.5, 0.4, 0.6]])
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), cxcywh)
    torch.testing.assert_close(cxcywh_to_xyxy(cxcywh), xyxy)


def test_box_area_by_hand():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [2.0, 2.0, 1.0, 1.0]])
    # 2 x 3; zero width; inverted counts as 0, never negative
    torch.testing.assert_close(box_area(boxes), torch.tensor([6.0, 0.0, 0.0]))


def test_iou_two_boxes_on_paper():
    # A = [0,2]x[0,2] (area 4), B = [1,3]x[1,3] (area 4): overlap [1,2]x[1,2] = 1,
    # union 4 + 4 - 1 = 7, so IoU = 1/7
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7]]))


def test_iou_nested_disjoint_touching():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor(
        [
            [1.0, 1.0, 3.0, 3.0],  # inside a: 4 / 16
            [5.0, 5.0, 6.0, 6.0],  # disjoint: 0
            [4.0, 0.0, 6.0, 4.0],  # shares an edge only: 0
            [0.0, 0.0, 4.0, 4.0],  # the same box: 1
        ]
    )
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[0.25, 0.0, 0.0, 1.0]]))


def test_iou_shape_is_n_by_m():
    a = torch.rand(3, 4)
    b = torch.rand(5, 4)
    assert box_iou(a, b).shape == (3, 5)
    assert box_iou(a, b[:0]).shape == (3, 0)
    assert box_iou(a[:0], b).shape == (0, 5)


def test_iou_zero_area_boxes_give_zero_not_nan():
    point = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    line = torch.tensor([[0.2, 0.5, 0.8, 0.5]])
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    for x, y in [(point, point), (point, box), (line, line), (line, box)]:
        iou = box_iou(x, y)
        assert not torch.isnan(iou).any()
        assert iou.item() == 0.0


def test_iou_tiny_but_nonzero_area_is_still_one_with_itself():
    # area 0.5 * 1.2e-38 is below float32's smallest normal number: the ratio must stay exact
    sliver = torch.tensor([[0.0, 0.0, 0.5, 1.1755e-38]])
    assert box_iou(sliver, sliver).item() == 1.0


def test_encode_by_hand():
    # prior centred at (0.5, 0.5), 0.2 x 0.4; ground truth centred at (0.52, 0.46), 0.4 x 0.2
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    gt = cxcywh_to_xyxy(torch.tensor([[0.52, 0.46, 0.4, 0.2]]))
    want = torch.tensor(
        [
            [
                (0.52 - 0.5) / (0.1 * 0.2),  # 1.0
                (0.46 - 0.5) / (0.1 * 0.4),  # -1.0
                math.log(0.4 / 0.2) / 0.2,
                math.log(0.2 / 0.4) / 0.2,
            ]
        ]
    )
    torch.testing.assert_close(encode(gt, priors), want)


def test_decode_zero_offsets_is_the_prior():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.05, 0.05]])
    torch.testing.assert_close(decode(torch.zeros(2, 4), priors), cxcywh_to_xyxy(priors))


def test_encode_decode_batched_shapes():
    priors = torch.rand(7, 4) * 0.5 + 0.1
    loc = torch.randn(3, 7, 4) * 0.5
    boxes = decode(loc, priors)
    assert boxes.shape == (3, 7, 4)
    torch.testing.assert_close(encode(boxes, priors), loc, atol=1e-4, rtol=1e-4)


def test_variances_are_the_released_ones():
    assert VARIANCES == (0.1, 0.2)


def test_follows_dtype():
    a = torch.rand(4, 4, dtype=torch.float64)
    assert box_iou(a, a).dtype == torch.float64
    assert xyxy_to_cxcywh(a).dtype == torch.float64


# ---------------------------------------------------------------- plain reference


def iou_reference(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """IoU with two loops and plain floats: obvious, slow, independent of the library."""
    out = []
    for ax1, ay1, ax2, ay2 in a:
        row = []
        for bx1, by1, bx2, by2 in b:
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
            area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
            union = area_a + area_b - inter
            row.append(inter / union if union > 0 else 0.0)
        out.append(row)
    return out


def random_xyxy(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 0.8
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 0.5
    return torch.cat((xy, xy + wh), dim=1)


def test_iou_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    a, b = random_xyxy(13, g), random_xyxy(17, g)
    want = torch.tensor(iou_reference(a.tolist(), b.tolist()), dtype=torch.float64)
    torch.testing.assert_close(box_iou(a, b), want)


# ---------------------------------------------------------------- properties

coord = st.floats(0.0, 1.0, allow_nan=False, width=32)


@st.composite
def xyxy_boxes(draw, min_n: int = 1, max_n: int = 6):
    """Valid xyxy boxes, including zero-width, zero-height and single-point ones."""
    n = draw(st.integers(min_n, max_n))
    rows = []
    for _ in range(n):
        x = sorted([draw(coord), draw(coord)])
        y = sorted([draw(coord), draw(coord)])
        rows.append([x[0], y[0], x[1], y[1]])
    return torch.tensor(rows, dtype=torch.float32)


@SETTINGS
@given(xyxy_boxes(), xyxy_boxes())
def test_iou_symmetric_bounded_never_nan(a, b):
    ab, ba = box_iou(a, b), box_iou(b, a)
    assert not torch.isnan(ab).any()
    torch.testing.assert_close(ab, ba.T)
    assert (ab >= 0).all() and (ab <= 1).all()


@SETTINGS
@given(xyxy_boxes())
def test_iou_self_overlap_is_one(a):
    diag = box_iou(a, a).diagonal()
    has_area = box_area(a) > 0
    torch.testing.assert_close(diag[has_area], torch.ones_like(diag[has_area]))
    # a zero-area box overlaps nothing, itself included
    assert (diag[~has_area] == 0).all()


@SETTINGS
@given(xyxy_boxes())
def test_formats_round_trip(a):
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(a)), a, atol=1e-6, rtol=0)


positive = st.floats(0.01, 1.0, allow_nan=False)


@SETTINGS
@given(
    st.lists(st.tuples(coord, coord, positive, positive), min_size=1, max_size=6),
    st.lists(st.tuples(coord, coord, positive, positive), min_size=1, max_size=6),
)
def test_decode_of_encode_round_trip(gt_rows, prior_rows):
    n = min(len(gt_rows), len(prior_rows))
    gt = cxcywh_to_xyxy(torch.tensor(gt_rows[:n], dtype=torch.float64))
    priors = torch.tensor(prior_rows[:n], dtype=torch.float64)
    torch.testing.assert_close(decode(encode(gt, priors), priors), gt)


# ---------------------------------------------------------------- bad inputs


def test_iou_rejects_wrong_shapes():
    good = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"a must have shape \[\.\.\., 4\], got \[3, 5\]"):
        box_iou(torch.rand(3, 5), good)
    with pytest.raises(ValueError, match=r"batch dimensions of a \[3, 2, 4\] and b \[2, 3, 4\]"):
        box_iou(torch.rand(3, 2, 4), torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"a must have shape \[N, 4\] \(or .*\), got \[4\]"):
        box_iou(torch.rand(4), good)


def test_rejects_non_tensors_and_integer_boxes():
    with pytest.raises(TypeError, match="boxes must be a torch.Tensor, got list"):
        xyxy_to_cxcywh([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="a must be a floating-point tensor, got dtype torch.int64"):
        box_iou(torch.zeros(1, 4, dtype=torch.long), torch.rand(1, 4))
    with pytest.raises(ValueError, match=r"boxes must have shape \[\.\.\., 4\], got \[\]"):
        box_area(torch.tensor(1.0))


def test_encode_decode_reject_bad_priors():
    with pytest.raises(ValueError, match=r"priors must have shape \[N, 4\], got \[1, 2, 4\]"):
        encode(torch.rand(2, 4), torch.rand(1, 2, 4))
    with pytest.raises(ValueError, match=r"loc must have shape \[\.\.\., 4\], got \[2, 5\]"):
        decode(torch.rand(2, 5), torch.rand(2, 4))


def test_iou_broadcasts_batch_dimensions():
    # a batch of padded ground truths against one set of default boxes, as matching uses it
    a = torch.rand(3, 5, 2)
    a = torch.cat((a, a + torch.rand(3, 5, 2)), dim=-1)  # [3, 5, 4]
    b = torch.rand(7, 2)
    b = torch.cat((b, b + torch.rand(7, 2)), dim=-1)  # [7, 4]
    batched = box_iou(a, b)
    assert batched.shape == (3, 5, 7)
    for i in range(3):
        torch.testing.assert_close(batched[i], box_iou(a[i], b))
