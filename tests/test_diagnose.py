"""Tests for the diagnosis (ssd_edu.diagnose, diagnose_data, detection_errors): hand-made datasets
and fake models whose mistakes are known in advance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssd_edu.boxes import cxcywh_to_xyxy
from ssd_edu.detection_errors import detection_errors
from ssd_edu.diagnose import ap_by_size, diagnose
from ssd_edu.diagnose_data import matching_positives, targets_of
from ssd_edu.matching import assign_targets
from ssd_edu.priors import SSD128_SHAPES, default_boxes

NAMES = ["cat", "dog"]


def squares(n: int, low: float, high: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    side = low + (high - low) * torch.rand(n, 1, generator=g)
    xy = torch.rand(n, 2, generator=g) * (1 - side)
    return torch.cat([xy, xy + side], dim=1)


def dataset(counts: list[int], low: float = 0.15, high: float = 0.5) -> list[tuple]:
    """Per-image targets, two objects an image, ``counts[c]`` objects of class ``c + 1``."""
    labels = torch.cat([torch.full((n,), c + 1) for c, n in enumerate(counts)])
    boxes = squares(len(labels), low, high)
    return [(boxes[i : i + 2], labels[i : i + 2]) for i in range(0, len(labels), 2)]


# ---------------------------------------------------------------- the data


def test_objects_smaller_than_every_default_box_are_reported():
    tiny = dataset([40, 40], low=0.01, high=0.03)  # 1 to 4 px at 128; s_1 = 0.1 (13 px)
    d = diagnose(tiny, NAMES, SSD128_SHAPES)
    assert d.coverage.share == 0.0
    assert "default boxes vs object sizes" in d.problems
    finding = next(f for f in d.findings if f.topic == "default boxes vs object sizes")
    assert "80 objects (100.0%) are smaller than the smallest default box" in finding.text
    assert "smaller than the smallest default box" in finding.suggestion
    assert "--fit-default-boxes" in finding.suggestion
    assert "[check] default boxes vs object sizes" in d.report()


def test_objects_the_default_boxes_fit_are_not_reported():
    d = diagnose(dataset([40, 40], low=0.2, high=0.6), NAMES, SSD128_SHAPES)
    assert d.coverage.share >= 0.9
    assert "default boxes vs object sizes" not in d.problems


def test_a_balanced_dataset_is_not_reported_as_imbalanced():
    d = diagnose(dataset([50, 50]), NAMES, SSD128_SHAPES)
    assert d.class_counts == {"cat": 50, "dog": 50} and d.imbalance == 1.0
    assert "class balance" not in d.problems
    assert "[ok] class balance: cat 50, dog 50 (max/min = 1)" in d.report()


def test_an_imbalanced_dataset_is_reported_with_its_rare_class():
    d = diagnose(dataset([100, 10]), NAMES, SSD128_SHAPES)
    assert d.imbalance == 10.0 and "class balance" in d.problems
    finding = next(f for f in d.findings if f.topic == "class balance")
    assert "'cat' has 10.0x the objects of 'dog'" in finding.suggestion


def test_a_class_without_objects_is_reported():
    d = diagnose(dataset([20, 0]), NAMES, SSD128_SHAPES)
    assert d.imbalance == float("inf")
    assert "class 'dog' has no objects" in d.findings[0].suggestion


def test_positives_per_image_are_those_of_the_matching():
    targets = targets_of(dataset([6, 6], low=0.05, high=0.7))
    priors = default_boxes(SSD128_SHAPES)
    _, per_image = matching_positives(targets, priors)
    expected = [int((assign_targets(b, lab, priors)[1] > 0).sum()) for b, lab, _ in targets]
    assert per_image.tolist() == expected


def test_targets_of_reads_datasets_without_their_transform():
    from ssd_edu.data import ShapesDataset

    shapes = ShapesDataset(3, seed=2)
    targets = targets_of(shapes)
    for i, (boxes, labels, difficult) in enumerate(targets):
        _, want_boxes, want_labels = shapes.render(i)
        torch.testing.assert_close(boxes, want_boxes)
        assert labels.tolist() == want_labels.tolist() and not difficult.any()


def test_targets_of_samples_evenly_when_asked_for_fewer_images():
    items = [(torch.tensor([[0.1, 0.1, 0.2, 0.2]]), torch.tensor([i + 1])) for i in range(10)]
    picked = targets_of(items, max_images=5)
    assert [int(lab) for _, lab, _ in picked] == [1, 3, 5, 7, 9]
    assert len(targets_of(items, max_images=50)) == 10 and targets_of([], max_images=3) == []


# ---------------------------------------------------------------- detection errors


def test_each_source_of_false_positive_on_a_hand_made_image():
    a, b = [0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]
    gts = [(torch.tensor([a, b]), torch.tensor([1, 2]))]  # a cat at a, a dog at b
    boxes = torch.tensor([a, a, b, [0.2, 0.1, 0.4, 0.3], [0.0, 0.6, 0.2, 0.8], a])
    # cat on a (correct), cat on a again (duplicate), cat on the dog (wrong class), cat shifted
    # by half its width (IoU 1/3: poor localisation), cat on nothing (background), a weak cat
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.2])
    dets = [(boxes, scores, torch.ones(6, dtype=torch.long))]
    errors = detection_errors(dets, gts, NAMES, score_threshold=0.3)
    assert {k: v for k, v in errors.counts.items() if v} == {
        "correct": 1, "duplicate": 1, "wrong class": 1, "poor localisation": 1, "background": 1,
    }  # fmt: skip
    assert errors.confusion.tolist() == [[2, 0], [1, 0]]  # rows: object's class
    assert errors.worst_confusions() == [("dog", "cat", 1)]
    assert errors.predicted.tolist() == [5, 0] and errors.objects.tolist() == [1, 1]


def test_a_detection_on_a_difficult_object_is_ignored():
    box = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    gts = [(box, torch.tensor([1]), torch.tensor([True]))]
    dets = [(box, torch.tensor([0.9]), torch.tensor([1]))]
    errors = detection_errors(dets, gts, NAMES)
    assert errors.counts["ignored"] == 1 and errors.counts["correct"] == 0


def test_ap_by_size_splits_the_objects():
    small, large = [0.1, 0.1, 0.15, 0.15], [0.3, 0.3, 0.9, 0.9]
    gts = [(torch.tensor([small, large]), torch.tensor([1, 1]), torch.tensor([False, False]))]
    dets = [(torch.tensor([small]), torch.tensor([0.9]), torch.tensor([1]))]  # finds the small
    sizes = ap_by_size(dets, gts, NAMES)
    assert sizes["small"] == (1.0, 1) and sizes["large"] == (0.0, 1) and "medium" not in sizes


# ---------------------------------------------------------------- a fake model


class FixedModel(nn.Module):
    """Predicts every ground-truth box of :func:`val_items` exactly (zero offsets on the default
    boxes that equal them), always with class ``label``, and background everywhere else."""

    def __init__(self, chosen: torch.Tensor, label: int, num_classes: int = 3) -> None:
        super().__init__()
        self.cfg = SSD128_SHAPES
        self.register_buffer("priors", default_boxes(SSD128_SHAPES))
        self.scale = nn.Parameter(torch.ones(()))  # gives the model a device
        logits = torch.zeros(len(self.priors), num_classes)
        logits[:, 0] = 10.0  # background
        logits[chosen, 0], logits[chosen, label] = 0.0, 10.0
        self.register_buffer("logits", logits)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = images.shape[0]
        loc = torch.zeros(b, len(self.priors), 4)  # [B, P, 4]: the default boxes themselves
        return loc, self.logits.expand(b, -1, -1) * self.scale  # [B, P, C + 1]


def val_items(chosen: torch.Tensor, n: int = 4) -> list[tuple]:
    """``n`` identical images whose objects (all cats) are the default boxes ``chosen``."""
    boxes = cxcywh_to_xyxy(default_boxes(SSD128_SHAPES)[chosen])
    image = torch.zeros(3, 128, 128)
    labels = torch.ones(len(chosen), dtype=torch.long)
    return [(image, boxes, labels, torch.zeros(len(chosen), dtype=torch.bool))] * n


CHOSEN = torch.tensor([1200, 1400, 1500])  # three far-apart default boxes inside the image


def test_a_model_that_gives_every_object_the_wrong_class_shows_the_confusion():
    val = val_items(CHOSEN)
    d = diagnose(val_items(CHOSEN), NAMES, model=FixedModel(CHOSEN, label=2), val_set=val)
    errors = d.model["errors"]
    assert errors.confusion.tolist() == [[0, 12], [0, 0]]  # 12 cats, each detected as a dog
    assert errors.counts["wrong class"] == 12 and errors.counts["correct"] == 0
    assert d.model["evaluation"].mean_ap == 0.0
    assert {"held-out mAP", "class confusion", "false positives"} <= set(d.problems)
    # AP 0 at every size says nothing about size: no size suggestion
    assert "AP by object size" not in d.problems
    confusion = next(f for f in d.findings if f.topic == "class confusion")
    assert "'cat' is taken for 'dog'" in confusion.suggestion
    assert "'cat' as 'dog' 12x" in d.report()


def test_a_model_that_is_right_shows_no_confusion():
    val = val_items(CHOSEN)
    d = diagnose(val, NAMES, model=FixedModel(CHOSEN, label=1), val_set=val)
    assert d.model["evaluation"].mean_ap == pytest.approx(1.0)
    assert d.model["errors"].counts["correct"] == 12
    assert not {"held-out mAP", "class confusion", "false positives", "confident detections"} & set(
        d.problems
    )


def test_a_model_that_detects_nothing_is_reported_as_unsure():
    val = val_items(CHOSEN)
    d = diagnose(val, NAMES, model=FixedModel(CHOSEN[:0], label=1), val_set=val)
    assert d.model["errors"].predicted.sum() == 0 and "confident detections" in d.problems
    unsure = next(f for f in d.findings if f.topic == "confident detections")
    assert "train longer" in unsure.suggestion


def test_ap_by_size_suggests_the_size_found_worst_but_not_when_all_are_near_zero():
    from ssd_edu.diagnose import _size_finding

    worst_small = _size_finding({"small": (0.1, 20), "large": (0.8, 20)}, SSD128_SHAPES)
    assert worst_small.suggestion.startswith("small objects are found worst")
    all_near_zero, all_alike = {"small": (0.0, 20), "large": (0.01, 20)}, {"small": (0.7, 20)}
    for sizes in (all_near_zero, {**all_alike, "large": (0.8, 20)}):
        assert not _size_finding(sizes, SSD128_SHAPES).problem


# ---------------------------------------------------------------- bad input


def test_bad_input_is_rejected_by_name():
    with pytest.raises(ValueError, match="prior_config"):
        diagnose(dataset([2, 2]), NAMES)
    with pytest.raises(ValueError, match="val_set"):
        diagnose(dataset([2, 2]), NAMES, SSD128_SHAPES, model=FixedModel(CHOSEN, 1))
    with pytest.raises(ValueError, match=r"labels must lie in 1..2"):
        diagnose([(squares(1, 0.2, 0.3), torch.tensor([3]))], NAMES, SSD128_SHAPES)
    with pytest.raises(ValueError, match=r"targets\[0\]: 2 boxes but 1 labels"):
        diagnose([(squares(2, 0.2, 0.3), torch.tensor([1]))], NAMES, SSD128_SHAPES)
    with pytest.raises(TypeError, match="PriorConfig"):
        diagnose(dataset([2, 2]), NAMES, default_boxes(SSD128_SHAPES))
    with pytest.raises(ValueError, match="score_threshold"):
        detection_errors([], [], NAMES, score_threshold=2.0)
