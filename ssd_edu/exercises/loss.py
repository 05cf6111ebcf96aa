"""Checker for the MultiBox-loss exercise (notebook 04).

The student writes ``multibox_loss(loc, logits, loc_t, cls_t, neg_pos_ratio=3, alpha=1.0)``
returning the total loss as a scalar tensor. The checker compares it with
:class:`ssd_edu.loss.MultiBoxLoss` and, when the value matches a well-known wrong variant
(per-image normalisation, localisation over negatives, no mining, 0/0 when N = 0), says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)
from ssd_edu.loss import MultiBoxLoss, confidence_loss_per_box, smooth_l1

HINT_PER_IMAGE = (
    "your value matches dividing each image by its own number of positives. SSD divides the "
    "sums over the whole batch by one N: the number of positives in all images together."
)
HINT_LOC_NEGATIVES = (
    "your value matches a localisation loss summed over every default box. Background boxes "
    "have no object to localise: sum Smooth L1 over the positives only (cls_t > 0)."
)
HINT_NO_MINING = (
    "your value matches a confidence loss over every negative. Keep only the hardest negatives: "
    "at most neg_pos_ratio per positive in each image (use hard_negative_mask from "
    "ssd_edu.mining on the per-box cross-entropy, computed without gradient)."
)
HINT_ZERO_N = (
    "with no positives N = 0 and you divided 0 by 0. The loss is defined as 0 then: divide by "
    "max(N, 1) (both sums are empty anyway)."
)
HINT_UNSTABLE = (
    "with large logits exp() overflows. Use F.cross_entropy or F.log_softmax, which subtract the "
    "largest logit before exponentiating."
)


def _case(seed: int, B: int, P: int, C: int, pos_rates: list[float], scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(B, P, 4, generator=g)  # [B, P, 4]
    logits = torch.randn(B, P, C, generator=g) * scale  # [B, P, C]
    loc_t = torch.randn(B, P, 4, generator=g)  # [B, P, 4], also on background rows on purpose
    positive = torch.rand(B, P, generator=g) < torch.tensor(pos_rates)[:, None]  # [B, P]
    cls_t = torch.where(positive, torch.randint(1, C, (B, P), generator=g), 0)  # [B, P]
    return loc, logits, loc_t, cls_t


def _cases():
    hand = (
        torch.tensor([[[0.5, 2.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]]),
        torch.zeros(1, 3, 2),
        torch.zeros(1, 3, 4),
        torch.tensor([[1, 0, 0]]),
    )
    return [
        ("hand-made: 3 boxes, 1 positive, all logits 0", hand, 3, 1.0),
        ("two images with 2 and 9 positives", _case(1, 2, 40, 4, [0.05, 0.25]), 3, 1.0),
        ("random batch, one image without objects", _case(2, 3, 60, 5, [0.1, 0.0, 0.3]), 3, 1.0),
        ("random batch, ratio 2, alpha 0.5", _case(3, 4, 80, 6, [0.05, 0.1, 0.2, 0.02]), 2, 0.5),
        ("no positives anywhere (N = 0)", _case(4, 2, 30, 3, [0.0, 0.0]), 3, 1.0),
        ("large logits (about 1e4)", _case(5, 2, 30, 4, [0.1, 0.2], scale=1e4), 3, 1.0),
    ]


def _wrong_variants(loc, logits, loc_t, cls_t, ratio, alpha) -> list[tuple[torch.Tensor, str]]:
    """The values the common mistakes produce on this case, each with its hint."""
    positive = cls_t > 0  # [B, P]
    n_b = positive.sum(dim=1)  # [B]
    n = n_b.sum().clamp(min=1)
    criterion = MultiBoxLoss(ratio, alpha)
    per_image = torch.stack(
        [
            criterion(loc[b : b + 1], logits[b : b + 1], loc_t[b : b + 1], cls_t[b : b + 1])[0]
            for b in range(len(cls_t))
        ]
    )  # [B], each already divided by its own N_b
    with_pos = n_b > 0
    variants = []
    if with_pos.any():
        variants.append((per_image[with_pos].mean(), HINT_PER_IMAGE))
        variants.append((per_image.mean(), HINT_PER_IMAGE))
    _, l_loc, l_conf = criterion(loc, logits, loc_t, cls_t)
    loc_all = smooth_l1(loc - loc_t).sum() / n
    variants.append((l_conf + alpha * loc_all, HINT_LOC_NEGATIVES))
    variants.append((MultiBoxLoss(None, alpha)(loc, logits, loc_t, cls_t)[0], HINT_NO_MINING))
    # the two mistakes together are common too
    conf_all = confidence_loss_per_box(logits, cls_t).sum() / n
    variants.append((conf_all + alpha * loc_all, HINT_NO_MINING + "\nhint: " + HINT_LOC_NEGATIVES))
    return variants


def check_multibox_loss(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(loc, logits, loc_t, cls_t, neg_pos_ratio, alpha)`` with the library.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "multibox_loss", MultiBoxLoss)
    cases = _cases()
    for case, (loc, logits, loc_t, cls_t), ratio, alpha in cases:
        args = (loc.clone(), logits.clone(), loc_t.clone(), cls_t.clone())
        got = call_student(student_fn, case, *args, neg_pos_ratio=ratio, alpha=alpha)
        if isinstance(got, tuple):
            raise ExerciseFailure(
                f"case '{case}': expected the total loss alone (a scalar tensor), got a tuple"
            )
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.ndim > 0:
            raise ExerciseFailure(
                f"case '{case}': expected a scalar (shape []), got shape {list(got.shape)}"
            )
        expected = MultiBoxLoss(ratio, alpha)(loc, logits, loc_t, cls_t)[0].detach()
        if isinstance(got, torch.Tensor) and got.ndim == 0 and not torch.isfinite(got):
            hint = HINT_ZERO_N if not (cls_t > 0).any() else HINT_UNSTABLE
            raise ExerciseFailure(
                f"case '{case}': expected {float(expected):.6g}, got {float(got)}\nhint: {hint}"
            )
        hint = ""
        right = isinstance(got, torch.Tensor) and got.ndim == 0
        right = right and math.isclose(float(got), float(expected), rel_tol=1e-4, abs_tol=1e-5)
        if isinstance(got, torch.Tensor) and got.ndim == 0 and not right:
            for value, mistake in _wrong_variants(loc, logits, loc_t, cls_t, ratio, alpha):
                close = math.isclose(float(got), float(value), rel_tol=1e-4, abs_tol=1e-5)
                if close and not math.isclose(float(value), float(expected), rel_tol=1e-4):
                    hint = mistake
                    break
        expect_close(case, got.detach() if isinstance(got, torch.Tensor) else got, expected, hint)
    passed("check_multibox_loss", len(cases))
