"""The mining checker accepts a correct solution and names each common mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_hard_negative_mask


def correct(conf_loss, positive, neg_pos_ratio=3):
    # a solution written the way a student might: rank by a double argsort, topk-free
    num_pos = positive.sum(1, keepdim=True)
    num_neg = torch.minimum((num_pos * neg_pos_ratio).long(), (~positive).sum(1, keepdim=True))
    loss = conf_loss.masked_fill(positive, -float("inf"))
    rank = loss.argsort(1, descending=True).argsort(1)
    return (rank < num_neg) & ~positive


def picks_positives(conf_loss, positive, neg_pos_ratio=3):
    num_neg = (positive.sum(1, keepdim=True) * neg_pos_ratio).long()
    rank = conf_loss.argsort(1, descending=True).argsort(1)  # positives ranked with the rest
    return rank < num_neg


def ratio_per_batch(conf_loss, positive, neg_pos_ratio=3):
    B, P = conf_loss.shape
    num_neg = min(int(positive.sum()) * neg_pos_ratio, int((~positive).sum()))
    flat = conf_loss.masked_fill(positive, -float("inf")).reshape(-1)
    mask = torch.zeros(B * P, dtype=torch.bool)
    mask[flat.argsort(descending=True)[:num_neg]] = True
    return mask.view(B, P)


def no_cap_masked(conf_loss, positive, neg_pos_ratio=3):
    num_neg = (positive.sum(1, keepdim=True) * neg_pos_ratio).long()  # never capped
    loss = conf_loss.masked_fill(positive, -float("inf"))
    rank = loss.argsort(1, descending=True).argsort(1)
    return rank < num_neg


def no_cap_topk(conf_loss, positive, neg_pos_ratio=3):
    mask = torch.zeros_like(positive)
    for b in range(len(conf_loss)):
        k = int(positive[b].sum()) * neg_pos_ratio
        neg_idx = torch.nonzero(~positive[b]).squeeze(1)
        top = conf_loss[b, neg_idx].topk(k).indices  # fails when k > number of negatives
        mask[b, neg_idx[top]] = True
    return mask


def lowest_loss(conf_loss, positive, neg_pos_ratio=3):
    num_pos = positive.sum(1, keepdim=True)
    num_neg = torch.minimum(num_pos * neg_pos_ratio, (~positive).sum(1, keepdim=True))
    loss = conf_loss.masked_fill(positive, float("inf"))
    rank = loss.argsort(1).argsort(1)  # ascending: the easiest negatives first
    return (rank < num_neg) & ~positive


def stub(conf_loss, positive, neg_pos_ratio=3):
    raise NotImplementedError()


def test_correct_solution_passes(capsys):
    check_hard_negative_mask(correct)
    assert "all 6 cases passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (picks_positives, "is a positive but your mask chose it\nhint: your mask selects positive"),
        (ratio_per_batch, "hint: the batch as a whole has the right number"),
        (no_cap_masked, "hint: an image wants more negatives"),
        (no_cap_topk, "raised RuntimeError.*\nhint: an image wants more negatives"),
        (lowest_loss, "not the hardest ones.*\nhint: you picked negatives with the lowest"),
    ],
)
def test_mistakes_are_named(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_hard_negative_mask(fn)


def test_wrong_type_and_shape_are_reported():
    with pytest.raises(ExerciseFailure, match="expected dtype torch.bool"):
        check_hard_negative_mask(lambda c, p, r=3: correct(c, p, r).float())
    with pytest.raises(ExerciseFailure, match=r"expected shape \[1, 6\]"):
        check_hard_negative_mask(lambda c, p, r=3: correct(c, p, r)[0])
