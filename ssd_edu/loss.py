"""The MultiBox loss: Smooth L1 on the offsets of positives, softmax loss on chosen boxes (§2.2).

For one batch, with ``x`` the matching (which default box is matched to which object), ``c`` the
class scores, ``l`` the predicted offsets and ``g`` the ground truth:

    L(x, c, l, g) = (L_conf(x, c) + alpha * L_loc(x, l, g)) / N                    (paper eq. 1)

* ``L_loc`` (eq. 2) sums Smooth L1 over the four offsets ``(cx, cy, w, h)`` of every positive
  default box; the targets ``loc_t`` are the encoded offsets of ``ssd_edu.boxes.encode``.
  Background boxes have nothing to localise and add nothing.
* ``L_conf`` (eq. 3) sums the softmax cross-entropy over the positives (against their class) and
  over the negatives chosen by hard negative mining (against background, class 0), see
  :mod:`ssd_edu.mining`. Mining ranks boxes by this same per-box loss, taken without gradient.
* ``N`` is the number of positives **in the whole batch** (Caffe's ``VALID`` normalisation, also
  what the paper's code and most ports do); when ``N = 0`` the loss is 0.

Shapes: ``loc``, ``loc_t`` ``[B, P, 4]``; ``logits`` ``[B, P, C]`` with ``C = num_classes``
(background included); ``cls_t`` ``[B, P]`` long, 0 for background. All three results are
float32 scalars for float16/bfloat16/float32 inputs (float64 for float64 inputs): the loss is
computed in at least float32, also under autocast.

Paper: §2.2 "Training objective", eqs. 1-3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssd_edu.mining import hard_negative_mask


def smooth_l1(x: Tensor, beta: float = 1.0) -> Tensor:
    """Smooth L1, element-wise: quadratic near 0, linear beyond ``beta``.

    ``0.5 * x**2 / beta`` where ``|x| < beta``, else ``|x| - 0.5 * beta``. Near 0 it behaves like
    L2 (the gradient fades as the prediction gets close); far away like L1 (the gradient stays
    at +-1, so a badly placed box cannot produce a huge update).

    Args:
        x: any shape, the differences prediction - target.
        beta: where the quadratic part hands over to the linear part (1 in the paper).

    Returns:
        The loss, shape of ``x``.

    Paper: §2.2, eq. 2 (Smooth L1, from Fast R-CNN).
    """
    return F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none", beta=beta)


def confidence_loss_per_box(logits: Tensor, cls_t: Tensor) -> Tensor:
    """Softmax cross-entropy of every default box against its target class, in >= float32.

    ``-log softmax(logits)[cls_t]``, through ``log_softmax`` so that logits of 1e4 neither
    overflow nor turn into NaN.

    Args:
        logits: ``[B, P, C]`` class scores (any floating dtype).
        cls_t: ``[B, P]`` long targets, 0 = background.

    Returns:
        ``[B, P]``, ``>= 0``; float32 (float64 for float64 logits).

    Paper: §2.2, eq. 3 (the softmax loss, one term per box).
    """
    B, P, C = logits.shape
    logits = logits.to(_at_least_float32(logits.dtype))  # half precision would lose digits
    ce = F.cross_entropy(logits.reshape(B * P, C), cls_t.reshape(B * P), reduction="none")
    return ce.view(B, P)  # [B, P]


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 -> float32; float32 and float64 unchanged."""
    return torch.promote_types(dtype, torch.float32)


def _check_inputs(
    loc: Tensor, logits: Tensor, loc_t: Tensor, cls_t: Tensor, check_values: bool = True
) -> None:
    for name, t in (("loc", loc), ("logits", logits), ("loc_t", loc_t), ("cls_t", cls_t)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if loc.ndim != 3 or loc.shape[-1] != 4:
        raise ValueError(f"loc must have shape [B, P, 4], got {list(loc.shape)}")
    B, P = loc.shape[:2]
    if logits.ndim != 3 or logits.shape[:2] != (B, P) or logits.shape[-1] < 2:
        raise ValueError(
            f"logits must have shape [B, P, C] = [{B}, {P}, C] with C >= 2 (background and at "
            f"least one class), got {list(logits.shape)}"
        )
    if loc_t.shape != loc.shape:
        raise ValueError(
            f"loc_t must have the shape of loc {list(loc.shape)}, got {list(loc_t.shape)}"
        )
    if cls_t.shape != (B, P):
        raise ValueError(f"cls_t must have shape [B, P] = [{B}, {P}], got {list(cls_t.shape)}")
    for name, t in (("loc", loc), ("logits", logits), ("loc_t", loc_t)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if cls_t.dtype != torch.long:
        raise TypeError(f"cls_t must be a long (int64) tensor, got dtype {cls_t.dtype}")
    if check_values and cls_t.numel():
        # reading the range back waits for the GPU: a training loop that checked its labels
        # already can turn this off (check_targets=False) and keep the GPU's queue full
        lo, hi = (int(v) for v in torch.aminmax(cls_t))
        C = logits.shape[-1]
        if lo < 0 or hi >= C:
            raise ValueError(
                f"cls_t values must be class indices in [0, {C - 1}] (0 = background), "
                f"got values from {lo} to {hi}"
            )


class MultiBoxLoss(nn.Module):
    """SSD's training loss: ``(L_conf + alpha * L_loc) / N``, with hard negative mining.

    **How N is counted.** ``N`` is the number of positive default boxes summed over every image
    of the batch, and both sums (over boxes and over images) are divided by that one number.
    Each matched box therefore weighs the same, whichever image it comes from. Dividing each
    image by its own ``N_b`` and averaging over images would instead give a lone object in a
    sparse image as much weight as twenty objects in a crowded one, and would be undefined for
    an image with no objects. The two agree only when every image has the same number of
    positives. As a consequence the batch loss equals ``sum_b loss_b * N_b / N``, where ``loss_b``
    is the loss of image ``b`` alone.

    **N = 0** (no image has a positive): no box is chosen by mining, both sums are empty, and
    the loss is exactly 0 with zero (finite) gradients; we divide by ``max(N, 1)``, never by 0.

    Args:
        neg_pos_ratio: negatives kept per positive in each image (3 in the paper). ``None``
            turns mining off and uses every negative (for the ablation in notebook 03).
        alpha: weight of the localisation part (1 in the paper, chosen by cross-validation).
        check_targets: check that every ``cls_t`` value is a class index (one read-back, so one
            wait for the GPU per call); shapes and dtypes are always checked.

    Forward args:
        loc: ``[B, P, 4]`` predicted offsets.
        logits: ``[B, P, C]`` class scores, background is class 0.
        loc_t: ``[B, P, 4]`` target offsets (only positives' rows are read).
        cls_t: ``[B, P]`` long target classes in ``[0, C - 1]``, 0 = background.

    Returns:
        ``(total, loc, conf)``, float32 scalars (float64 for float64 inputs), with ``loc``
        and ``conf`` already divided by ``N`` and ``total = conf + alpha * loc``.

    Paper: §2.2 "Training objective" (eqs. 1-3) and "Hard negative mining".
    """

    def __init__(
        self, neg_pos_ratio: float | None = 3, alpha: float = 1.0, check_targets: bool = True
    ) -> None:
        super().__init__()
        if neg_pos_ratio is not None and (
            isinstance(neg_pos_ratio, bool) or not neg_pos_ratio >= 0
        ):
            raise ValueError(f"neg_pos_ratio must be a number >= 0 or None, got {neg_pos_ratio!r}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.neg_pos_ratio = neg_pos_ratio
        self.alpha = alpha
        self.check_targets = check_targets

    def extra_repr(self) -> str:
        return f"neg_pos_ratio={self.neg_pos_ratio}, alpha={self.alpha}"

    def forward(
        self, loc: Tensor, logits: Tensor, loc_t: Tensor, cls_t: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        _check_inputs(loc, logits, loc_t, cls_t, check_values=self.check_targets)
        # at least float32 inside, whatever autocast chose for the network: a bf16 softmax over 21
        # classes and a bf16 sum over 8732 boxes would lose several digits of the loss
        with torch.autocast(device_type=loc.device.type, enabled=False):
            positive = cls_t > 0  # [B, P]
            num_pos = positive.sum()  # N, over the whole batch

            ce = confidence_loss_per_box(logits, cls_t)  # [B, P], >= float32
            if self.neg_pos_ratio is None:
                chosen = torch.ones_like(positive)  # [B, P]: every box, no mining
            else:
                negative = hard_negative_mask(ce.detach(), positive, self.neg_pos_ratio)
                chosen = positive | negative  # [B, P]
            # where, not multiply: a masked-out box must contribute exactly 0, even if inf
            conf_sum = torch.where(chosen, ce, 0.0).sum()

            dtype = _at_least_float32(loc.dtype)
            diff = loc.to(dtype) - loc_t.to(dtype)  # [B, P, 4]
            loc_per_box = smooth_l1(diff).sum(dim=-1)  # [B, P]
            loc_sum = torch.where(positive, loc_per_box, 0.0).sum()

            n = num_pos.clamp(min=1).to(ce.dtype)  # N = 0 leaves both sums 0; avoid 0 / 0
            loc_loss = loc_sum / n
            conf_loss = conf_sum / n
            total = conf_loss + self.alpha * loc_loss
        return total, loc_loss, conf_loss
