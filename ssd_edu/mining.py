"""Hard negative mining: which background default boxes the confidence loss looks at (§2.2).

After matching, almost every default box is background: on a typical image a few dozen of SSD300's
8732 boxes are positives and the rest are negatives. Summing the confidence loss over all of them
would let the easy background boxes drown the few objects, and the classifier would learn to
answer "background" everywhere. SSD therefore keeps, in each image, only the negatives the
network currently gets most wrong (the highest confidence loss), at most ``neg_pos_ratio``
(3 in the paper) for every positive of that image.

Shapes: ``conf_loss`` and ``positive`` are ``[B, P]`` (``B`` images, ``P`` default boxes); the
answer is a ``[B, P]`` bool mask of the chosen negatives. The work is one sort per row, done for
the whole batch at once; there is no loop over images.

Paper: §2.2 "Hard negative mining".
"""

from __future__ import annotations

import torch
from torch import Tensor


def hard_negative_mask(conf_loss: Tensor, positive: Tensor, neg_pos_ratio: float = 3) -> Tensor:
    """Choose, per image, the negatives with the highest confidence loss, 3 per positive.

    Image ``b`` with ``n_b`` positives and ``m_b = P - n_b`` negatives gets
    ``min(floor(neg_pos_ratio * n_b), m_b)`` negatives: the ratio is applied per image (an image
    full of objects does not lend negatives to an empty one), capped by the negatives it has.
    An image without positives therefore chooses no negatives at all.

    Tie rule: negatives with equal loss are taken in default-box order, lower index first (the
    sort is stable), so the mask is the same on every run and every device.

    Args:
        conf_loss: ``[B, P]`` per-box confidence loss (softmax cross-entropy against the target,
            background for negatives); any finite floats. Only its order matters, so pass it
            detached: the mask is not differentiable.
        positive: ``[B, P]`` bool, True where the default box is matched to an object.
        neg_pos_ratio: negatives kept per positive, ``>= 0`` (3 in the paper).

    Returns:
        ``[B, P]`` bool, True for the chosen negatives; never True where ``positive`` is.

    Paper: §2.2 "Hard negative mining" (ratio at most 3:1).
    """
    if not isinstance(conf_loss, Tensor) or conf_loss.ndim != 2:
        got = list(conf_loss.shape) if isinstance(conf_loss, Tensor) else type(conf_loss).__name__
        raise ValueError(f"conf_loss must have shape [B, P], got {got}")
    if not conf_loss.is_floating_point():
        raise TypeError(f"conf_loss must be a floating-point tensor, got dtype {conf_loss.dtype}")
    if not isinstance(positive, Tensor) or positive.shape != conf_loss.shape:
        got = list(positive.shape) if isinstance(positive, Tensor) else type(positive).__name__
        raise ValueError(
            f"positive must have the shape of conf_loss {list(conf_loss.shape)}, got {got}"
        )
    if positive.dtype != torch.bool:
        raise TypeError(f"positive must be a bool tensor, got dtype {positive.dtype}")
    if not isinstance(neg_pos_ratio, (int, float)) or isinstance(neg_pos_ratio, bool):
        raise TypeError(f"neg_pos_ratio must be a number >= 0, got {neg_pos_ratio!r}")
    if not neg_pos_ratio >= 0:
        raise ValueError(f"neg_pos_ratio must be a number >= 0, got {neg_pos_ratio!r}")

    num_pos = positive.sum(dim=1)  # [B]
    num_neg = torch.minimum(
        (num_pos * neg_pos_ratio).floor().long(), positive.shape[1] - num_pos
    )  # [B]: the 3:1 ratio, capped by the negatives the image has

    # positives sink to the bottom of the ranking, below every finite loss
    ranked_loss = conf_loss.detach().masked_fill(positive, float("-inf"))  # [B, P]
    _, order = ranked_loss.sort(dim=1, descending=True, stable=True)  # [B, P] box index by rank
    ranks = torch.arange(positive.shape[1], device=positive.device)  # [P]
    chosen_by_rank = ranks[None, :] < num_neg[:, None]  # [B, P]: the first num_neg ranks
    # back from rank order to box order: box order[b, r] is chosen iff rank r is
    mask = torch.zeros_like(positive).scatter(1, order, chosen_by_rank)  # [B, P]
    # positives rank last, so this only matters if a negative's loss is -inf: keep the promise
    return mask & ~positive
