"""Checker for the hard-negative-mining exercise (notebook 03).

The student writes ``hard_negative_mask(conf_loss, positive, neg_pos_ratio=3) -> bool [B, P]``.
Ties between equal losses may be broken any way: the checker compares, per image, the number of
negatives chosen and the losses of the chosen boxes, not their exact positions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.exercises._common import ExerciseFailure, call_student, passed, refuse_library
from ssd_edu.mining import hard_negative_mask

HINT_POSITIVES = (
    "your mask selects positive boxes. Only negatives (positive == False) can be mined: give the "
    "positives a loss of -inf (or leave them out) before ranking, and exclude them from the mask."
)
HINT_PER_BATCH = (
    "the batch as a whole has the right number of negatives but the images do not: apply the "
    "3:1 ratio per image (sort each row of conf_loss separately, one count per image)."
)
HINT_CAP = (
    "an image wants more negatives (ratio x positives) than it has: take all of its negatives, "
    "i.e. num_neg = min(neg_pos_ratio * num_pos, number of negatives in that image)."
)
HINT_LOWEST = (
    "you picked negatives with the lowest confidence loss. Hard negatives are the ones the "
    "network gets most wrong: sort by loss in descending order."
)
HINT_COUNT = (
    "each image needs floor(neg_pos_ratio * num_pos) negatives (capped by the negatives it has); "
    "an image without positives gets none."
)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    cases = [
        (
            "one image, one positive with the highest loss",
            torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2]]),
            torch.tensor([[False, True, False, False, False, False]]),
            3,
        ),
        (
            "two images, the second has no positives",
            torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2], [0.8, 0.1, 0.6, 0.3, 0.2, 0.9]]),
            torch.tensor([[True, False, False, False, False, False], [False] * 6]),
            1,
        ),
        (
            "more negatives wanted than the image has (2 positives, 2 negatives)",
            torch.tensor([[0.4, 0.3, 0.2, 0.1]]),
            torch.tensor([[True, False, True, False]]),
            3,
        ),
    ]
    g = torch.Generator().manual_seed(2016)
    for n, (B, P, ratio) in enumerate([(4, 50, 3), (3, 20, 3), (5, 200, 2)]):
        loss = torch.rand(B, P, generator=g) * 5  # [B, P]
        rate = torch.linspace(0.0, 0.4, B)[:, None]  # image 0 has no positives, the last many
        positive = torch.rand(B, P, generator=g) < rate  # [B, P]
        cases.append((f"random batch {n} (B={B}, P={P}, ratio={ratio})", loss, positive, ratio))
    return cases


def _diagnose(case: str, got: torch.Tensor, loss, positive, ratio, expected) -> str:
    """A message saying what differs, with the hint for the most likely mistake."""
    n_pos = positive.sum(1)  # [B]
    n_neg = (~positive).sum(1)  # [B]
    got_count = got.sum(1)  # [B]
    want_count = expected.sum(1)  # [B]
    if (got & positive).any():
        b, p = (int(i) for i in torch.nonzero(got & positive)[0])
        wants_more = (n_pos * ratio).floor().long() > n_neg  # [B]
        hint = HINT_CAP if bool(wants_more[b]) else HINT_POSITIVES
        chosen_neg = loss[b][got[b] & ~positive[b]]
        hardest = loss[b][expected[b]]
        if chosen_neg.numel() and hardest.numel() and chosen_neg.min() < hardest.min():
            hint += "\nhint: " + HINT_LOWEST  # e.g. an ascending sort that ranks positives first
        return (
            f"case '{case}': image {b}, box {p} is a positive but your mask chose it\nhint: {hint}"
        )
    if not torch.equal(got_count, want_count):
        b = int(torch.nonzero(got_count != want_count)[0])
        msg = (
            f"case '{case}': image {b} has {int(n_pos[b])} positives and {int(n_neg[b])} "
            f"negatives, ratio {ratio}: expected {int(want_count[b])} negatives, got "
            f"{int(got_count[b])} (per image expected {want_count.tolist()}, "
            f"got {got_count.tolist()})"
        )
        batch_wanted = min(int((n_pos.sum() * ratio) // 1), int(n_neg.sum()))
        hint = HINT_PER_BATCH if int(got_count.sum()) == batch_wanted else HINT_COUNT
        return msg + f"\nhint: {hint}"
    for b in range(got.shape[0]):
        got_loss = loss[b][got[b]].sort().values
        want_loss = loss[b][expected[b]].sort().values
        if not torch.equal(got_loss, want_loss):
            hint = HINT_LOWEST if got_loss.sum() < want_loss.sum() else ""
            msg = (
                f"case '{case}': image {b}: the right number of negatives, but not the hardest "
                f"ones: expected losses {[round(v, 3) for v in want_loss.tolist()][:8]}, got "
                f"{[round(v, 3) for v in got_loss.tolist()][:8]}"
            )
            return msg + (f"\nhint: {hint}" if hint else "")
    return ""


def check_hard_negative_mask(student_fn: Callable[..., torch.Tensor]) -> None:
    """Compare ``student_fn(conf_loss, positive, neg_pos_ratio)`` with the library's mining.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "hard_negative_mask", hard_negative_mask)
    cases = _cases()
    for case, loss, positive, ratio in cases:
        try:
            got = call_student(student_fn, case, loss.clone(), positive.clone(), ratio)
        except ExerciseFailure as e:
            if "more negatives wanted" in case and "raised" in str(e):
                raise ExerciseFailure(f"{e}\nhint: {HINT_CAP}") from e  # e.g. topk(k) with k > n
            raise
        if not isinstance(got, torch.Tensor):
            raise ExerciseFailure(
                f"case '{case}': expected a bool torch.Tensor, got {type(got).__name__}"
            )
        if tuple(got.shape) != tuple(loss.shape):
            raise ExerciseFailure(
                f"case '{case}': expected shape {list(loss.shape)} (one flag per box), "
                f"got {list(got.shape)}"
            )
        if got.dtype != torch.bool:
            raise ExerciseFailure(
                f"case '{case}': expected dtype torch.bool, got {got.dtype}\n"
                f"hint: return a mask, e.g. `rank < num_neg[:, None]`, not indices or numbers"
            )
        expected = hard_negative_mask(loss, positive, ratio)
        message = _diagnose(case, got, loss, positive, ratio, expected)
        if message:
            raise ExerciseFailure(message)
    passed("check_hard_negative_mask", len(cases))
