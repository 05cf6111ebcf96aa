"""Matching a whole batch with one batched overlap: the fast form of :mod:`ssd_edu.matching`.

The reference matches one image at a time, and its forced step takes one (object, default box)
pair per Python step. Here the ground truths of a batch are padded to the largest object count
``G_max`` with a validity mask, one ``box_iou`` gives every overlap ``[B, G_max, P]``, and the
forced step runs in parallel rounds: a pair (object ``g``, default box ``p``) is taken when ``p``
is ``g``'s best free box *and* ``g`` is ``p``'s best unpaired object. The best remaining pair
always qualifies, and every qualifying pair is the best on both of its ends, so taking them all
at once gives exactly the greedy result, usually in one or two rounds.

What it trades: padding wastes the empty slots' arithmetic (``sum G_i / (B G_max)`` of the work
is real), for a handful of kernel launches and one host-device synchronisation per round instead
of several per image. That wins on a GPU (26x the per-image loop on an H100). On the CPU it
depends on the size (CPU time at 1 thread, issue 18): for the CPU preset's batches (16 images x
1524 default boxes x 1-3 objects) it takes 0.2x the time of this function called image by image
and 0.25x the reference's loop, so the CPU training loop uses it; for SSD300's (32 x 8732 x 1-20
objects) the padding costs more than the loop saves (``make bench``: 95 ms against 49 ms for the
image-by-image loop on 2 threads; 133 against 89 ms in CPU time at 1 thread).
:func:`assign_targets_cpu` picks between the two by ``G_max x P``; the CPU training loop uses it.

Ground truth handed over on the CPU (as a DataLoader gives it) is padded and checked there and
sent to the priors' device in one copy per tensor, so nothing waits for the GPU; checking values
that already live on a GPU reads one flag back. Bad input gets the reference's messages.

Reference: :func:`ssd_edu.matching.assign_targets_batch` (tested equal, ties included).
Paper: §2.2 "Matching strategy" and eq. 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ssd_edu.boxes import box_iou, cxcywh_to_xyxy, encode
from ssd_edu.matching import _check_batch, _check_gt_shapes, _check_gt_values, _check_settings


def assign_targets_batch(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    priors: Tensor,
    iou_threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Training targets of a batch in one pass: what the reference's loop over images gives.

    Args:
        gt_boxes: list of B tensors ``[G_i, 4]`` xyxy fractions (``G_i`` may be 0).
        gt_labels: list of B tensors ``[G_i]`` integer classes in 1..C.
        priors: ``[P, 4]`` cxcywh default boxes; the outputs live on its device.
        iou_threshold: overlap at or above which a default box takes an object.

    Returns:
        ``loc_t`` ``[B, P, 4]`` offsets (0 for background) and ``cls_t`` ``[B, P]`` long classes
        (0 for background).

    Paper: §2.2 "Matching strategy" and eq. 2.
    """
    _check_settings(priors, iou_threshold)
    gt, labels, valid = _pad(gt_boxes, gt_labels, priors)
    matches = _match_padded(gt, valid, priors, iou_threshold)  # [B, P]
    positive = matches >= 0  # [B, P]
    index = matches.clamp(min=0)  # [B, P]; background reads slot 0 and is masked below
    matched_boxes = gt.gather(1, index[..., None].expand(-1, -1, 4))  # [B, P, 4]
    loc_t = torch.where(positive[..., None], encode(matched_boxes, priors), 0.0)  # [B, P, 4]
    cls_t = torch.where(positive, labels.gather(1, index), 0)  # [B, P]
    return loc_t, cls_t


# On the CPU the padded form wins while G_max x P is small and loses when it is large (CPU time
# at 1 thread, issue 18): 0.2x the image-by-image time for the CPU preset (3 x 1524), 0.87x for
# 32 SSD300 images of up to 6 objects (6 x 8732), 1.2x with up to 10, 1.5x with up to 20.
CPU_PADDED_LIMIT = 65_536


def assign_targets_cpu(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    priors: Tensor,
    iou_threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """:func:`assign_targets_batch` in the form that is faster on a CPU: the padded batch while
    ``G_max * P <= CPU_PADDED_LIMIT``, else one image at a time (no padded work). Same arguments,
    same results, same errors (naming the image in the batch)."""
    _check_settings(priors, iou_threshold)
    _check_batch(gt_boxes, gt_labels)
    g_max = max([0, *(len(b) for b in gt_boxes)])
    if not gt_boxes or g_max * priors.shape[0] <= CPU_PADDED_LIMIT:
        return assign_targets_batch(gt_boxes, gt_labels, priors, iou_threshold)
    for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):  # the batch's own indices
        _check_gt_shapes(boxes, labels, b)
        _check_gt_values(boxes.to(priors.dtype), labels, b)
    pairs = [
        assign_targets_batch([boxes], [labels], priors, iou_threshold)
        for boxes, labels in zip(gt_boxes, gt_labels)
    ]
    return torch.cat([loc for loc, _ in pairs]), torch.cat([cls for _, cls in pairs])


def _pad(
    gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor], priors: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked ground truth padded to ``[B, G_max, 4]`` and ``[B, G_max]``, with a ``[B, G_max]``
    validity mask, on ``priors``' device (boxes in its dtype)."""
    _check_batch(gt_boxes, gt_labels)
    for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
        _check_gt_shapes(boxes, labels, b)  # metadata only, per image
    device, dtype = priors.device, priors.dtype
    batch = len(gt_boxes)
    # pad on the ground truth's own device when all of it shares one, else on priors' device
    homes = {t.device for t in (*gt_boxes, *gt_labels)}
    home = homes.pop() if len(homes) == 1 else device
    counts = [len(b) for b in gt_boxes]  # Python ints: the shapes are known without a sync
    # at least one slot, so that every later tensor op sees G >= 1 (an empty slot is invalid)
    g_max = max([1, *counts])
    valid = torch.arange(g_max)[None, :] < torch.tensor(counts, dtype=torch.long)[:, None]  # [B, G]
    valid = valid.reshape(batch, g_max).to(home, non_blocking=True)
    boxes = _stack_padded([b.to(home, dtype) for b in gt_boxes], (batch, g_max, 4), dtype, home)
    # padded slots hold the whole image: a harmless, non-degenerate box that encode can take
    boxes = torch.where(valid[..., None], boxes, boxes.new_tensor([0.0, 0.0, 1.0, 1.0]))
    labels = _stack_padded(  # [B, G]
        [lab.to(home, torch.long) for lab in gt_labels], (batch, g_max), torch.long, home
    )
    # the values of the whole batch at once (one read-back); the reference names the culprit
    bad = ~torch.isfinite(boxes).all(-1) | (boxes[..., 2] <= boxes[..., 0])  # [B, G]
    bad |= (boxes[..., 3] <= boxes[..., 1]) | (labels < 1)
    bad &= valid
    if bad.any():
        b = int(torch.nonzero(bad)[0, 0])
        _check_gt_values(gt_boxes[b].to(dtype), gt_labels[b], b)
    nb = dict(non_blocking=True)
    return boxes.to(device, **nb), labels.to(device, **nb), valid.to(device, **nb)


def _stack_padded(
    rows: list[Tensor], shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Per-image tensors ``[G_i, ...]`` -> one zero-padded ``[B, G_max, ...]`` tensor."""
    if not rows:
        return torch.zeros(shape, dtype=dtype, device=device)
    # pad_sequence copies each row into its slice: no data-dependent indexing, so no GPU sync
    padded = pad_sequence(rows, batch_first=True)  # [B, max G_i, ...]
    extra = shape[1] - padded.shape[1]  # 1 when every image is empty, else 0
    if extra:
        padded = torch.cat([padded, padded.new_zeros(shape[0], extra, *shape[2:])], dim=1)
    return padded


def _match_padded(gt: Tensor, valid: Tensor, priors: Tensor, iou_threshold: float) -> Tensor:
    """Two-step matching of padded ground truth ``[B, G, 4]``, mask ``[B, G]`` -> ``[B, P]``."""
    batch, g_max = valid.shape
    num_priors = priors.shape[0]
    iou = box_iou(gt, cxcywh_to_xyxy(priors))  # [B, G, P]
    iou.masked_fill_(~valid[..., None], -1.0)  # padded objects never win anything

    # threshold step: each default box takes the object it overlaps most (first index on ties)
    best_gt_iou, best_gt = iou.max(dim=1)  # [B, P]
    matches = torch.where(best_gt_iou >= iou_threshold, best_gt, -1)  # [B, P]

    # forced step in parallel rounds (module docstring): take every pair that is the best on
    # both of its ends, hide what was taken, repeat while some object is still unpaired
    batch_idx = torch.arange(batch, device=iou.device)[:, None]  # [B, 1]
    gt_idx = torch.arange(g_max, device=iou.device)[None, :]  # [1, G]
    forced = torch.full((batch, g_max), -1, dtype=torch.long, device=iou.device)  # [B, G]
    best_prior_iou, best_prior = iou.max(dim=2)  # [B, G], round one: nothing taken yet
    while True:
        open_gt = valid & (forced < 0) & (best_prior_iou > 0)  # [B, G] still to pair
        owner = best_gt.gather(1, best_prior)  # [B, G]: the best object of g's best free box
        take = open_gt & (owner == gt_idx)  # [B, G]
        forced = torch.where(take, best_prior, forced)
        if not bool((open_gt & ~take).any()):
            break
        # conflicts (rare): hide the taken boxes and the paired objects, then look again
        paired = forced >= 0  # [B, G]
        taken = torch.zeros(batch, num_priors, dtype=torch.bool, device=iou.device)  # [B, P]
        taken[batch_idx.expand_as(forced)[paired], forced[paired]] = True
        iou.masked_fill_(taken[:, None, :], -1.0)  # [B, G, P]
        iou[paired] = -1.0
        best_prior_iou, best_prior = iou.max(dim=2)  # [B, G]
        best_gt = iou.max(dim=1).indices  # [B, P]

    # forced pairs override the threshold step; the forced boxes are distinct, so no clashes
    paired = forced >= 0  # [B, G]
    matches[batch_idx.expand_as(forced)[paired], forced[paired]] = gt_idx.expand_as(forced)[paired]
    return matches
