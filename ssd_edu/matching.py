"""Matching: which default boxes are responsible for which object, and what they should predict.

Training needs a target for every default box. SSD decides it in two steps (§2.2, "Matching
strategy"), both measured by jaccard overlap (IoU):

1. **Forced (bipartite) step.** Every object gets one default box of its own: the one that
   overlaps it most. Without this a small object, which no default box overlaps by 0.5, would
   never be trained on. When two objects want the same default box we pair greedily, as the
   released Caffe code does: repeatedly take the (object, default box) pair with the highest
   overlap among the objects not yet paired and the default boxes not yet taken. The object that
   overlaps the contested box more keeps it; the other takes its best box still free. Ties go to
   the lower object index, then the lower default-box index. Every object gets a distinct default
   box, as long as some free default box overlaps it at all (IoU > 0).
2. **Threshold step.** Every other default box takes the object it overlaps most (ties: the lower
   object index) if that overlap is ``>= iou_threshold``. The paper says "higher than 0.5"; the two
   readings differ only at exact equality, and the common implementations count equality as a
   match, so we do too.

A default box matched to no object is background. Positives get the offsets of eq. 2
(:func:`ssd_edu.boxes.encode`, variances 0.1 and 0.2) and the object's class; background gets
class 0 and location target 0 (finite, and ignored by the loss).

Formats: ground truth ``gt_boxes`` ``[G, 4]`` xyxy fractions, ``gt_labels`` ``[G]`` integers in
1..C; default boxes ``priors`` ``[P, 4]`` cxcywh fractions. The batched form takes lists of
per-image ground truths (any count, zero included), pads them to the largest count with a
validity mask, and matches the whole batch with tensor operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ssd_edu.boxes import _check_boxes, box_iou, cxcywh_to_xyxy, encode


def _check_threshold(iou_threshold: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")


def _check_priors(priors: Tensor) -> None:
    _check_boxes("priors", priors, ndim=2)
    if priors.shape[0] == 0:
        raise ValueError("priors must hold at least one default box, got shape [0, 4]")


def _check_gt_values(name: str, boxes: Tensor, valid: Tensor, batched: bool) -> None:
    """Reject NaN/inf and degenerate boxes among the valid rows of ``boxes`` ``[B, G, 4]``."""
    bad_value = ~torch.isfinite(boxes).all(-1) & valid  # [B, G]
    degenerate = ((boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])) & valid
    problems = ((bad_value, "is not finite"), (degenerate, "is degenerate: need x2 > x1, y2 > y1"))
    for mask, what in problems:
        if mask.any():
            b, g = (int(i) for i in torch.nonzero(mask)[0])
            where = f"{name}[{b}][{g}]" if batched else f"{name}[{g}]"
            values = ", ".join(f"{v:.4g}" for v in boxes[b, g].tolist())
            raise ValueError(f"{where} = [{values}] {what}")


def _check_gt_labels(name: str, labels: Tensor, valid: Tensor, batched: bool) -> None:
    """Reject labels below 1 (0 is background) among the valid entries of ``labels`` ``[B, G]``."""
    bad = (labels < 1) & valid  # [B, G]
    if bad.any():
        b, g = (int(i) for i in torch.nonzero(bad)[0])
        where = f"{name}[{b}][{g}]" if batched else f"{name}[{g}]"
        raise ValueError(
            f"{where} = {int(labels[b, g])}: object labels must be >= 1 "
            f"(label 0 is background and is never given as an object)"
        )


def _pad(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor] | None,
    priors: Tensor,
    batched: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Validate per-image ground truth and pad it to ``[B, G_max, ...]`` with a validity mask.

    Shapes are checked per image (metadata only); values are checked once on the padded batch.
    Padding and value checks happen where the ground truth lives, with Python lengths: ground
    truth handed over on the CPU (as a DataLoader gives it) is padded and checked there and then
    sent to ``priors``' device in one copy per tensor, without waiting for the GPU. (Checking
    values that already live on a GPU has to read a flag back, which waits for queued work.)
    The results are on ``priors``' device, boxes in its dtype.
    """
    if isinstance(gt_boxes, Tensor) or not isinstance(gt_boxes, Sequence):
        raise TypeError(
            f"gt_boxes must be a list of [G_i, 4] tensors (one per image), "
            f"got {type(gt_boxes).__name__}"
        )
    if gt_labels is not None:
        if isinstance(gt_labels, Tensor) or not isinstance(gt_labels, Sequence):
            raise TypeError(
                f"gt_labels must be a list of [G_i] tensors (one per image), "
                f"got {type(gt_labels).__name__}"
            )
        if len(gt_labels) != len(gt_boxes):
            raise ValueError(
                f"gt_labels has {len(gt_labels)} images but gt_boxes has {len(gt_boxes)}"
            )
    for b, boxes in enumerate(gt_boxes):
        _check_boxes(f"gt_boxes[{b}]", boxes, ndim=2)
        if gt_labels is not None:
            labels = gt_labels[b]
            if not isinstance(labels, Tensor):
                raise TypeError(
                    f"gt_labels[{b}] must be a torch.Tensor, got {type(labels).__name__}"
                )
            if labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
                raise ValueError(
                    f"gt_labels[{b}] must have shape [{boxes.shape[0]}] to line up with "
                    f"gt_boxes[{b}] of shape {list(boxes.shape)}, got {list(labels.shape)}"
                )
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise TypeError(f"gt_labels[{b}] must hold integers, got dtype {labels.dtype}")

    device, dtype = priors.device, priors.dtype
    batch = len(gt_boxes)
    # pad on the ground truth's own device when all of it shares one, else on priors' device
    given = list(gt_boxes) + list(gt_labels or [])
    homes = {t.device for t in given}
    home = homes.pop() if len(homes) == 1 else device
    counts = [len(b) for b in gt_boxes]  # Python ints: the shapes are known without a sync
    # at least one slot, so that every later tensor op sees G >= 1 (an empty slot is invalid)
    g_max = max([1, *counts])
    valid = torch.arange(g_max)[None, :] < torch.tensor(counts, dtype=torch.long)[:, None]  # [B, G]
    valid = valid.reshape(batch, g_max).to(home, non_blocking=True)
    boxes = _stack_padded([b.to(home, dtype) for b in gt_boxes], (batch, g_max, 4), dtype, home)
    # padded slots hold the whole image: a harmless, non-degenerate box that encode can take
    boxes = torch.where(valid[..., None], boxes, boxes.new_tensor([0.0, 0.0, 1.0, 1.0]))
    _check_gt_values("gt_boxes", boxes, valid, batched)
    labels = None
    if gt_labels is not None:
        labels = _stack_padded(  # [B, G]
            [lab.to(home, torch.long) for lab in gt_labels], (batch, g_max), torch.long, home
        )
        _check_gt_labels("gt_labels", labels, valid, batched)
        labels = labels.to(device, non_blocking=True)
    return boxes.to(device, non_blocking=True), labels, valid.to(device, non_blocking=True)


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
    iou = box_iou(gt, cxcywh_to_xyxy(priors))  # [B, G, P]; padded zeros give 0
    iou.masked_fill_(~valid[..., None], -1.0)  # padded objects never win anything

    # threshold step: each default box takes the object it overlaps most (first index on ties)
    best_gt_iou, best_gt = iou.max(dim=1)  # [B, P]
    matches = torch.where(best_gt_iou >= iou_threshold, best_gt, -1)  # [B, P]

    # forced step, greedy pairing done in parallel rounds: a pair (object g, default box p) is
    # taken when p is g's best free box AND g is p's best unpaired object. The best remaining
    # pair always qualifies, and taking every qualifying pair at once gives exactly the greedy
    # result (each is the best pair on both of its ends), usually in one or two rounds.
    batch_idx = torch.arange(batch, device=iou.device)[:, None]  # [B, 1]
    gt_idx = torch.arange(g_max, device=iou.device)[None, :]  # [1, G]
    forced = torch.full((batch, g_max), -1, dtype=torch.long, device=iou.device)  # [B, G]
    best_prior_iou, best_prior = iou.max(dim=2)  # [B, G], round one: nothing taken yet
    while True:
        open_gt = valid & (forced < 0) & (best_prior_iou > 0)  # [B, G] still to pair
        # is g the best unpaired object of its best free box?
        owner = best_gt.gather(1, best_prior)  # [B, G]
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


def match(gt_boxes: Tensor, priors: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Match default boxes to the ground truth of one image (forced step, then threshold step).

    Args:
        gt_boxes: ``[G, 4]`` xyxy fractions, non-degenerate (``x2 > x1``, ``y2 > y1``); G may be 0.
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: overlap at or above which a default box takes an object (0.5 in the paper).

    Returns:
        ``[P]`` long: for each default box the index of its object in ``gt_boxes``, or -1 for
        background. See the module docstring for the tie rules.

    Paper: §2.2 "Matching strategy".
    """
    _check_threshold(iou_threshold)
    _check_priors(priors)
    _check_boxes("gt_boxes", gt_boxes, ndim=2)
    gt, _, valid = _pad([gt_boxes], None, priors, batched=False)
    return _match_padded(gt, valid, priors, iou_threshold)[0]


def _targets(
    gt: Tensor, labels: Tensor, valid: Tensor, priors: Tensor, iou_threshold: float
) -> tuple[Tensor, Tensor]:
    matches = _match_padded(gt, valid, priors, iou_threshold)  # [B, P]
    positive = matches >= 0  # [B, P]
    index = matches.clamp(min=0)  # [B, P]; background reads slot 0 and is masked below
    matched_boxes = gt.gather(1, index[..., None].expand(-1, -1, 4))  # [B, P, 4]
    loc_t = torch.where(positive[..., None], encode(matched_boxes, priors), 0.0)  # [B, P, 4]
    cls_t = torch.where(positive, labels.gather(1, index), 0)  # [B, P]
    return loc_t, cls_t


def assign_targets(
    gt_boxes: Tensor, gt_labels: Tensor, priors: Tensor, iou_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Training targets of one image: offsets and classes for every default box.

    Args:
        gt_boxes: ``[G, 4]`` xyxy fractions, non-degenerate; G may be 0.
        gt_labels: ``[G]`` integer classes in 1..C (0 is background, never an object).
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: as in :func:`match`.

    Returns:
        ``loc_t`` ``[P, 4]``: encoded offsets (eq. 2, variances 0.1 and 0.2) of each positive's
        object, 0 for background; ``cls_t`` ``[P]`` long: the object's class, 0 for background.
        Both on ``priors``' device, ``loc_t`` in its dtype.

    Paper: §2.2 "Matching strategy" and eq. 2.
    """
    _check_threshold(iou_threshold)
    _check_priors(priors)
    _check_boxes("gt_boxes", gt_boxes, ndim=2)
    if not isinstance(gt_labels, Tensor):
        raise TypeError(f"gt_labels must be a torch.Tensor, got {type(gt_labels).__name__}")
    if gt_labels.ndim != 1 or gt_labels.shape[0] != gt_boxes.shape[0]:
        raise ValueError(
            f"gt_labels must have shape [{gt_boxes.shape[0]}] to line up with gt_boxes of shape "
            f"{list(gt_boxes.shape)}, got {list(gt_labels.shape)}"
        )
    gt, labels, valid = _pad([gt_boxes], [gt_labels], priors, batched=False)
    loc_t, cls_t = _targets(gt, labels, valid, priors, iou_threshold)
    return loc_t[0], cls_t[0]


def assign_targets_batch(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    priors: Tensor,
    iou_threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Training targets of a batch: :func:`assign_targets` for every image at once.

    The ground truths are padded to the largest object count with a validity mask, and one
    batched IoU ``[B, G_max, P]`` serves the whole batch: no Python loop over images or boxes
    in the computation (only the per-image shape checks look at each list entry).

    Args:
        gt_boxes: list of B tensors ``[G_i, 4]`` xyxy fractions (``G_i`` may be 0).
        gt_labels: list of B tensors ``[G_i]`` integer classes in 1..C.
        priors: ``[P, 4]`` cxcywh default boxes; the outputs live on its device.
        iou_threshold: as in :func:`match`.

    Returns:
        ``loc_t`` ``[B, P, 4]`` offsets (0 for background) and ``cls_t`` ``[B, P]`` long classes
        (0 for background); image ``b`` gets what
        ``assign_targets(gt_boxes[b], gt_labels[b], priors)`` gives.

    Paper: §2.2 "Matching strategy" and eq. 2.
    """
    _check_threshold(iou_threshold)
    _check_priors(priors)
    gt, labels, valid = _pad(gt_boxes, gt_labels, priors, batched=True)
    return _targets(gt, labels, valid, priors, iou_threshold)
