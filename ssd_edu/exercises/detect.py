"""Checker for the detection-output exercise (notebook 10): from network outputs to detections.

The student writes ``detect(loc, logits, priors) -> list of (boxes, scores, labels)``, one tuple per
image, with the paper's test-time rule (§3.7): decode the offsets, softmax over the classes, drop
the background, keep per class the 400 best boxes scoring above 0.01, suppress per class with NMS
at 0.45 (they may use ``ssd_edu.nms.batched_nms`` or their own NMS), and keep the 200 best of the
image. The checker compares with :func:`ssd_edu.nms.detect` on small outputs a reader can follow
and on random ones, and names the usual mistakes: raw logits instead of softmax scores, the
background kept as a class, NMS across classes, the 200 applied per class, the 400 forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.exercises._common import ExerciseFailure, call_student, passed, refuse_library
from ssd_edu.fast.detect import detect as fast_detect
from ssd_edu.nms import detect, score_candidates

HINT_SOFTMAX = "scores are probabilities: take torch.softmax(logits, dim=-1), not the raw logits."
HINT_BACKGROUND = "class 0 is the background: leave it out (labels run 1..C-1)."
HINT_ACROSS = (
    "run NMS per class (batched_nms with the labels): a box of one class must not suppress a box "
    "of another class."
)
HINT_TOP_K = "keep the 200 best detections of the whole image, not 200 per class."
HINT_CANDIDATES = (
    "before NMS keep at most 400 candidates per class, the best-scored ones (the released models' "
    "rule): without it NMS sees every box above 0.01."
)


def _outputs(batch: int, priors: int, classes: int, seed: int, background: float):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(priors, 2, generator=g) * 0.8 + 0.1
    sizes = torch.rand(priors, 2, generator=g) * 0.3 + 0.05
    prior_boxes = torch.cat((centres, sizes), dim=1)  # [P, 4] cxcywh
    loc = torch.randn(batch, priors, 4, generator=g) * 0.3  # [B, P, 4]
    logits = torch.randn(batch, priors, classes, generator=g) * 2  # [B, P, C]
    logits[..., 0] += background
    return loc, logits, prior_boxes


def _cluster_then_spread():
    """400 copies of one box score best, then 100 boxes elsewhere: only the 400-cap keeps the
    others out of NMS (they would survive it)."""
    g = torch.Generator().manual_seed(4)
    spread = torch.cat((torch.rand(100, 2, generator=g) * 0.8 + 0.1, torch.full((100, 2), 0.05)), 1)
    priors = torch.cat((torch.tensor([[0.5, 0.5, 0.3, 0.3]]).repeat(400, 1), spread))  # [500, 4]
    logits = torch.zeros(1, 500, 2)
    logits[0, :400, 1] = 3.0  # the cluster: class 1 at about 0.95
    logits[0, 400:, 1] = 1.0  # the others: class 1 at about 0.73
    return torch.zeros(1, 500, 4), logits, priors


def _cases():
    return [
        ("400 copies of one box, then 100 boxes elsewhere", *_cluster_then_spread()),
        ("one image, 40 default boxes, 3 classes", *_outputs(1, 40, 3, 0, 1.0)),
        ("two images, confident background in most boxes", *_outputs(2, 200, 4, 1, 4.0)),
        ("flat scores: 600 boxes above 0.01 in each of 2 classes", *_outputs(1, 600, 3, 2, -3.0)),
        ("many candidates: more than 200 survive NMS", *_outputs(1, 1500, 3, 3, -2.0)),
    ]


def _mistakes(loc, logits, priors) -> dict[str, list]:
    """The answers the usual mistakes give on a case (only the ones that are easy to compute)."""
    wrong = {}
    wrong[HINT_TOP_K] = detect(loc, logits, priors, top_k=10**6)
    wrong[HINT_CANDIDATES] = detect(loc, logits, priors, candidates_per_class=10**6)
    return wrong


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.allclose(x.double(), y.double(), atol=1e-5)
        for (xb, xs, xl), (yb, ys, yl) in zip(a, b)
        for x, y in ((xb, yb), (xs, ys), (xl, yl))
    )


def _diagnose(got, loc, logits, priors) -> str:
    labels = torch.cat([lab.reshape(-1) for _, _, lab in got]) if got else torch.zeros(0)
    scores = torch.cat([s.reshape(-1) for _, s, _ in got]) if got else torch.zeros(0)
    if len(labels) and int(labels.min()) == 0:
        return HINT_BACKGROUND
    if len(scores) and (float(scores.max()) > 1 or float(scores.min()) < 0):
        return HINT_SOFTMAX
    for hint, wrong in _mistakes(loc, logits, priors).items():
        if _same(got, wrong):
            return hint
    kept = [len(b) for b, _, _ in got]
    candidates = [len(b) for b, _, _ in score_candidates(loc, logits, priors)]
    want = [len(b) for b, _, _ in detect(loc, logits, priors)]
    if any(k < w for k, w in zip(kept, want)) and all(c >= w for c, w in zip(candidates, want)):
        return HINT_ACROSS
    return ""


def check_detect(student_fn: Callable[..., list]) -> None:
    """Compare ``student_fn(loc, logits, priors)`` with :func:`ssd_edu.nms.detect`.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "detect", detect, fast_detect)
    cases = _cases()
    for case, loc, logits, priors in cases:
        want = detect(loc, logits, priors)
        got = call_student(student_fn, case, loc.clone(), logits.clone(), priors.clone())
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            raise ExerciseFailure(
                f"case '{case}': expected a list of {len(want)} (boxes, scores, labels) tuples, "
                f"one per image, got {type(got).__name__}"
            )
        if _same(got, want):
            continue
        counts = [len(b) for b, _, _ in got]
        msg = (
            f"case '{case}': expected {[len(b) for b, _, _ in want]} detections per image "
            f"(best score {max(float(s.max()) for _, s, _ in want if len(s)):.4f}), got {counts}"
        )
        hint = _diagnose(got, loc, logits, priors)
        raise ExerciseFailure(msg + (f"\nhint: {hint}" if hint else ""))
    passed("detect", len(cases))
