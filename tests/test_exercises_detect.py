"""The detection-output exercise checker (notebook 10): the rule passes, each mistake is named."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.boxes import decode
from ssd_edu.exercises import ExerciseFailure, check_detect
from ssd_edu.nms import batched_nms, detect


def student(softmax=True, background=False, per_class=True, top_k_per_class=False, cap=400):
    """A detect written as the notebook asks, with one mistake switched on."""

    def my_detect(loc, logits, priors):
        out = []
        for b in range(loc.shape[0]):
            boxes = decode(loc[b], priors)  # [P, 4]
            scores = torch.softmax(logits[b], dim=-1) if softmax else logits[b]  # [P, C]
            found = []
            for c in range(0 if background else 1, scores.shape[1]):
                order = torch.sort(scores[:, c], descending=True, stable=True).indices[:cap]
                order = order[scores[order, c] > 0.01]
                found.append((boxes[order], scores[order, c], torch.full_like(order, c)))
            cand_b, cand_s, cand_l = (torch.cat(parts) for parts in zip(*found))
            groups = cand_l if per_class else torch.zeros_like(cand_l)
            keep = batched_nms(cand_b, cand_s, groups, 0.45)
            if top_k_per_class:
                keep = torch.cat([keep[cand_l[keep] == c][:200] for c in cand_l.unique()])
                keep = keep[torch.sort(cand_s[keep], descending=True, stable=True).indices]
            else:
                keep = keep[:200]
            out.append((cand_b[keep], cand_s[keep], cand_l[keep]))
        return out

    return my_detect


def test_the_rule_passes(capsys):
    check_detect(student())
    assert "detect: all 5 cases passed" in capsys.readouterr().out


def test_the_library_is_refused():
    with pytest.raises(ExerciseFailure, match="library's own detect"):
        check_detect(detect)
    with pytest.raises(ExerciseFailure, match="library's own detect"):
        check_detect(lambda loc, logits, priors: detect(loc, logits, priors))


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        (dict(softmax=False), "torch.softmax"),
        (dict(background=True), "class 0 is the background"),
        (dict(per_class=False), "run NMS per class"),
        (dict(top_k_per_class=True), "not 200 per class"),
        (dict(cap=10**6), "at most 400 candidates per class"),
    ],
)
def test_each_mistake_is_named(mistake, hint):
    with pytest.raises(ExerciseFailure, match=hint):
        check_detect(student(**mistake))


def test_the_stub_is_reported():
    def stub(loc, logits, priors):
        raise NotImplementedError()

    with pytest.raises(ExerciseFailure, match="not implemented yet"):
        check_detect(stub)
