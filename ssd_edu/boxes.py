"""Boxes: the two formats SSD uses, jaccard overlap, and the offset encoding of section 2.2.

Ground-truth boxes and detections are corners ``(x1, y1, x2, y2)`` ("xyxy"); default boxes are
centre and size ``(cx, cy, w, h)`` ("cxcywh"). Both are fractions of the image width and height,
so one set of default boxes serves any input resolution. Every function takes ``[..., 4]`` float
tensors and follows its inputs' device and dtype.

Paper: §2.2 "Matching strategy" (jaccard overlap) and eq. 2 (the offsets ``g_hat``). The
variances ``(0.1, 0.2)`` are not in the paper's equation; they come from the released Caffe
models, which divide the offsets by them so that both regression targets have about unit scale.
"""

from __future__ import annotations

import torch
from torch import Tensor

VARIANCES: tuple[float, float] = (0.1, 0.2)


def _check_boxes(name: str, boxes: Tensor, ndim: int | None = None) -> None:
    """Raise a clear error unless ``boxes`` is a floating ``[..., 4]`` tensor (of ``ndim`` dims)."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {list(boxes.shape)}")
    if ndim is not None and boxes.ndim != ndim:
        want = "[N, 4]" if ndim == 2 else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {want}, got {list(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {boxes.dtype}")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """Corners to centre and size.

    Args:
        boxes: ``[..., 4]`` xyxy.

    Returns:
        ``[..., 4]`` cxcywh.
    """
    _check_boxes("boxes", boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """Centre and size to corners.

    Args:
        boxes: ``[..., 4]`` cxcywh.

    Returns:
        ``[..., 4]`` xyxy.
    """
    _check_boxes("boxes", boxes)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Area of xyxy boxes; an inverted box (x2 < x1) counts as area 0, never negative.

    Args:
        boxes: ``[..., 4]`` xyxy.

    Returns:
        ``[...]`` areas.
    """
    _check_boxes("boxes", boxes)
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou_paired(a: Tensor, b: Tensor) -> Tensor:
    """Jaccard overlap of paired boxes: ``a[..., n]`` with ``b[..., n]``, shapes broadcasting.

    ``J(A, B) = |A ∩ B| / |A ∪ B|``. A pair whose union is empty (two zero-area boxes) gives 0,
    not NaN, so degenerate boxes can never poison matching, NMS or evaluation (NaN coordinates
    do give NaN: the callers refuse them). This is the one overlap formula of the package:
    :func:`box_iou` is this function on all pairs, and NMS and evaluation call it on the pairs
    they need.

    Args:
        a: ``[..., 4]`` xyxy.
        b: ``[..., 4]`` xyxy, broadcastable with ``a`` (``[N, 1, 4]`` and ``[1, M, 4]`` give all
            ``N x M`` pairs).

    Returns:
        ``[...]`` overlaps in ``[0, 1]``, the broadcast shape of ``a`` and ``b`` without the 4.

    Paper: §2.2 "Matching strategy" (jaccard overlap).
    """
    _check_boxes("a", a)
    _check_boxes("b", b)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"a {list(a.shape)} and b {list(b.shape)} do not broadcast") from None
    # each coordinate as its own contiguous tensor, so that every step reads unit strides
    return _iou(a.movedim(-1, 0).contiguous(), b.movedim(-1, 0).contiguous())


def _iou(a: Tensor, b: Tensor) -> Tensor:
    """:func:`box_iou_paired` on coordinates-first tensors ``[4, ...]`` (rows x1, y1, x2, y2),
    without input checks: for NMS, which keeps its boxes that way and calls it many times."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    # disjoint boxes overlap by 0, hence the clamps (in place: these are fresh temporaries)
    w = torch.minimum(ax2, bx2).sub_(torch.maximum(ax1, bx1)).clamp_(min=0)
    h = torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1)).clamp_(min=0)
    inter = w.mul_(h)
    area_a = (ax2 - ax1).clamp_(min=0).mul_((ay2 - ay1).clamp_(min=0))  # box_area's arithmetic
    area_b = (bx2 - bx1).clamp_(min=0).mul_((by2 - by1).clamp_(min=0))
    union = (area_a + area_b).sub_(inter)
    # an empty union has an empty intersection: divide 0 by 1 there instead of 0 by 0 (clamping
    # the union at a floor instead would distort tiny but nonzero unions)
    return inter.div_(union.masked_fill_(union <= 0, 1.0))


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Jaccard overlap (intersection over union) of every box in ``a`` with every box in ``b``.

    Leading batch dimensions broadcast, so a batch of padded ground truths ``[B, G, 4]`` against
    the default boxes ``[P, 4]`` gives ``[B, G, P]`` in one call. Empty unions give 0 (see
    :func:`box_iou_paired`, which this is on every pair).

    Args:
        a: ``[..., N, 4]`` xyxy.
        b: ``[..., M, 4]`` xyxy.

    Returns:
        ``[..., N, M]`` overlaps in ``[0, 1]``.

    Paper: §2.2 (matching by jaccard overlap); also the overlap used by NMS at test time.
    """
    _check_boxes("a", a)
    _check_boxes("b", b)
    for name, t in (("a", a), ("b", b)):
        if t.ndim < 2:
            raise ValueError(f"{name} must have shape [N, 4] (or [..., N, 4]), got {list(t.shape)}")
    try:
        torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"batch dimensions of a {list(a.shape)} and b {list(b.shape)} do not broadcast"
        ) from None
    # all pairs: coordinates-first [4, ..., N, 1] against [4, ..., 1, M] (checked above)
    return _iou(
        a[..., :, None, :].movedim(-1, 0).contiguous(),
        b[..., None, :, :].movedim(-1, 0).contiguous(),
    )


def encode(matched: Tensor, priors: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """Offsets of matched ground truth from their default boxes: the targets ``g_hat``.

    ``g_cx = (c_gt - c_prior) / (v0 * w_prior)``, ``g_cy`` likewise with heights,
    ``g_w = log(w_gt / w_prior) / v1``, ``g_h`` likewise.

    Args:
        matched: ``[..., P, 4]`` xyxy, the ground truth assigned to each default box.
        priors: ``[P, 4]`` cxcywh default boxes.
        variances: ``(v0, v1)``, the scale of the centre and size offsets.

    Returns:
        ``[..., P, 4]`` offsets.

    Paper: §2.2, eq. 2 (with the released models' variances).
    """
    _check_boxes("matched", matched)
    _check_boxes("priors", priors, ndim=2)
    gt = xyxy_to_cxcywh(matched)
    g_centre = (gt[..., :2] - priors[:, :2]) / (variances[0] * priors[:, 2:])
    # a zero-size ground truth would give log(0) = -inf; such boxes are rejected before matching
    g_size = torch.log(gt[..., 2:] / priors[:, 2:]) / variances[1]
    return torch.cat((g_centre, g_size), dim=-1)


def decode(loc: Tensor, priors: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """Boxes from predicted offsets: the inverse of :func:`encode`.

    Args:
        loc: ``[..., P, 4]`` offsets (network output or encoded targets).
        priors: ``[P, 4]`` cxcywh default boxes.
        variances: ``(v0, v1)``, as in :func:`encode`.

    Returns:
        ``[..., P, 4]`` xyxy boxes, fractions of the image (not clipped).

    Paper: §2.2, eq. 2 inverted.
    """
    _check_boxes("loc", loc)
    _check_boxes("priors", priors, ndim=2)
    centre = priors[:, :2] + loc[..., :2] * variances[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    return cxcywh_to_xyxy(torch.cat((centre, size), dim=-1))
