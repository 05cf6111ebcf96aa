"""The crop exercise's checker: passes the right answer, names each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_crop_boxes


def solution(boxes, patch):
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    keep = ((centre >= patch[:2]) & (centre <= patch[2:])).all(dim=1)  # [N]
    size = (patch[2:] - patch[:2]).repeat(2)  # [4]
    return ((boxes[keep] - patch[:2].repeat(2)) / size).clamp(0, 1), keep


def mistake(rule="centre", clip=True, scale=True, swap_axes=False):
    def crop(boxes, patch):
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        if rule == "centre":
            keep = ((centre >= patch[:2]) & (centre <= patch[2:])).all(dim=1)
        elif rule == "overlap":
            keep = (
                torch.minimum(boxes[:, 2:], patch[2:]) > torch.maximum(boxes[:, :2], patch[:2])
            ).all(1)
        else:
            keep = ((boxes[:, :2] >= patch[:2]) & (boxes[:, 2:] <= patch[2:])).all(1)
        size = (patch[2:] - patch[:2]).repeat(2)
        if swap_axes:
            size = size.flip(0)
        out = boxes[keep] - patch[:2].repeat(2)
        if scale:
            out = out / size
        return (out.clamp(0, 1) if clip else out), keep

    return crop


def test_passes_the_solution(capsys):
    check_crop_boxes(solution)
    assert "check_crop_boxes: all 10 cases passed" in capsys.readouterr().out


def test_stub():
    def stub(boxes, patch):
        raise NotImplementedError()

    with pytest.raises(ExerciseFailure, match="not implemented yet"):
        check_crop_boxes(stub)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (
            mistake(rule="overlap"),
            r"right half of the image'.*expected keep \[True, True, False, False\], got "
            r"\[True, True, False, True\]\nhint: you kept every box that overlaps",
        ),
        (mistake(rule="inside"), r"\nhint: you kept only boxes entirely inside the patch"),
        (
            mistake(clip=False),
            r"right half of the image': values differ.*\nhint: some boxes leave \[0, 1\]",
        ),
        (
            mistake(scale=False),
            r"right half of the image': values differ.*\nhint: you shifted the boxes but did "
            r"not rescale",
        ),
        (
            mistake(swap_axes=True),
            r"right half of the image': values differ.*\nhint: x coordinates scale with the patch "
            r"width",
        ),
    ],
)
def test_names_each_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_crop_boxes(wrong)


def test_wrong_return_type():
    with pytest.raises(ExerciseFailure, match=r"expected a tuple \(new_boxes, keep\), got Tensor"):
        check_crop_boxes(lambda boxes, patch: boxes)
    with pytest.raises(ExerciseFailure, match="keep must be a bool torch.Tensor"):
        check_crop_boxes(lambda boxes, patch: (boxes, torch.ones(len(boxes))))


def test_the_library_passes_its_own_checker(capsys, copy_of):
    # the checker's reference is window_boxes, the box arithmetic of the library's crop
    from ssd_edu.data.geometry import window_boxes

    with pytest.raises(ExerciseFailure, match="library's own window_boxes"):
        check_crop_boxes(lambda boxes, patch: window_boxes(boxes, patch))
    rule = copy_of(window_boxes)
    check_crop_boxes(lambda boxes, patch: rule(boxes, patch))
    assert "check_crop_boxes: all 10 cases passed" in capsys.readouterr().out


def test_a_strict_centre_test_is_named():
    def strict(boxes, patch):
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        keep = ((centre > patch[:2]) & (centre < patch[2:])).all(1)
        w, h = patch[2] - patch[0], patch[3] - patch[1]
        moved = (boxes - patch[[0, 1, 0, 1]]) / torch.stack((w, h, w, h))
        return moved.clamp(0, 1)[keep], keep

    with pytest.raises(ExerciseFailure, match=r"exactly on the patch's edge counts as inside"):
        check_crop_boxes(strict)
