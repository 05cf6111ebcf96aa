"""SSD's detection output for a whole batch at once: the fast form of :func:`ssd_edu.nms.detect`.

The reference scores one image and one class at a time (a sort of all P default boxes each) and
runs the greedy loop per class. Here:

* the candidates of every class of every image come from one ``topk`` over ``[B, C-1, P]``
  (where a tie crosses the cut, that row is sorted as the reference sorts it, so the lower
  default-box indices win), then one stable sort of the few hundred kept per class;
* NMS is either :func:`ssd_edu.fast.nms.batched_nms` image by image (the CPU's default: the least
  arithmetic), or, with ``all_at_once``, every class of every image together: one overlap matrix
  per class (at most ``candidates_per_class`` squared) and the greedy rule solved for all of them
  at once by :func:`ssd_edu.fast.nms.resolve_block`. That does more arithmetic but needs a few
  host-device synchronisations in all instead of several per block and image, which is what
  costs time on a GPU (the default there).

``make bench``, one CPU core, 32 x 8732 x 21 outputs: untrained (flat) scores 0.66 s image by
image, 3.6 s all at once; confident background 0.18 s and 0.22 s.

Reference: :func:`ssd_edu.nms.detect` and :func:`ssd_edu.nms.score_candidates` (tested equal).
Paper: §3.7 (0.01 filter, NMS at 0.45 per class, top 200 per image).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd_edu.boxes import box_iou, decode
from ssd_edu.fast.nms import batched_nms, resolve_block, threshold_for
from ssd_edu.nms import _check_outputs, _check_positive_int, _check_threshold

# overlap entries per chunk of images in the all-at-once method: a few hundred MB of temporaries
_MAX_PAIRS = 2**25


def ranked_candidates(
    loc: Tensor, logits: Tensor, priors: Tensor, candidates_per_class: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Decoded boxes ``[B, P, 4]`` and, per class, the best scores ``[B, C-1, top]`` in descending
    order (ties: lower default-box index first) with their default boxes' indices."""
    boxes = decode(loc, priors)  # [B, P, 4] xyxy
    scores = torch.softmax(logits, dim=-1)[..., 1:].transpose(1, 2)  # [B, C-1, P], no background
    top = min(candidates_per_class, scores.shape[2])
    # one more than needed: where the (top+1)-th score equals the top-th, a tie crosses the cut
    # and topk's free choice among the tied boxes may differ from the reference's stable sort
    values, prior_idx = torch.topk(scores, min(top + 1, scores.shape[2]), dim=2)
    prior_idx = prior_idx[..., :top]  # [B, C-1, top]
    if values.shape[2] > top:
        tied = torch.nonzero(values[..., top] == values[..., top - 1])  # [R, 2] (image, class)
        if len(tied):  # rare: those rows the reference's way, lowest indices among the ties
            rows = scores[tied[:, 0], tied[:, 1]]  # [R, P]
            best = torch.sort(rows, dim=1, descending=True, stable=True).indices[:, :top]
            prior_idx[tied[:, 0], tied[:, 1]] = best
    prior_idx = prior_idx.sort(dim=2).values  # index order first: equal scores keep it
    ranked = scores.gather(2, prior_idx)  # [B, C-1, top]
    ranked, order = torch.sort(ranked, dim=2, descending=True, stable=True)
    return boxes, ranked, prior_idx.gather(2, order)


def detect(
    loc: Tensor,
    logits: Tensor,
    priors: Tensor,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
    candidates_per_class: int = 400,
    all_at_once: bool | None = None,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """What :func:`ssd_edu.nms.detect` returns, computed for the whole batch at once.

    Args:
        loc, logits, priors, score_threshold, iou_threshold, top_k, candidates_per_class: as for
            :func:`ssd_edu.nms.detect`.
        all_at_once: the method (the result is the same): ``True`` all classes and images
            together, ``False`` image by image, ``None`` together unless on the CPU.

    Returns:
        One ``(boxes [K, 4] xyxy, scores [K], labels [K] long in 1..C-1)`` per image, highest score
        first, ``K <= top_k``.

    Paper: §3.7.
    """
    _check_threshold("iou_threshold", iou_threshold)
    _check_positive_int("top_k", top_k)
    _check_outputs(loc, logits, priors, score_threshold, candidates_per_class)
    if all_at_once is None:
        all_at_once = loc.device.type != "cpu"
    boxes, ranked, prior_idx = ranked_candidates(loc, logits, priors, candidates_per_class)
    if all_at_once:
        return _all_at_once(boxes, ranked, prior_idx, score_threshold, iou_threshold, top_k)
    labels = torch.arange(1, ranked.shape[1] + 1, device=loc.device)[:, None].expand_as(ranked[0])
    results = []
    for b in range(loc.shape[0]):  # images keep different numbers of candidates
        passing = ranked[b] > score_threshold  # [C-1, top]
        cand = (boxes[b][prior_idx[b][passing]], ranked[b][passing], labels[passing])
        keep = batched_nms(*cand, iou_threshold)[:top_k]  # [K]
        results.append(tuple(t[keep] for t in cand))
    return results


def _all_at_once(
    boxes: Tensor,
    ranked: Tensor,
    prior_idx: Tensor,
    score_threshold: float,
    iou_threshold: float,
    top_k: int,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`detect` for all classes of all images together (see the module docstring)."""
    batch, num_objects = ranked.shape[:2]
    passing = ranked > score_threshold  # [B, C-1, top]
    n = int(passing.sum(2).amax()) if passing.numel() else 0  # candidates of the fullest class
    ranked, prior_idx, passing = ranked[..., :n], prior_idx[..., :n], passing[..., :n]
    cand = boxes.gather(1, prior_idx.reshape(batch, -1, 1).expand(-1, -1, 4))  # [B, (C-1) n, 4]
    cand = cand.view(batch, num_objects, n, 4)  # [B, C-1, n, 4]
    threshold = threshold_for(boxes.dtype, iou_threshold)
    keep = torch.zeros_like(passing)  # [B, C-1, n]
    chunk = max(1, _MAX_PAIRS // max(1, num_objects * n * n))  # images per chunk
    for start in range(0, batch, chunk):
        part = slice(start, start + chunk)
        # a box only suppresses lower-ranked ones of its class: the part above the diagonal
        over = torch.triu(box_iou(cand[part], cand[part]) > threshold, 1)  # [b, C-1, n, n]
        keep[part] = resolve_block(over, passing[part])
    # the best top_k survivors of each image; a stable sort over (class, rank) order keeps equal
    # scores in the order batched_nms gives them
    score = torch.where(keep, ranked, torch.full_like(ranked, -1.0)).view(batch, -1)  # [B, (C-1) n]
    order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :top_k]  # [B, K']
    counts = keep.view(batch, -1).sum(1).clamp(max=top_k).tolist()  # one sync for all images
    labels = torch.arange(1, num_objects + 1, device=boxes.device).repeat_interleave(n)
    flat = cand.view(batch, -1, 4)  # [B, (C-1) n, 4]
    results = []
    for b, k in enumerate(counts):  # slicing only: images keep different numbers of detections
        pick = order[b, :k]  # [K]
        results.append((flat[b, pick], score[b, pick], labels[pick]))
    return results
