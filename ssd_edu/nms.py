"""Non-maximum suppression and SSD's detection output: from 8732 scored boxes to a short list.

A trained SSD fires many default boxes around each object, so the decoded boxes come in clusters
of near-duplicates. Greedy non-maximum suppression keeps the best box of each cluster: visit the
boxes from the highest score down; keep a box unless it overlaps an already kept box by more than
the threshold,

    keep(j)  <=>  J(b_i, b_j) <= iou_threshold  for every kept box i ranked before j

where ``J`` is the jaccard overlap of :func:`ssd_edu.boxes.box_iou`. Suppressed boxes suppress
nothing. At test time SSD does this per class (a person may stand in front of a car), after
dropping class scores of 0.01 and below and keeping the 400 best boxes per class, then keeps the
200 best detections of the image.

How ``nms`` computes it. The greedy rule is sequential, but most of its work is not. Take the
next ``block_size`` boxes still alive (in score order) and decide them exactly among themselves:
"kept = not overlapped by an earlier kept box" is solved by repeating it from "all kept" until
nothing changes. The rule is triangular (a box depends only on higher-ranked ones), so it has one
solution, the greedy one, and the repetition reaches it. Then the block's kept boxes suppress, in
one tensor op, every later box they overlap. The Python loop runs once per block (plus a few
rounds inside), never once per pair of boxes, and at most ``block_size x n`` overlaps exist at
any time.

Formats: boxes are ``[N, 4]`` xyxy (fractions or pixels, any consistent unit); scores ``[N]``;
model outputs ``loc`` ``[B, P, 4]`` and ``logits`` ``[B, P, C]`` with class 0 the background.

Paper: §2.1 (NMS turns the default boxes' predictions into the final detections) and §3.7
"Inference time" (confidence filter 0.01, NMS at jaccard overlap 0.45 per class, top 200 per
image). The 400 candidates per class are not in the paper; they come from the released models'
configuration.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes, box_area, box_iou, decode

BLOCK_SIZE = 128  # boxes decided per step of nms; about the fastest on CPU from 1000 boxes up


def _check_threshold(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_scores(boxes: Tensor, scores: Tensor) -> None:
    _check_boxes("boxes", boxes, ndim=2)
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores must have shape [N] with N = {boxes.shape[0]} (one per box), "
            f"got {list(scores.shape)}"
        )
    if scores.device != boxes.device:
        raise ValueError(f"scores is on {scores.device} but boxes is on {boxes.device}")


def _resolve_block(over: Tensor, alive: Tensor | None = None) -> Tensor:
    """Greedy decision inside blocks: ``over[..., i, j]`` (only ``i < j``): i would suppress j.

    Repeats ``keep = alive and not (overlapped by an earlier kept box)`` from "all alive" until it
    stops changing. Each round fixes at least one more box in score order, so at most ``b``
    rounds; typical clusters need two or three. Leading dimensions are independent blocks.

    Args:
        over: ``[..., b, b]`` bool.
        alive: ``[..., b]`` bool, the boxes taking part (default: all); the others are neither
            kept nor suppress anything.

    Returns:
        ``[..., b]`` bool, kept.
    """
    over = over.to(torch.float32)  # [..., b, b]; a product counts the kept boxes that overlap j
    if alive is None:
        alive = torch.ones(over.shape[:-1], dtype=torch.bool, device=over.device)  # [..., b]
    keep = alive
    while True:
        new = alive & ((keep.to(torch.float32).unsqueeze(-2) @ over).squeeze(-2) == 0)  # [..., b]
        if torch.equal(new, keep):
            return keep
        keep = new


def _pairwise_iou(table: Tensor, i: Tensor, j: Tensor) -> Tensor:
    """Jaccard overlap of boxes ``i`` with boxes ``j``: ``[I, J]``, equal to ``box_iou``.

    The arithmetic of :func:`ssd_edu.boxes.box_iou` step for step (the tests check the values are
    identical), for boxes stored as columns (``table``: ``[5, N]``, rows x1, y1, x2, y2, area) so
    that every step is one contiguous tensor op, mostly in place: NMS spends its time here.
    """
    a, b = table.index_select(1, i), table.index_select(1, j)  # [5, I], [5, J]
    w = torch.minimum(a[2, :, None], b[2]).sub_(torch.maximum(a[0, :, None], b[0]))  # [I, J]
    h = torch.minimum(a[3, :, None], b[3]).sub_(torch.maximum(a[1, :, None], b[1]))  # [I, J]
    inter = w.clamp_(min=0).mul_(h.clamp_(min=0))  # [I, J]
    union = (a[4, :, None] + b[4]).sub_(inter)  # [I, J]
    # an empty union has an empty intersection: divide by 1 there, as box_iou does (a floor on
    # the union would distort tiny but nonzero unions)
    return inter.div_(union.masked_fill_(union <= 0, 1.0))


def _threshold_for(dtype: torch.dtype, threshold: float) -> float:
    """The number ``t`` of ``dtype`` for which ``x > t`` exactly when ``x > threshold``, for every
    ``x`` of ``dtype``.

    Comparing a float32 tensor with a Python float rounds the float to float32 first. For a
    threshold such as 1/3 that rounds up, an overlap equal to float32(1/3) is greater than 1/3 but
    not greater than the rounded threshold; stepping one float down restores "greater than".
    """
    t = torch.tensor(threshold, dtype=dtype)
    if float(t) > threshold:
        t = torch.nextafter(t, torch.tensor(-1.0, dtype=dtype))
    return float(t)


def _greedy(boxes: Tensor, iou_threshold: float, classes: Tensor | None, block_size: int) -> Tensor:
    """Greedy NMS over boxes already in decision order; returns kept positions, ascending.

    Without ``classes`` the order is descending score. With ``classes`` the boxes are grouped by
    class (ascending), descending score within a class, and a box only suppresses its own class.
    """
    table = torch.cat((boxes.T, box_area(boxes)[None]))  # [5, N] x1, y1, x2, y2, area
    iou_threshold = _threshold_for(boxes.dtype, iou_threshold)
    alive = torch.arange(boxes.shape[0], device=boxes.device)  # [A] not yet suppressed
    kept = []
    while alive.numel() > 0:
        block, rest = alive[:block_size], alive[block_size:]  # [b] the best boxes still alive
        # a box only suppresses lower-ranked ones: keep the part above the diagonal
        over = torch.triu(_pairwise_iou(table, block, block) > iou_threshold, 1)  # [b, b]
        if classes is not None:
            over &= classes[block][:, None] == classes[block]  # [b, b]
        winners = block[_resolve_block(over)]  # [k]
        kept.append(winners)
        if classes is not None:
            # grouped by class: every class in the block but its last is finished (all its alive
            # boxes are in the block), and later classes are untouched; so only the last class's
            # winners meet its remaining boxes
            last = classes[block[-1:]]  # [1]
            end = int(torch.searchsorted(classes[rest], last, right=True))
            rest, untouched = rest[:end], rest[end:]
            winners = winners[classes[winners] == last]  # [k'], never empty: its best box stays
        if rest.numel() > 0:
            iou = _pairwise_iou(table, winners, rest)  # [k, R]; only kept boxes suppress
            rest = rest[iou.amax(0) <= iou_threshold]  # [R']
        alive = rest if classes is None else torch.cat((rest, untouched))
    if not kept:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return torch.cat(kept)


def nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float, block_size: int = BLOCK_SIZE
) -> Tensor:
    """Exact greedy non-maximum suppression.

    A box is suppressed when its jaccard overlap with a kept, higher-scored box is greater than
    ``iou_threshold`` (an overlap exactly equal to it does not suppress). Equal scores are ordered
    by index: the lower index counts as higher-scored (a stable sort).

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` confidences, same device as ``boxes``.
        iou_threshold: overlap in ``[0, 1]`` above which the lower-scored box is dropped.
        block_size: boxes decided per step (speed only; the result does not depend on it).

    Returns:
        ``[K]`` long indices into ``boxes`` of the kept boxes, highest score first; an empty long
        tensor on ``boxes.device`` when ``N == 0``.

    Paper: §2.1 and §3.7 (greedy NMS, jaccard overlap 0.45 at test time).
    """
    _check_scores(boxes, scores)
    _check_threshold("iou_threshold", iou_threshold)
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    order = torch.sort(scores, descending=True, stable=True).indices  # [N]
    return order[_greedy(boxes[order], iou_threshold, None, block_size)]


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    iou_threshold: float,
    block_size: int = BLOCK_SIZE,
) -> Tensor:
    """Greedy NMS in which boxes suppress only boxes of the same class.

    The boxes are grouped by class and one greedy pass runs over them, in score order within each
    class, where boxes of different classes never suppress each other. This gives exactly what
    running :func:`nms` once per class and merging would, in one loop, and without moving boxes
    apart by class offsets (the usual trick, whose large coordinates round the overlaps slightly
    differently from the per-class run).

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` confidences.
        classes: ``[N]`` integer class of each box.
        iou_threshold: overlap in ``[0, 1]`` above which the lower-scored box is dropped.
        block_size: boxes decided per step (speed only).

    Returns:
        ``[K]`` long indices into ``boxes``, highest score first (equal scores: lower index first).

    Paper: §3.7 (NMS per class).
    """
    _check_scores(boxes, scores)
    _check_threshold("iou_threshold", iou_threshold)
    if not isinstance(classes, Tensor) or classes.shape != scores.shape:
        got = list(classes.shape) if isinstance(classes, Tensor) else type(classes).__name__
        raise ValueError(f"classes must have shape [N] with N = {boxes.shape[0]}, got {got}")
    if classes.is_floating_point() or classes.dtype == torch.bool:
        raise TypeError(f"classes must be an integer tensor, got dtype {classes.dtype}")
    if classes.device != boxes.device:
        raise ValueError(f"classes is on {classes.device} but boxes is on {boxes.device}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    by_score = torch.sort(scores, descending=True, stable=True).indices  # [N]
    # group by class, keeping score order inside each class: classes never interact, so the
    # greedy pass may finish one class before the next, and a block rarely spans two classes
    order = by_score[torch.sort(classes[by_score], stable=True).indices]  # [N]
    kept = order[_greedy(boxes[order], iou_threshold, classes[order], block_size)]  # [K]
    kept = kept.sort().values  # index order first, so that equal scores keep lower index first
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_outputs(
    loc: Tensor, logits: Tensor, priors: Tensor, score_threshold: float, candidates_per_class: int
) -> None:
    _check_boxes("loc", loc, ndim=3)
    _check_boxes("priors", priors, ndim=2)
    if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != loc.shape[:2]:
        got = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"logits must have shape [B, P, C] with [B, P] = {list(loc.shape[:2])}, got {got}"
        )
    if logits.shape[2] < 2:
        raise ValueError(
            f"logits needs C >= 2 classes (background + objects), got {logits.shape[2]}"
        )
    if priors.shape[0] != loc.shape[1]:
        raise ValueError(
            f"priors must have shape [P, 4] with P = {loc.shape[1]}, got {list(priors.shape)}"
        )
    _check_threshold("score_threshold", score_threshold)
    _check_positive_int("candidates_per_class", candidates_per_class)


def _ranked(
    loc: Tensor, logits: Tensor, priors: Tensor, candidates_per_class: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Decoded boxes ``[B, P, 4]`` xyxy, and per class the best scores ``[B, C-1, top]`` in
    descending order (ties: lower default-box index first) with their default boxes' indices."""
    boxes = decode(loc, priors)  # [B, P, 4] xyxy
    scores = torch.softmax(logits, dim=-1)[..., 1:].transpose(1, 2)  # [B, C-1, P], no background
    # the best boxes of each class (topk: much cheaper than sorting all P scores; boxes tied exactly
    # at the cut are chosen by topk), then ordered by score, ties to the lower default-box index
    top = min(candidates_per_class, scores.shape[2])
    prior_idx = torch.topk(scores, top, dim=2).indices.sort(dim=2).values  # [B, C-1, top]
    ranked = scores.gather(2, prior_idx)  # [B, C-1, top]
    ranked, order = torch.sort(ranked, dim=2, descending=True, stable=True)  # [B, C-1, top]
    return boxes, ranked, prior_idx.gather(2, order)


def score_candidates(
    loc: Tensor,
    logits: Tensor,
    priors: Tensor,
    score_threshold: float = 0.01,
    candidates_per_class: int = 400,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The first half of :func:`detect`: decoded, scored boxes per class, before any NMS.

    For every image: decode the offsets, softmax over classes, drop the background; for each object
    class keep the default boxes whose score is greater than ``score_threshold``, at most the
    ``candidates_per_class`` best of them. A default box can appear once per class.

    Args:
        loc: ``[B, P, 4]`` predicted offsets (default-box order).
        logits: ``[B, P, C]`` class scores before softmax; class 0 is the background.
        priors: ``[P, 4]`` cxcywh default boxes.
        score_threshold: class scores at or below this are dropped (paper: 0.01).
        candidates_per_class: boxes per class kept (released models: 400).

    Returns:
        One ``(boxes [M, 4] xyxy, scores [M], labels [M] long in 1..C-1)`` per image, grouped by
        class (label 1 first) and by score within a class, highest first (equal scores: lower
        default-box index first); ``M = 0`` when nothing passes.

    Paper: §3.7 (the 0.01 confidence filter before NMS).
    """
    _check_outputs(loc, logits, priors, score_threshold, candidates_per_class)

    boxes, ranked, prior_idx = _ranked(loc, logits, priors, candidates_per_class)
    labels = torch.arange(1, ranked.shape[1] + 1, device=loc.device)[:, None].expand_as(ranked[0])

    results = []
    for b in range(loc.shape[0]):  # images keep different numbers of candidates
        passing = ranked[b] > score_threshold  # [C-1, top]
        cand_boxes = boxes[b][prior_idx[b][passing]]  # [M, 4]
        results.append((cand_boxes, ranked[b][passing], labels[passing]))  # [M, 4], [M], [M]
    return results


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
    """SSD's detection output: decode, score, per-class NMS, best ``top_k`` per image.

    For every image: :func:`score_candidates` (softmax over classes; for each object class the
    default boxes whose score is greater than ``score_threshold``, at most the
    ``candidates_per_class`` best of them); suppress per class with :func:`batched_nms`; keep the
    ``top_k`` best survivors of all classes. Each NMS call sees at most
    ``(C - 1) x candidates_per_class`` boxes and decides them ``BLOCK_SIZE`` at a time, so no
    overlap matrix over all of them is ever built.

    ``all_at_once`` computes the same detections another way: every class of every image at
    once, one overlap matrix per class (at most ``candidates_per_class`` squared), the greedy rule
    solved for all of them together as :func:`nms` solves one block. It does more arithmetic but
    needs only a few host-device synchronisations instead of several per block and image, which
    is what costs time on a GPU; the default (``None``) uses it everywhere except on the CPU.

    Args:
        loc: ``[B, P, 4]`` predicted offsets (default-box order).
        logits: ``[B, P, C]`` class scores before softmax; class 0 is the background.
        priors: ``[P, 4]`` cxcywh default boxes.
        score_threshold: class scores at or below this are dropped (paper: 0.01).
        iou_threshold: NMS overlap threshold (paper: 0.45).
        top_k: detections kept per image (paper: 200).
        candidates_per_class: boxes per class that enter NMS (released models: 400).
        all_at_once: the method (the result is the same): ``True`` all classes and images
            together, ``False`` image by image, ``None`` together unless on the CPU.

    Returns:
        One ``(boxes [K, 4] xyxy, scores [K], labels [K] long in 1..C-1)`` per image, highest score
        first, ``K <= top_k``; ``K = 0`` (tensors of shapes ``[0, 4]``, ``[0]``, ``[0]``) for an
        image with no detection.

    Paper: §3.7 (0.01 filter, NMS at 0.45 per class, top 200 per image).
    """
    _check_threshold("iou_threshold", iou_threshold)
    _check_positive_int("top_k", top_k)
    if all_at_once is None:
        all_at_once = loc.device.type != "cpu"
    if all_at_once:
        _check_outputs(loc, logits, priors, score_threshold, candidates_per_class)
        return _detect_all_at_once(
            loc, logits, priors, score_threshold, iou_threshold, top_k, candidates_per_class
        )
    candidates = score_candidates(loc, logits, priors, score_threshold, candidates_per_class)
    results = []
    for cand_boxes, cand_scores, cand_labels in candidates:
        keep = batched_nms(cand_boxes, cand_scores, cand_labels, iou_threshold)[:top_k]  # [K]
        results.append((cand_boxes[keep], cand_scores[keep], cand_labels[keep]))
    return results


# overlap entries per chunk of images in _detect_all_at_once: a few hundred MB of temporaries
_MAX_PAIRS = 2**25


def _detect_all_at_once(
    loc: Tensor,
    logits: Tensor,
    priors: Tensor,
    score_threshold: float,
    iou_threshold: float,
    top_k: int,
    candidates_per_class: int,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`detect` for all classes of all images together (see its docstring)."""
    boxes, ranked, prior_idx = _ranked(loc, logits, priors, candidates_per_class)
    batch, num_objects = ranked.shape[:2]
    passing = ranked > score_threshold  # [B, C-1, top]
    n = int(passing.sum(2).amax()) if passing.numel() else 0  # candidates of the fullest class
    ranked, prior_idx, passing = ranked[..., :n], prior_idx[..., :n], passing[..., :n]
    cand = boxes.gather(1, prior_idx.reshape(batch, -1, 1).expand(-1, -1, 4))  # [B, (C-1) n, 4]
    cand = cand.view(batch, num_objects, n, 4)  # [B, C-1, n, 4]
    threshold = _threshold_for(boxes.dtype, iou_threshold)
    keep = torch.zeros_like(passing)  # [B, C-1, n]
    chunk = max(1, _MAX_PAIRS // max(1, num_objects * n * n))  # images per chunk
    for start in range(0, batch, chunk):
        part = slice(start, start + chunk)
        # a box only suppresses lower-ranked ones of its class: the part above the diagonal
        over = torch.triu(box_iou(cand[part], cand[part]) > threshold, 1)  # [b, C-1, n, n]
        keep[part] = _resolve_block(over, passing[part])
    # the best top_k survivors of each image; a stable sort over (class, rank) order keeps equal
    # scores in the order batched_nms gives them
    score = torch.where(keep, ranked, torch.full_like(ranked, -1.0)).view(batch, -1)  # [B, (C-1) n]
    order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :top_k]  # [B, K']
    counts = keep.view(batch, -1).sum(1).clamp(max=top_k).tolist()  # one sync for all images
    labels = torch.arange(1, num_objects + 1, device=loc.device).repeat_interleave(n)  # [(C-1) n]
    flat = cand.view(batch, -1, 4)  # [B, (C-1) n, 4]
    results = []
    for b, k in enumerate(counts):  # slicing only: images keep different numbers of detections
        pick = order[b, :k]  # [K]
        results.append((flat[b, pick], score[b, pick], labels[pick]))
    return results
