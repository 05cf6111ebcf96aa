"""The blockwise NMS of ssd_edu.fast equals the reference greedy loop exactly."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_edu import nms as reference
from ssd_edu.fast import detect as fast_detect
from ssd_edu.fast import nms as fast


def random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    """Clustered random boxes (so that NMS has work), some exact copies, some zero-width."""
    centres = torch.rand(max(n // 5, 1), 2, generator=g)
    which = torch.randint(0, len(centres), (n,), generator=g)
    xy = centres[which] + torch.randn(n, 2, generator=g) * 0.05  # [n, 2]
    boxes = torch.cat((xy, xy + 0.05 + torch.rand(n, 2, generator=g) * 0.3), dim=1)  # [n, 4]
    if n > 3:
        boxes[1::4] = boxes[0::4][: len(boxes[1::4])]  # identical boxes
        boxes[2::7, 2] = boxes[2::7, 0]  # zero width
    return boxes


@pytest.mark.parametrize("block_size", [1, 2, 7, 128])
def test_nms_equals_the_reference_on_random_sets(block_size):
    g = torch.Generator().manual_seed(block_size)
    for trial in range(30):
        n = int(torch.randint(0, 80, (1,), generator=g))
        boxes, scores = random_boxes(n, g), torch.rand(n, generator=g)
        if trial % 3 == 0:
            scores = (scores * 4).floor() / 4  # many equal scores
        threshold = [0.0, 0.3, 1 / 3, 0.45, 0.7, 1.0][trial % 6]
        want = reference.nms(boxes, scores, threshold)
        got = fast.nms(boxes, scores, threshold, block_size=block_size)
        assert torch.equal(got, want), (trial, threshold)


def test_nms_on_a_large_set_and_in_float64():
    g = torch.Generator().manual_seed(7)
    boxes, scores = random_boxes(900, g), torch.rand(900, generator=g)
    assert torch.equal(fast.nms(boxes, scores, 0.45), reference.nms(boxes, scores, 0.45))
    b64, s64 = boxes.double(), scores.double()
    assert torch.equal(fast.nms(b64, s64, 0.45), reference.nms(b64, s64, 0.45))


grid_box = st.tuples(
    st.integers(0, 4), st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(grid_box, st.integers(0, 3), st.integers(0, 2)), max_size=25),
    st.sampled_from([0.0, 0.25, 1 / 3, 0.45, 0.5, 1.0]),
    st.integers(2, 9),
)
def test_grid_boxes_ties_and_classes(items, threshold, block_size):
    # boxes on a small integer grid: equal overlaps, identical boxes and equal scores are common
    boxes = torch.tensor([b for b, _, _ in items], dtype=torch.float32).reshape(-1, 4)
    scores = torch.tensor([s / 4 for _, s, _ in items], dtype=torch.float32)
    classes = torch.tensor([c for _, _, c in items], dtype=torch.long)
    assert torch.equal(
        fast.nms(boxes, scores, threshold, block_size), reference.nms(boxes, scores, threshold)
    )
    assert torch.equal(
        fast.batched_nms(boxes, scores, classes, threshold, block_size),
        reference.batched_nms(boxes, scores, classes, threshold),
    )


@pytest.mark.parametrize("block_size", [3, 128])
def test_batched_nms_equals_the_reference(block_size):
    g = torch.Generator().manual_seed(11 + block_size)
    for trial in range(24):
        n = int(torch.randint(0, 90, (1,), generator=g))
        boxes, scores = random_boxes(n, g), torch.rand(n, generator=g)
        if trial % 2:
            scores = (scores * 5).floor() / 5  # ties inside and across classes
        classes = torch.randint(0, 4, (n,), generator=g)
        threshold = [0.0, 0.45, 0.6, 1.0][trial % 4]
        want = reference.batched_nms(boxes, scores, classes, threshold)
        assert torch.equal(fast.batched_nms(boxes, scores, classes, threshold, block_size), want)


Z = torch.zeros


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("nms", (Z(3, 5), Z(3), 0.5), {}),
        ("nms", (Z(3, 4), Z(3), 1.5), {}),
        ("nms", (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([float("nan")]), 0.5), {}),
        ("batched_nms", (Z(3, 4), Z(3), Z(3), 0.5), {}),
        ("detect", (Z(2, 10, 4), Z(2, 9, 3), Z(10, 4)), {}),
        ("detect", (Z(1, 9, 4), Z(1, 9, 3), Z(9, 4)), dict(top_k=0)),
        ("detect", (Z(1, 9, 4), Z(1, 9, 3), Z(9, 4)), dict(candidates_per_class=0)),
        ("detect", (torch.full((1, 9, 4), float("nan")), Z(1, 9, 3), Z(9, 4)), {}),
    ],
)
def test_bad_input_gets_the_references_message(name, args, kwargs):
    with pytest.raises((TypeError, ValueError)) as expected:
        getattr(reference, name)(*args, **kwargs)
    module = fast_detect if name == "detect" else fast
    with pytest.raises(expected.type) as got:
        getattr(module, name)(*args, **kwargs)
    assert str(got.value) == str(expected.value)


def test_block_size_is_checked():
    with pytest.raises(ValueError, match="block_size must be a positive int, got 0"):
        fast.nms(torch.zeros(3, 4), torch.zeros(3), 0.5, block_size=0)
