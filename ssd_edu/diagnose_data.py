"""The data half of a diagnosis: class balance, object sizes against the default boxes, positives.

Three measurements of a training set that explain many low mAPs before any training is done:

- how many objects each class has, and the imbalance (largest count over smallest);
- how the objects' sizes compare with the default boxes' scales ``s_k`` (eq. 4), and which objects
  no default box overlaps by 0.5 (:func:`ssd_edu.coverage.coverage`): such an object only ever
  gets the forced match of §2.2;
- how many default boxes the matching of §2.2 (IoU 0.5) makes positive per image and per object:
  the training signal each object gives.

Each is a :class:`Finding`: a short text and, when something is wrong, a one-line suggestion.
:func:`ssd_edu.diagnose.diagnose` adds a trained model's findings.

Formats (docs/design.md): ground truth per image ``(boxes [G, 4] xyxy fractions, labels [G] in
1..C, difficult [G] bool)``; default boxes ``[P, 4]`` cxcywh.

Paper: §2.2 "Matching strategy" and "Choosing scales and aspect ratios", eq. 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ssd_edu.coverage import Coverage, coverage
from ssd_edu.matching import match
from ssd_edu.priors import PriorConfig, default_boxes

IMBALANCE_RATIO = 5.0  # largest class count over smallest, above which a class is reported rare
# share of objects with a default box at IoU >= 0.5 below which it is reported. Low on purpose:
# the network regresses its boxes, and partial coverage can train well (shapes of 8-20 px: 56%
# covered, held-out mAP 0.90 after 600 iterations)
COVERAGE_OK = 0.5
FEW_POSITIVES = 1.2  # mean positive default boxes per object below which matching is reported


@dataclass
class Finding:
    """One measured fact; ``suggestion`` is empty when nothing needs fixing."""

    topic: str
    text: str
    suggestion: str = ""

    @property
    def problem(self) -> bool:
        return bool(self.suggestion)


def targets_of(data: Dataset | Sequence, max_images: int | None = None) -> list[tuple]:
    """Per image ``(boxes [G, 4] xyxy, labels [G], difficult [G])`` of a dataset, or as given.

    A dataset with ``annotation(i)`` (VOC, COCO) or ``render(i)`` (shapes) is read without
    decoding or augmenting its images; any other dataset is indexed (its transform runs).

    Args:
        data: a detection dataset (or a list of its items), or a list of per-image
            ``(boxes, labels[, difficult])``.
        max_images: read at most this many, evenly spaced over the dataset (VOC07+12 lists
            2007 first); None for all.
    """
    n = len(data) if max_images is None else min(len(data), max_images)
    out = []
    for i in sorted({(j * len(data)) // n for j in range(n)}):  # evenly spaced, i < len(data)
        if hasattr(data, "annotation"):
            ann = data.annotation(i)
            item = (ann["boxes"], ann["labels"], ann["difficult"])
        elif hasattr(data, "render"):
            item = data.render(i)[1:]
        else:
            item = tuple(data[i])
            if len(item) >= 4:  # a dataset item (image, boxes, labels, difficult[, params])
                item = item[1:4]
        if len(item) not in (2, 3):
            raise ValueError(f"targets[{i}] must be (boxes, labels[, difficult]), got {len(item)}")
        boxes, labels = item[0], torch.as_tensor(item[1]).long()
        difficult = item[2] if len(item) == 3 else torch.zeros(len(labels), dtype=torch.bool)
        if boxes.shape[0] != len(labels) or len(difficult) != len(labels):
            raise ValueError(
                f"targets[{i}]: {boxes.shape[0]} boxes but {len(labels)} labels and "
                f"{len(difficult)} difficult flags; give one of each per object"
            )
        out.append((boxes.float(), labels, torch.as_tensor(difficult).bool()))
    return out


def class_balance(targets: list[tuple], class_names: Sequence[str]) -> tuple[Finding, dict, float]:
    """Objects per class and the imbalance, largest count over smallest."""
    labels = torch.cat([lab[~d] for _, lab, d in targets]) if targets else torch.zeros(0)
    c = len(class_names)
    if len(labels) and not (1 <= int(labels.min()) and int(labels.max()) <= c):
        raise ValueError(f"labels must lie in 1..{c} (len(class_names)), got {labels.unique()}")
    counts = torch.bincount(labels.long() - 1, minlength=c).tolist() if len(labels) else [0] * c
    by_name = dict(zip(class_names, counts))
    ratio = max(counts) / min(counts) if min(counts) > 0 else math.inf
    text = ", ".join(f"{name} {n}" for name, n in by_name.items()) + f" (max/min = {ratio:.3g})"
    rare = min(by_name, key=by_name.get)
    common = max(by_name, key=by_name.get)
    if by_name[rare] == 0:
        hint = f"class {rare!r} has no objects: check the annotations' class names"
    elif ratio > IMBALANCE_RATIO:
        hint = (
            f"{common!r} has {ratio:.1f}x the objects of {rare!r}: add images of the rare "
            f"classes, or repeat them in the training list"
        )
    else:
        hint = ""
    return Finding("class balance", text, hint), by_name, ratio


def box_sizes(cov: Coverage, cfg: PriorConfig) -> Finding:
    """The objects' sizes against the default boxes' scales, and the coverage at IoU 0.5."""
    s_1 = min(cfg.min_sizes) / cfg.image_size  # the smallest default box's scale
    largest = max(math.sqrt(lo * hi) for lo, hi in zip(cfg.min_sizes, cfg.max_sizes))
    largest /= cfg.image_size  # the largest box: the extra square sqrt(s_k s_{k+1}) of a map
    # IoU <= area ratio, so an object under 1/sqrt(2) of a box's scale never reaches 0.5 with it
    too_small = int((cov.scale < s_1 / math.sqrt(2)).sum())
    too_large = int((cov.scale > largest * math.sqrt(2)).sum())
    n = max(cov.n_objects, 1)
    lines = [
        f"{100 * cov.share:.1f}% of {cov.n_objects} objects have a default box with IoU >= 0.5",
        f"default boxes span scales {s_1:.3f} to {largest:.3f} "
        f"({s_1 * cfg.image_size:.0f} to {largest * cfg.image_size:.0f} px at {cfg.image_size})",
        f"{too_small} objects ({100 * too_small / n:.1f}%) are smaller than the smallest default "
        f"box can match,",
        f"{too_large} ({100 * too_large / n:.1f}%) larger than the largest can",
    ]
    lines += [f"size {name}: {c} of {k} covered" for name, k, c in cov.by_size() if k and c < k / 2]
    if cov.share >= COVERAGE_OK:
        return Finding("default boxes vs object sizes", "\n".join(lines))
    missed = ~cov.covered
    small = int((missed & (cov.scale < s_1)).sum())
    large = int((missed & (cov.scale > largest)).sum())
    if small >= int(missed.sum()) / 2:
        hint = (
            "objects smaller than the smallest default box: try --fit-default-boxes (a smaller "
            "s_min), or a larger input (a finer first feature map)"
        )
    elif large >= int(missed.sum()) / 2:
        hint = "objects larger than the largest default box: try --fit-default-boxes"
    else:
        hint = "objects fall between the default boxes' sizes or shapes: try --fit-default-boxes"
    return Finding("default boxes vs object sizes", "\n".join(lines), hint)


def matching_positives(targets: list[tuple], priors: Tensor) -> tuple[Finding, Tensor]:
    """Positive default boxes per image and per object after the matching of §2.2 (IoU 0.5)."""
    per_image, per_object = [], []
    for boxes, _, _ in targets:
        matches = match(boxes, priors, 0.5)  # [P], object index or -1
        per_image.append(int((matches >= 0).sum()))
        per_object += torch.bincount(matches[matches >= 0], minlength=len(boxes)).tolist()
    per_image_t = torch.tensor(per_image, dtype=torch.long)
    per_object_t = torch.tensor(per_object, dtype=torch.float)
    mean_obj = float(per_object_t.mean()) if per_object else 0.0
    empty = int((per_image_t == 0).sum())
    text = (
        f"{float(per_image_t.float().mean()) if per_image else 0.0:.1f} positives per image, "
        f"{mean_obj:.1f} per object (IoU >= 0.5 or the forced match)\n"
        f"{empty} of {len(per_image)} images and {int((per_object_t == 0).sum())} objects have none"
    )
    hint = ""
    if per_object and mean_obj < FEW_POSITIVES:
        hint = (
            "few default boxes match each object, so few are trained on it: try --fit-default-boxes"
        )
    return Finding("positives after matching", text, hint), per_image_t


def data_findings(
    targets: list[tuple], class_names: Sequence[str], cfg: PriorConfig
) -> tuple[list[Finding], dict, float, Coverage, Tensor]:
    """The three data findings; also the counts, imbalance, coverage and positives per image."""
    balance, counts, ratio = class_balance(targets, class_names)
    kept = [b[~d] for b, _, d in targets]
    cov = coverage(kept, cfg)
    positives, per_image = matching_positives(targets, default_boxes(cfg))
    return [balance, box_sizes(cov, cfg), positives], counts, ratio, cov, per_image
