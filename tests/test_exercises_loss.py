"""The MultiBox-loss checker accepts a correct solution and names each common mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssd_edu.exercises import ExerciseFailure, check_multibox_loss
from ssd_edu.mining import hard_negative_mask


def _parts(loc, logits, loc_t, cls_t):
    positive = cls_t > 0
    ce = F.cross_entropy(logits.flatten(0, 1), cls_t.flatten(), reduction="none").view_as(cls_t)
    sl1 = F.smooth_l1_loss(loc, loc_t, reduction="none").sum(-1)
    return positive, ce, sl1


def correct(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    positive, ce, sl1 = _parts(loc, logits, loc_t, cls_t)
    negative = hard_negative_mask(ce.detach(), positive, neg_pos_ratio)
    n = positive.sum().clamp(min=1)
    return (ce[positive | negative].sum() + alpha * sl1[positive].sum()) / n


def per_image(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    # each image divided by its own N_b, then averaged over the images
    losses = [
        correct(
            loc[b : b + 1],
            logits[b : b + 1],
            loc_t[b : b + 1],
            cls_t[b : b + 1],
            neg_pos_ratio,
            alpha,
        )
        for b in range(len(cls_t))
    ]
    return torch.stack(losses).mean()


def loc_over_negatives(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    positive, ce, sl1 = _parts(loc, logits, loc_t, cls_t)
    negative = hard_negative_mask(ce.detach(), positive, neg_pos_ratio)
    n = positive.sum().clamp(min=1)
    return (ce[positive | negative].sum() + alpha * sl1.sum()) / n


def no_mining(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    positive, ce, sl1 = _parts(loc, logits, loc_t, cls_t)
    n = positive.sum().clamp(min=1)
    return (ce.sum() + alpha * sl1[positive].sum()) / n


def zero_division(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    positive, ce, sl1 = _parts(loc, logits, loc_t, cls_t)
    negative = hard_negative_mask(ce.detach(), positive, neg_pos_ratio)
    n = positive.sum()  # 0 when no image has an object
    return (ce[positive | negative].sum() + alpha * sl1[positive].sum()) / n


def naive_softmax(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    positive, _, sl1 = _parts(loc, logits, loc_t, cls_t)
    p = logits.exp() / logits.exp().sum(-1, keepdim=True)  # overflows for large logits
    ce = -p.gather(-1, cls_t[..., None]).squeeze(-1).log()
    negative = hard_negative_mask(ce.detach(), positive, neg_pos_ratio)
    n = positive.sum().clamp(min=1)
    return (ce[positive | negative].sum() + alpha * sl1[positive].sum()) / n


def stub(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0):
    raise NotImplementedError()


def test_correct_solution_passes(capsys):
    check_multibox_loss(correct)
    assert "all 6 cases passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (per_image, "hint: your value matches dividing each image by its own number"),
        (loc_over_negatives, "hint: your value matches a localisation loss summed over every"),
        (no_mining, "hint: your value matches a confidence loss over every negative"),
        (zero_division, r"N = 0\).*got nan\nhint: with no positives N = 0"),
        (naive_softmax, r"large logits.*\nhint: with large logits exp\(\) overflows"),
    ],
)
def test_mistakes_are_named(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_multibox_loss(fn)


def test_tuple_result_is_reported():
    with pytest.raises(ExerciseFailure, match="expected the total loss alone"):
        check_multibox_loss(lambda *a, **k: (correct(*a, **k), 0.0))
