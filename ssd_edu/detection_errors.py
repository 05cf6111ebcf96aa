"""Where a detector's mistakes come from: class confusion and the sources of false positives.

The VOC rule (:mod:`ssd_edu.evaluate`) says only *whether* a detection is right. To say *why* one
is wrong, each confident detection is put in exactly one of five groups, checked in this order
(the analysis of Hoiem et al., "Diagnosing error in object detectors", ECCV 2012, which the SSD
paper uses in its figures 5 and 6):

1. **correct**: overlap ``> iou_threshold`` (0.5) with an object of its class not yet claimed by a
   higher-scoring detection (the VOC rule; difficult objects make a detection *ignored*);
2. **duplicate**: the same, but the object is already claimed;
3. **wrong class**: overlap ``>= iou_threshold`` with an object of another class;
4. **poor localisation**: overlap in ``[0.1, iou_threshold]`` with an object of its class;
5. **background**: everything else (overlap below 0.1 with every object of its class).

The **confusion matrix** counts, among the detections whose best-overlap object (of any class)
overlaps them by ``>= iou_threshold``, the pairs (the object's class, the detected class): its
diagonal holds correct detections and duplicates, its off-diagonal the class confusions.

Formats (docs/design.md): detections per image ``(boxes [K, 4] xyxy, scores [K], labels [K] in
1..C)``; ground truth per image ``(boxes [G, 4], labels [G])`` or with ``difficult [G]``.

Paper: §3.2 and figures 5-6 (the error analysis of Hoiem et al.); the matching rule is VOC's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ssd_edu.boxes import box_iou
from ssd_edu.eval_result import check_inputs
from ssd_edu.evaluate import detection_verdicts

SOURCES = ("correct", "duplicate", "wrong class", "poor localisation", "background")
LOCALISATION_IOU = 0.1  # below this overlap with its own class a detection is on background


@dataclass
class DetectionErrors:
    """The confident detections of a data set, sorted into :data:`SOURCES`.

    Attributes:
        class_names: the C object class names.
        counts: detections per source (``"ignored"`` too: on a difficult object).
        confusion: ``[C, C]`` long; row = class of the object, column = detected class.
        predicted: ``[C]`` confident detections per class.
        objects: ``[C]`` non-difficult objects per class.
        score_threshold: detections scoring below this were not considered.
    """

    class_names: list[str]
    counts: dict[str, int]
    confusion: Tensor
    predicted: Tensor
    objects: Tensor
    score_threshold: float

    @property
    def false_positives(self) -> dict[str, int]:
        """The four kinds of false positive, largest first."""
        kinds = {k: self.counts[k] for k in SOURCES[1:]}
        return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))

    def worst_confusions(self, n: int = 3) -> list[tuple[str, str, int]]:
        """Up to ``n`` ``(object class, detected as, count)`` off-diagonal pairs, largest first."""
        off = self.confusion.clone()
        off.fill_diagonal_(0)
        flat = off.flatten()
        order = flat.argsort(descending=True, stable=True)[:n]
        c = len(self.class_names)
        return [
            (self.class_names[int(i) // c], self.class_names[int(i) % c], int(flat[i]))
            for i in order
            if flat[i] > 0
        ]


def detection_errors(
    detections: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, ...]],
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
) -> DetectionErrors:
    """Sort every detection scoring ``>= score_threshold`` into the module docstring's groups.

    Args:
        detections: per image ``(boxes [K, 4] xyxy, scores [K], labels [K] in 1..C)``.
        ground_truths: per image ``(boxes [G, 4], labels [G])`` or ``(boxes, labels,
            difficult [G])``, in the same order.
        class_names: the C object class names.
        score_threshold: the confidence from which a detection counts (0.3: boxes a user sees).
        iou_threshold: the overlap of a match (0.5, VOC's).

    Returns:
        A :class:`DetectionErrors`.

    Paper: §3.2, figures 5-6 (Hoiem et al.'s analysis); VOC's matching rule.
    """
    dets, gts = check_inputs(detections, ground_truths, class_names, iou_threshold)
    if not 0 <= score_threshold <= 1:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    c = len(class_names)
    counts = dict.fromkeys((*SOURCES, "ignored"), 0)
    confusion = torch.zeros(c, c, dtype=torch.long)
    predicted = torch.zeros(c, dtype=torch.long)
    objects = torch.zeros(c, dtype=torch.long)
    for (boxes, scores, labels), (g_boxes, g_labels, g_diff) in zip(dets, gts):
        objects += torch.bincount(g_labels[~g_diff].long() - 1, minlength=c)[:c]
        keep = scores >= score_threshold
        confident = (boxes[keep], scores[keep], labels[keep])
        # correct (1), duplicate or other mistake (0), ignored (-1): the VOC rule's own verdicts;
        # an object is only claimed from its own image, so the image alone decides them
        verdicts = detection_verdicts(confident, (g_boxes, g_labels, g_diff), iou_threshold)
        overlaps = box_iou(confident[0].double(), g_boxes.double()).tolist()  # [K][G]
        g_list = g_labels.tolist()
        for row, label, verdict in zip(overlaps, confident[2].tolist(), verdicts.tolist()):
            source, best_any = _source(row, label, g_list, verdict, iou_threshold)
            counts[source] += 1
            predicted[label - 1] += 1
            if best_any is not None:
                confusion[g_labels[best_any] - 1, label - 1] += 1
    return DetectionErrors(
        list(class_names), counts, confusion, predicted, objects, float(score_threshold)
    )


def _source(row: list[float], label: int, g_labels: list, verdict: int, iou: float):
    """The group of one detection (overlaps ``row`` with the image's objects, VOC ``verdict``),
    and the index of its best-overlap object of any class when that overlap is ``>= iou``."""
    best_same = max((o for g, o in enumerate(row) if g_labels[g] == label), default=-1.0)
    best_any = max(range(len(row)), key=lambda g: (row[g], -g), default=None)
    if best_any is not None and row[best_any] < iou:
        best_any = None
    if verdict != 0:
        return ("correct" if verdict == 1 else "ignored"), best_any
    if best_same > iou:  # its object was claimed by a higher-scoring detection
        return "duplicate", best_any
    if best_any is not None and g_labels[best_any] != label:
        return "wrong class", best_any
    if best_same >= LOCALISATION_IOU:
        return "poor localisation", best_any
    return "background", best_any
