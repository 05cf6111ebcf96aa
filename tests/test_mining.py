"""Hard negative mining: hand-worked cases, a plain sorting reference, and its invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_edu.mining import hard_negative_mask


def reference_mask(conf_loss: torch.Tensor, positive: torch.Tensor, ratio: float) -> torch.Tensor:
    """One image at a time, with Python's sort: highest loss first, lower index on ties."""
    B, P = conf_loss.shape
    mask = torch.zeros(B, P, dtype=torch.bool)
    for b in range(B):
        negatives = [p for p in range(P) if not positive[b, p]]
        n_pos = P - len(negatives)
        wanted = min(math.floor(ratio * n_pos), len(negatives))
        negatives.sort(key=lambda p: (-float(conf_loss[b, p]), p))
        for p in negatives[:wanted]:
            mask[b, p] = True
    return mask


def test_hand_worked_one_image():
    # box 1 is the positive: it has the highest loss but must never be mined;
    # 1 positive -> 3 negatives: boxes 4 (0.7), 2 (0.5), 3 (0.3)
    loss = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2]])
    positive = torch.tensor([[False, True, False, False, False, False]])
    mask = hard_negative_mask(loss, positive)
    assert mask.tolist() == [[False, False, True, True, True, False]]


def test_ratio_applies_per_image_and_no_positives_means_no_negatives():
    loss = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2], [0.1, 0.9, 0.5, 0.3, 0.7, 0.2]])
    positive = torch.tensor([[True, False, False, False, False, False], [False] * 6])
    mask = hard_negative_mask(loss, positive, neg_pos_ratio=1)
    # image 0: one positive -> the single hardest negative; image 1 lends nothing, gets nothing
    assert mask.tolist() == [[False, True, False, False, False, False], [False] * 6]


def test_cap_by_negatives_available():
    # 2 positives want 6 negatives but only 2 exist: take both, never a positive
    loss = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    positive = torch.tensor([[True, False, True, False]])
    mask = hard_negative_mask(loss, positive)
    assert mask.tolist() == [[False, True, False, True]]


def test_ties_go_to_the_lower_index():
    loss = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.5]])
    positive = torch.tensor([[False, False, True, False, False]])
    mask = hard_negative_mask(loss, positive, neg_pos_ratio=2)
    assert mask.tolist() == [[True, True, False, False, False]]


def test_fractional_ratio_rounds_down():
    loss = torch.arange(10.0)[None]
    positive = torch.zeros(1, 10, dtype=torch.bool)
    positive[0, :3] = True
    mask = hard_negative_mask(loss, positive, neg_pos_ratio=0.5)  # floor(1.5) = 1
    assert mask.nonzero()[:, 1].tolist() == [9]
    assert not hard_negative_mask(loss, positive, neg_pos_ratio=0).any()


def test_matches_plain_reference_on_random_batches_with_ties():
    g = torch.Generator().manual_seed(0)
    for ratio in (3, 1, 2.5):
        # integer losses in a small range: many ties, so the tie rule is exercised too
        loss = torch.randint(0, 5, (6, 40), generator=g).float()
        positive = (
            torch.rand(6, 40, generator=g) < torch.tensor([0, 0.02, 0.1, 0.3, 0.6, 1.0])[:, None]
        )
        assert torch.equal(
            hard_negative_mask(loss, positive, ratio), reference_mask(loss, positive, ratio)
        )


def test_follows_dtype_and_does_not_change_inputs():
    g = torch.Generator().manual_seed(1)
    loss = torch.rand(3, 50, generator=g, dtype=torch.float64)
    positive = torch.rand(3, 50, generator=g) < 0.1
    before = loss.clone()
    mask = hard_negative_mask(loss, positive)
    assert mask.dtype == torch.bool and mask.shape == (3, 50)
    assert torch.equal(loss, before)
    assert torch.equal(
        hard_negative_mask(loss.half(), positive), reference_mask(loss.half(), positive, 3)
    )


def test_ssd300_sizes_respect_the_three_to_one_bound():
    g = torch.Generator().manual_seed(2)
    loss = torch.rand(4, 8732, generator=g)
    positive = torch.zeros(4, 8732, dtype=torch.bool)
    positive[0, :5] = True
    positive[1, 100:140] = True
    positive[3, :] = True  # every box positive: no negative left to choose
    counts = hard_negative_mask(loss, positive).sum(dim=1)
    assert counts.tolist() == [15, 120, 0, 0]


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 4),
    P=st.integers(1, 30),
    ratio=st.sampled_from([0, 1, 3, 2.5, 100]),
    seed=st.integers(0, 10_000),
)
def test_properties(B, P, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    loss = torch.randint(0, 4, (B, P), generator=g).float()
    positive = torch.rand(B, P, generator=g) < torch.rand(B, 1, generator=g)
    mask = hard_negative_mask(loss, positive, ratio)
    assert not (mask & positive).any()
    n_pos, n_neg = positive.sum(1), (~positive).sum(1)
    expected = torch.minimum((n_pos * ratio).floor().long(), n_neg)
    assert torch.equal(mask.sum(1), expected)
    for b in range(B):
        chosen = loss[b][mask[b]]
        left = loss[b][~mask[b] & ~positive[b]]
        if chosen.numel() and left.numel():
            assert chosen.min() >= left.max()  # no skipped negative is harder than a chosen one


def test_rejects_bad_inputs():
    loss, positive = torch.rand(2, 5), torch.zeros(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"conf_loss must have shape \[B, P\], got \[5\]"):
        hard_negative_mask(loss[0], positive[0])
    with pytest.raises(
        ValueError, match=r"positive must have the shape of conf_loss \[2, 5\], got \[2, 4\]"
    ):
        hard_negative_mask(loss, positive[:, :4])
    with pytest.raises(TypeError, match="positive must be a bool tensor, got dtype torch.int64"):
        hard_negative_mask(loss, positive.long())
    with pytest.raises(TypeError, match="conf_loss must be a floating-point tensor"):
        hard_negative_mask(loss.long(), positive)
    with pytest.raises(ValueError, match="neg_pos_ratio must be a number >= 0, got -1"):
        hard_negative_mask(loss, positive, -1)
    with pytest.raises(TypeError, match="neg_pos_ratio must be a number >= 0, got None"):
        hard_negative_mask(loss, positive, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(3)
    loss = torch.randint(0, 5, (8, 500), generator=g).float()
    positive = torch.rand(8, 500, generator=g) < 0.05
    cpu = hard_negative_mask(loss, positive)
    assert torch.equal(hard_negative_mask(loss.cuda(), positive.cuda()).cpu(), cpu)


def test_mining_explorer_drawing_returns_the_library_mask():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import plot_mined_negatives

    priors = torch.tensor([[0.25, 0.25, 0.3, 0.3], [0.75, 0.25, 0.3, 0.3], [0.5, 0.75, 0.4, 0.3]])
    cls_t = torch.tensor([2, 0, 0])
    conf_loss = torch.tensor([0.1, 0.5, 0.2])
    fig = plot_mined_negatives(torch.rand(3, 20, 20), priors, conf_loss, cls_t, neg_pos_ratio=1)
    ax = fig.axes[0]
    assert ax.get_title() == "ratio 1: 1 positives, 1 of 2 negatives kept"
    assert len(ax.patches) == 3  # the positive, and the mined negative drawn twice (outline)
    plt.close(fig)
