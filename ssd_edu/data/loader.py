"""Batching detection items: images stacked, per-image targets kept as lists.

A batch of SSD training data cannot be one tensor all through: every image has its own number of
objects (zero included), so the ground truth of a batch stays a list of ``[N_b, 4]`` boxes,
``[N_b]`` labels and ``[N_b]`` difficult flags, one entry per image, while the images, all
``[3, S, S]`` after the transform, stack into ``[B, 3, S, S]``. Matching (§2.2 "Matching
strategy") then pairs each image's objects with the default boxes on its own.

Shapes: items ``(image [3, S, S], boxes [N, 4] xyxy fractions, labels [N] int64, difficult [N]
bool)``, optionally with a fifth element ``params [15]`` (deferred photometric work, see
``ssd_edu/fast/augment.py``); batches ``(images [B, 3, S, S], boxes list, labels list, difficult
list[, params [B, 15]])``.

Paper: §3 (training in batches of 32); the list-of-targets format is ours (docs/design.md).
"""

from __future__ import annotations

import torch
from torch import Tensor


def collate_detections(batch: list[tuple[Tensor, ...]]) -> tuple:
    """DataLoader ``collate_fn`` for detection: images stacked, per-image targets kept as lists.

    Images have different numbers of objects (zero included), so boxes cannot be stacked.

    Args:
        batch: ``B`` items ``(image [3, S, S], boxes [N_b, 4], labels [N_b], difficult [N_b])``,
            or all with a fifth element ``params [15]`` (``FastTrainTransform(...,
            defer_photometric=True)``, uint8 images).

    Returns:
        ``(images [B, 3, S, S], boxes list of [N_b, 4], labels list of [N_b], difficult list)``,
        plus ``params [B, 15]`` stacked when the items carry it.

    Paper: §3 (batches of 32 images); per-image targets as in docs/design.md.
    """
    if len(batch) == 0:
        raise ValueError("batch must hold at least one item, got 0")
    lengths = {len(item) for item in batch}
    if lengths not in ({4}, {5}):
        raise ValueError(
            "items must all be (image, boxes, labels, difficult) or all carry a fifth element "
            f"(deferred photometric params), got item lengths {sorted(lengths)}"
        )
    images, boxes, labels, difficult, *params = zip(*batch)
    shapes = {(tuple(im.shape), im.dtype) for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"images in a batch must share one shape and dtype, got {sorted(map(str, shapes))}"
        )
    out = (torch.stack(images), list(boxes), list(labels), list(difficult))
    return (*out, torch.stack(params[0])) if params else out
