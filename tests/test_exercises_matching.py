"""The match exercise checker: passes the solution, fails the stub and each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.boxes import box_iou, cxcywh_to_xyxy
from ssd_edu.exercises import ExerciseFailure, check_match


def _threshold_step(iou, iou_threshold, strict=False):
    matches = torch.full((iou.shape[1],), -1, dtype=torch.long)
    best_iou, best_gt = iou.max(dim=0)  # [P]
    keep = best_iou > iou_threshold if strict else best_iou >= iou_threshold
    matches[keep] = best_gt[keep]
    return matches


def _greedy_forced(iou, matches):
    iou = iou.clone()
    num_priors = iou.shape[1]
    for _ in range(iou.shape[0]):
        g, p = divmod(int(iou.argmax()), num_priors)  # first maximum: lower object, lower box
        if iou[g, p] <= 0:
            break
        matches[p] = g
        iou[g, :] = -1
        iou[:, p] = -1
    return matches


def solution(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))  # [G, P]
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    return _greedy_forced(iou, _threshold_step(iou, iou_threshold))


def stub(gt_boxes, priors, iou_threshold=0.5):
    raise NotImplementedError()


def no_forced_match(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    return _threshold_step(iou, iou_threshold)


def strict_threshold(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    return _greedy_forced(iou, _threshold_step(iou, iou_threshold, strict=True))


def argmax_without_threshold(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    return _greedy_forced(iou, iou.argmax(dim=0))  # every default box gets an object


def objects_indexed_by_prior(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    matches = _threshold_step(iou, iou_threshold)
    best_prior = iou.argmax(dim=1)  # [G]
    matches[torch.arange(len(gt_boxes))] = best_prior  # should be matches[best_prior] = arange(G)
    return matches


def later_object_overwrites(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    if len(gt_boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long)
    matches = _threshold_step(iou, iou_threshold)
    best_prior = iou.argmax(dim=1)  # [G]
    for g in range(len(gt_boxes)):
        matches[best_prior[g]] = g  # two objects with one best box: the later one takes it
    return matches


def crashes_without_objects(gt_boxes, priors, iou_threshold=0.5):
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(priors))
    return _greedy_forced(iou, _threshold_step(iou, iou_threshold))


def float_result(gt_boxes, priors, iou_threshold=0.5):
    return solution(gt_boxes, priors, iou_threshold).float()


def test_solution_passes(capsys):
    check_match(solution)
    assert "match: all 9 cases passed" in capsys.readouterr().out


def test_library_passes(copy_of):
    from ssd_edu.matching import match

    with pytest.raises(ExerciseFailure, match="library's own match"):
        check_match(match)
    check_match(copy_of(match))


@pytest.mark.parametrize(
    "fn, message",
    [
        (stub, "not implemented yet"),
        (
            no_forced_match,
            r"small object(.|\n)*expected 0, got -1(.|\n)*hint: every object must keep",
        ),
        (strict_threshold, r"exactly 0.5(.|\n)*expected 0, got -1(.|\n)*hint: an overlap exactly"),
        (
            argmax_without_threshold,
            r"one object equal(.|\n)*hint: a default box whose best overlap",
        ),
        (objects_indexed_by_prior, r"one object(.|\n)*hint: matches has one entry per default box"),
        (later_object_overwrites, r"share their best(.|\n)*hint: two objects want the same"),
        (crashes_without_objects, r"no objects in the image \(G = 0\)': your function raised"),
        (float_result, r"expected an integer tensor \(torch.long\)"),
    ],
)
def test_mistakes_fail_with_a_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_match(fn)
