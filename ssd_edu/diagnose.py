"""A diagnosis when mAP is low: what in the data, the default boxes or the model holds SSD back.

"mAP is 0 on my dataset" has a handful of usual causes, and each can be measured:

- **the data** (:mod:`ssd_edu.diagnose_data`): objects per class and the imbalance; the objects'
  sizes against the default boxes' scales and the objects no default box can match; positives
  per image and per object after matching;
- **a trained model** (:func:`model_findings`, on held-out images): its VOC mAP; a class it
  predicts far more often than it occurs; which classes it confuses and the largest source of its
  false positives (background, wrong class, duplicate, poor localisation;
  :mod:`ssd_edu.detection_errors`); AP by object size.

Every finding is a short text and, when something is wrong, a one-line suggestion.

Sizes for AP by size: an object's size is ``sqrt(w h)`` as a fraction of the image side (the
paper's scale ``s``): *small* below 0.1 (13 px of a 128 px input, 30 px of 300), *medium* 0.1 to
0.3, *large* from 0.3. AP of a size is VOC AP with the objects of other sizes marked difficult
(a detection on them is ignored, as COCO's area ranges do); a false positive counts in every size.

The model's detections come from :func:`ssd_edu.predict.predict` and are scored with the fast
evaluation, as every hot path in the package is.

Paper: §2.2 (matching, eq. 4), §3 (VOC mAP), §3.2 and figures 5-6 (error analysis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ssd_edu.boxes import box_area
from ssd_edu.coverage import Coverage
from ssd_edu.detection_errors import DetectionErrors, detection_errors
from ssd_edu.diagnose_data import Finding, data_findings, targets_of
from ssd_edu.fast.evaluate import evaluate_detections
from ssd_edu.model.ssd import unwrap
from ssd_edu.predict import predict_dataset
from ssd_edu.priors import PriorConfig

SIZE_RANGES = (("small", 0.0, 0.1), ("medium", 0.1, 0.3), ("large", 0.3, math.inf))
OVERPREDICTED = 5.0  # confident detections per object of a class above which it is reported
WRONG_CLASS_SHARE = 0.1  # share of detections on an object with the wrong class, reported above
LOW_MAP = 0.2  # held-out VOC07 mAP below which the run is reported as low


@dataclass
class Diagnosis:
    """The findings of :func:`diagnose` and the measurements behind them.

    Attributes:
        findings: data findings first, then (with a model) the model's.
        class_counts: objects per class name (difficult objects left out).
        imbalance: largest class count over smallest (inf when a class has none).
        coverage: the default boxes' coverage of the objects.
        positives_per_image: ``[I]`` positive default boxes of each image after matching.
        model: the model measurements (``evaluation``, ``errors``, ``ap_by_size``), or {}.
    """

    findings: list[Finding]
    class_counts: dict[str, int]
    imbalance: float
    coverage: Coverage
    positives_per_image: Tensor
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Topics of the findings that come with a suggestion."""
        return [f.topic for f in self.findings if f.problem]

    def report(self) -> str:
        """Every finding, ``[ok]`` or ``[check]``, each suggestion on its own ``->`` line."""
        lines = []
        for f in self.findings:
            head, *rest = f.text.splitlines()
            lines.append(f"[{'check' if f.problem else 'ok'}] {f.topic}: {head}")
            lines += [f"      {line}" for line in rest]
            if f.problem:
                lines.append(f"      -> {f.suggestion}")
        return "\n".join(lines)


def diagnose(
    data: Dataset | Sequence,
    class_names: Sequence[str],
    prior_config: PriorConfig | None = None,
    model: nn.Module | None = None,
    val_set: Dataset | None = None,
    score_threshold: float = 0.3,
    max_images: int | None = 2000,
) -> Diagnosis:
    """Why SSD may do badly on a dataset: the data's findings and, with a model, the model's.

    Args:
        data: the training dataset, or per-image ``(boxes, labels[, difficult])`` targets.
        class_names: the C object class names (label ``l`` is ``class_names[l - 1]``).
        prior_config: the default boxes; None takes the model's (``model.cfg``).
        model: a trained SSD (optional); diagnosed on ``val_set``.
        val_set: held-out items ``(image, boxes, labels, difficult)`` with the model's input
            transform (e.g. ``EvalTransform``); needed with a model.
        score_threshold: detections from this confidence count as the model's answers.
        max_images: training images read for the data findings (evenly spaced); None for all.

    Returns:
        A :class:`Diagnosis`: ``.report()`` for reading, ``.problems`` for code.

    Paper: §2.2 (matching, eq. 4), §3 (mAP), §3.2 and figures 5-6 (error analysis).
    """
    if prior_config is None:
        if model is None:
            raise ValueError("give prior_config (the default boxes), or a model to take it from")
        prior_config = unwrap(model).cfg
    if not isinstance(prior_config, PriorConfig):
        raise TypeError(f"prior_config must be a PriorConfig, got {type(prior_config).__name__}")
    if model is not None and val_set is None:
        raise ValueError("a model is diagnosed on held-out images: give val_set as well")
    targets = targets_of(data, max_images)
    findings, counts, ratio, cov, per_image = data_findings(targets, class_names, prior_config)
    measured: dict[str, Any] = {}
    if model is not None:
        more, measured = model_findings(model, val_set, class_names, score_threshold)
        findings += more
    return Diagnosis(findings, counts, ratio, cov, per_image, measured)


@torch.no_grad()
def ap_by_size(
    detections: list, ground_truths: list, class_names: Sequence[str]
) -> dict[str, tuple[float, int]]:
    """``{size: (mAP, objects)}`` for each of :data:`SIZE_RANGES` that holds an object.

    Objects outside the range are marked difficult, so detections on them are ignored.
    """
    out = {}
    for name, low, high in SIZE_RANGES:
        marked, n = [], 0
        for boxes, labels, difficult in ground_truths:
            size = box_area(boxes).sqrt()  # [G]
            inside = (size >= low) & (size < high)
            marked.append((boxes, labels, difficult | ~inside))
            n += int((inside & ~difficult).sum())
        if n:
            out[name] = (evaluate_detections(detections, marked, list(class_names)).mean_ap, n)
    return out


def _prediction_finding(errors: DetectionErrors) -> Finding:
    total = int(errors.predicted.sum())
    thr = errors.score_threshold
    ratio = errors.predicted.double() / errors.objects.clamp(min=1).double()  # [C]
    worst = int(ratio.argmax())
    name, k, n = errors.class_names[worst], int(errors.predicted[worst]), int(errors.objects[worst])
    text = f"{total} detections score >= {thr:g}; most often {name!r}: {k} for {n} objects"
    if total < 0.5 * int(errors.objects.sum()):  # fewer confident answers than half the objects
        hint = "the model is sure of little: train longer (the loss should keep falling)"
        return Finding("confident detections", text, hint + ", or check the learning rate")
    if ratio[worst] > OVERPREDICTED and k >= 20:
        hint = (
            f"the model falls back on {name!r}: check the class balance, train longer, or "
            f"lower the learning rate"
        )
        return Finding("confident detections", text, hint)
    return Finding("confident detections", text)


def _confusion_finding(errors: DetectionErrors) -> Finding:
    on_object = int(errors.confusion.sum())
    wrong = on_object - int(errors.confusion.diagonal().sum())
    pairs = errors.worst_confusions()
    text = f"{wrong} of {on_object} confident detections on an object (IoU >= 0.5): wrong class"
    if pairs:
        text += "\nmost: " + ", ".join(f"{a!r} as {b!r} {n}x" for a, b, n in pairs)
    if on_object and wrong / on_object >= WRONG_CLASS_SHARE:
        a, b, _ = pairs[0]
        hint = f"{a!r} is taken for {b!r}: add examples of both, check their labels, train longer"
        return Finding("class confusion", text, hint)
    return Finding("class confusion", text)


_FP_HINTS = {
    "background": "detections on background: train longer, or add images of the backgrounds",
    "wrong class": "right place, wrong class: see the class confusion above",
    "duplicate": "several boxes per object survive NMS: lower its overlap threshold (0.45)",
    "poor localisation": "boxes near objects but off: train longer, or try --fit-default-boxes",
}


def _false_positive_finding(errors: DetectionErrors) -> Finding:
    fps = errors.false_positives
    total, correct = sum(fps.values()), errors.counts["correct"]
    kinds = ", ".join(f"{k} {v}" for k, v in fps.items())
    text = f"{total} false positives and {correct} correct among confident detections\n{kinds}"
    largest = next(iter(fps))
    if total and total >= correct:
        return Finding("false positives", text, f"largest, {largest}: {_FP_HINTS[largest]}")
    return Finding("false positives", text)


def _size_finding(sizes: dict[str, tuple[float, int]], cfg: PriorConfig | None) -> Finding:
    bounds = {name: (low, high) for name, low, high in SIZE_RANGES}
    unit, scale = (" px", cfg.image_size) if cfg is not None else ("", 1)
    lines = [
        f"{name} ({bounds[name][0] * scale:.3g}-{bounds[name][1] * scale:.3g}{unit}): "
        f"AP {ap:.3f} over {n} objects"
        for name, (ap, n) in sizes.items()
    ]
    text = "\n".join(lines).replace("-inf", "+") or "no objects"
    valid = {k: v for k, v in sizes.items() if v[1] >= 10 and not math.isnan(v[0])}
    if len(valid) < 2:
        return Finding("AP by object size", text)
    worst = min(valid, key=lambda k: valid[k][0])
    best = max(valid, key=lambda k: valid[k][0])
    # every size near 0 says nothing about size: the other findings say what is wrong
    if valid[worst][0] >= 0.5 * valid[best][0] or valid[best][0] < LOW_MAP / 4:
        return Finding("AP by object size", text)
    hints = {
        "small": "small objects are found worst: try --fit-default-boxes or a larger input",
        "medium": "medium objects are found worst: train longer, or try --fit-default-boxes",
        "large": "large objects are found worst: try --fit-default-boxes (a larger s_max)",
    }
    return Finding("AP by object size", text, hints[worst])


def model_findings(
    model: nn.Module, val_set: Dataset, class_names: Sequence[str], score_threshold: float = 0.3
) -> tuple[list[Finding], dict[str, Any]]:
    """A trained model's findings on held-out images, and the measurements behind them.

    Returns:
        ``(findings, {"evaluation": EvalResult, "errors": DetectionErrors, "ap_by_size": {...},
        "detections": [...]})``.
    """
    dets, gts = predict_dataset(model, val_set)
    evaluation = evaluate_detections(dets, gts, list(class_names))
    errors = detection_errors(dets, gts, class_names, score_threshold)
    sizes = ap_by_size(dets, gts, class_names)
    defined = [(k, v) for k, v in evaluation.per_class().items() if not math.isnan(v)]
    per_class = sorted(defined, key=lambda kv: kv[1])[:3]  # classes without objects have no AP
    text = f"VOC07 mAP {evaluation.mean_ap:.3f} on {len(gts)} held-out images; lowest: " + (
        ", ".join(f"{k} {v:.3f}" for k, v in per_class)
    )
    low = evaluation.mean_ap < LOW_MAP
    hint = ("low: the findings below say where it goes; more iterations (--iters) help when the "
            "loss is still falling") if low else ""  # fmt: skip
    findings = [
        Finding("held-out mAP", text, hint),
        _prediction_finding(errors),
        _confusion_finding(errors),
        _false_positive_finding(errors),
        _size_finding(sizes, getattr(unwrap(model), "cfg", None)),
    ]
    measured = {"evaluation": evaluation, "errors": errors, "ap_by_size": sizes, "detections": dets}
    return findings, measured
