"""Checker for the crop exercise (notebook 07): boxes seen through a sampled patch.

The student writes ``crop_boxes(boxes, patch) -> (new_boxes [K, 4], keep [N] bool)``: keep the
objects whose centre lies in the patch, express their boxes as fractions of the patch, and clip
them to it. The reference is :func:`ssd_edu.data.geometry.window_boxes`, the box arithmetic of the
library's crop (:func:`ssd_edu.data.geometry.crop` calls it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssd_edu.data.geometry import crop, trial_patches, window_boxes
from ssd_edu.exercises._common import (
    ExerciseFailure,
    call_student,
    expect_close,
    passed,
    refuse_library,
)

HINT_CENTRE_OVERLAP = (
    "you kept every box that overlaps the patch. The paper keeps a box only when its centre "
    "((x1 + x2) / 2, (y1 + y2) / 2) lies inside the patch."
)
HINT_CENTRE_INSIDE = (
    "you kept only boxes entirely inside the patch. Keep a box when its centre lies in the "
    "patch, even if part of it sticks out (that part is clipped)."
)
HINT_EDGE = (
    "a box whose centre lies exactly on the patch's edge counts as inside: compare with >= and "
    "<=, not > and <."
)
HINT_CLIP = "some boxes leave [0, 1]: clip the kept boxes to the patch (clamp to [0, 1])."
HINT_SCALE = (
    "you shifted the boxes but did not rescale them: divide x by the patch width "
    "(x2 - x1 of the patch) and y by its height."
)
HINT_AXES = "x coordinates scale with the patch width, y coordinates with its height."


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    # box 1's centre (x 0.55) is inside the right half; box 3 overlaps it but its centre is not
    boxes = torch.tensor(
        [[0.6, 0.0, 0.8, 0.5], [0.4, 0.2, 0.7, 0.4], [0.0, 0.0, 0.2, 0.2], [0.3, 0.6, 0.55, 0.9]]
    )
    cases = [
        ("right half of the image", boxes, torch.tensor([0.5, 0.0, 1.0, 1.0])),
        ("the whole image", boxes, torch.tensor([0.0, 0.0, 1.0, 1.0])),
        (
            "a wide, low patch",
            torch.tensor([[0.1, 0.5, 0.3, 0.9], [0.2, 0.55, 0.9, 0.75], [0.45, 0.1, 0.55, 0.3]]),
            torch.tensor([0.0, 0.5, 1.0, 0.8]),
        ),
        ("no objects", torch.zeros(0, 4), torch.tensor([0.2, 0.2, 0.6, 0.7])),
        (
            "a centre exactly on the patch's left edge (x = 0.5) and one just outside it",
            torch.tensor([[0.375, 0.25, 0.625, 0.5], [0.25, 0.5, 0.74, 0.75]]),
            torch.tensor([0.5, 0.0, 1.0, 1.0]),
        ),
    ]
    g = torch.Generator().manual_seed(2016)
    for n in range(5):
        xy = torch.rand(8, 2, generator=g) * 0.8  # [8, 2]
        wh = 0.02 + torch.rand(8, 2, generator=g) * 0.4  # [8, 2]
        random_boxes = torch.cat((xy, (xy + wh).clamp(max=1)), dim=1)  # [8, 4]
        patch = trial_patches(torch.rand(4, generator=g).double()).float()
        cases.append((f"random patch {n}", random_boxes, patch))
    return cases


def _variants(boxes: torch.Tensor, patch: torch.Tensor) -> dict[str, torch.Tensor]:
    """The usual wrong answers for the kept boxes (computed on all boxes)."""
    w, h = patch[2] - patch[0], patch[3] - patch[1]
    shift = torch.stack((patch[0], patch[1], patch[0], patch[1]))
    scaled = (boxes - shift) / torch.stack((w, h, w, h))
    return {
        HINT_CLIP: scaled,
        HINT_SCALE: (boxes - shift).clamp(0, 1),
        HINT_AXES: ((boxes - shift) / torch.stack((h, w, h, w))).clamp(0, 1),
    }


def check_crop_boxes(student_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Compare ``student_fn(boxes, patch)`` with the library's crop of boxes.

    Raises:
        ExerciseFailure: naming the case, what was expected, what came back, and a hint.
    """
    refuse_library(student_fn, "crop_boxes", window_boxes, crop)
    cases = _cases()
    for case, boxes, patch in cases:
        got = call_student(student_fn, case, boxes.clone(), patch.clone())
        if not (isinstance(got, tuple) and len(got) == 2):
            raise ExerciseFailure(
                f"case '{case}': expected a tuple (new_boxes, keep), got {type(got).__name__}"
            )
        got_boxes, got_keep = got
        want_boxes, want_keep = window_boxes(boxes, patch.numpy())
        if not isinstance(got_keep, torch.Tensor) or got_keep.dtype != torch.bool:
            raise ExerciseFailure(
                f"case '{case}': keep must be a bool torch.Tensor with one flag per box"
            )
        if tuple(got_keep.shape) != (len(boxes),):
            raise ExerciseFailure(
                f"case '{case}': keep must have shape [{len(boxes)}], got {list(got_keep.shape)}"
            )
        if not torch.equal(got_keep, want_keep):
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            overlap = (
                torch.minimum(boxes[:, 2:], patch[2:]) > torch.maximum(boxes[:, :2], patch[:2])
            ).all(1)
            inside = ((boxes[:, :2] >= patch[:2]) & (boxes[:, 2:] <= patch[2:])).all(1)
            strict = ((centre > patch[:2]) & (centre < patch[2:])).all(1)
            hint = ""
            if torch.equal(got_keep, strict):
                hint = HINT_EDGE
            elif torch.equal(got_keep, overlap):
                hint = HINT_CENTRE_OVERLAP
            elif torch.equal(got_keep, inside):
                hint = HINT_CENTRE_INSIDE
            msg = (
                f"case '{case}': patch {[round(v, 3) for v in patch.tolist()]}, box centres "
                f"{[[round(v, 3) for v in c] for c in centre.tolist()]}: expected keep "
                f"{want_keep.tolist()}, got {got_keep.tolist()}"
            )
            raise ExerciseFailure(msg + (f"\nhint: {hint}" if hint else ""))
        hint = ""
        for h, wrong in _variants(boxes, patch).items():
            wrong = wrong[want_keep]
            if (
                isinstance(got_boxes, torch.Tensor)
                and got_boxes.shape == wrong.shape
                and torch.allclose(got_boxes.float(), wrong, atol=1e-5)
                and not torch.allclose(wrong, want_boxes, atol=1e-5)
            ):
                hint = h
                break
        expect_close(case, got_boxes, want_boxes, hint=hint)
    passed("check_crop_boxes", len(cases))
