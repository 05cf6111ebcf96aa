"""Inference: a trained SSD's detections on a batch of images, and its VOC mAP on a dataset.

``predict`` is the test-time half of the paper in one call: the network, then decoding, the 0.01
confidence filter, per-class NMS at 0.45 and the 200 best detections per image (§3.7).
``evaluate_model`` runs it over a dataset and scores the result with the VOC rule (§3.1). Both are
hot paths (training evaluates with them, the detect command line predicts with them), so they
call the fast layer: the network runs through :func:`ssd_edu.fast.inference.forward`
(channels_last, and bf16 autocast on a CPU that computes bf16 natively; ``precision="fp32"``
turns bf16 off), then :func:`ssd_edu.fast.detect.detect` and
:func:`ssd_edu.fast.evaluate.evaluate_detections`, which give what the references in
:mod:`ssd_edu.nms` and :mod:`ssd_edu.evaluate` give. Decoding, NMS and evaluation are fp32.

Shapes: images ``[B, 3, S, S]`` normalised as ``ssd_edu.imagenet.normalize`` does; detections per
image ``(boxes [K, 4] xyxy fractions, scores [K], labels [K] in 1..C)``.

Paper: §3.7 "Inference time", §3.1 (VOC2007 test mAP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ssd_edu.data.loader import collate_detections
from ssd_edu.fast.detect import detect
from ssd_edu.fast.evaluate import evaluate_detections
from ssd_edu.fast.inference import fast_layout, forward
from ssd_edu.fast.photometric import finish_batch
from ssd_edu.model.ssd import unwrap


@torch.no_grad()
def predict(
    model: nn.Module,
    images: Tensor,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
    precision: str = "auto",
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Detections for a batch of images: the network, then decoding and per-class NMS.

    Args:
        model: an SSD (its ``priors`` buffer gives the default boxes); run in eval mode.
        images: ``[B, 3, S, S]`` normalised, on the model's device.
        score_threshold: class scores at or below this are dropped before NMS.
        iou_threshold: NMS overlap threshold.
        top_k: detections kept per image.
        precision: the network's arithmetic: ``"auto"`` (bf16 autocast on a CPU with native
            bf16, fp32 elsewhere), ``"fp32"`` or ``"bf16"``; the head outputs and all that
            follows are fp32 in every case (:mod:`ssd_edu.fast.inference`).

    Returns:
        One ``(boxes [K, 4] xyxy fractions, scores [K], labels [K] in 1..C)`` per image.

    Paper: §3.7 (inference: 0.01 confidence threshold, NMS at 0.45, top 200 per image).
    """
    was_training = model.training
    model.eval()
    try:
        loc, logits = forward(model, images, precision)  # [B, P, 4], [B, P, C + 1] fp32
    finally:
        model.train(was_training)
    return detect(
        loc,
        logits,
        unwrap(model).priors,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        top_k=top_k,
    )


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str],
    batch_size: int = 32,
    num_workers: int = 0,
    use_07_metric: bool = True,
    precision: str = "auto",
) -> Any:
    """VOC average precision of a model on a dataset (boxes compared at IoU 0.5).

    Args:
        model: an SSD; evaluated on its own device, in eval mode.
        dataset: items ``(image, boxes, labels, difficult)`` (e.g. ``ShapesDataset``,
            ``VOCDetection`` with ``EvalTransform``).
        class_names: the ``C`` object class names.
        batch_size: images per forward pass.
        num_workers: data-loading processes.
        use_07_metric: VOC2007's 11-point AP (True, the paper's) or the area under the curve.
        precision: the network's arithmetic, as :func:`predict` takes it.

    Returns:
        An :class:`~ssd_edu.eval_result.EvalResult` (per-class AP and mAP).

    Paper: §3.1 (mAP on VOC2007 test).
    """
    detections, ground_truths = predict_dataset(model, dataset, batch_size, num_workers, precision)
    return evaluate_detections(
        detections, ground_truths, list(class_names), use_07_metric=use_07_metric
    )


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    num_workers: int = 0,
    precision: str = "auto",
) -> tuple[list, list]:
    """:func:`predict` on every item of ``dataset``, with the items' ground truth.

    Args:
        model, batch_size, num_workers, precision: as for :func:`evaluate_model`.
        dataset: items ``(image, boxes, labels, difficult)`` (or deferred-photometric items).

    Returns:
        ``(detections, ground_truths)``: per image ``(boxes [K, 4], scores [K], labels [K])`` and
        ``(boxes [G, 4], labels [G], difficult [G])``, on the CPU, in dataset order.
    """
    device = next(model.parameters()).device
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_detections,
        pin_memory=device.type == "cuda",
    )
    detections, ground_truths = [], []
    with fast_layout(model, device, precision):  # once for the whole set, not once per batch
        for images, boxes, labels, difficult, *pixel_work in loader:
            images = images.to(device, non_blocking=True)
            if pixel_work:  # items of FastTrainTransform(defer_photometric=True)
                images = finish_batch(images, pixel_work[0].to(device, non_blocking=True))
            for b, s, l in predict(model, images, precision=precision):
                detections.append((b.cpu(), s.cpu(), l.cpu()))
            ground_truths.extend(zip(boxes, labels, difficult))
    return detections, ground_truths
