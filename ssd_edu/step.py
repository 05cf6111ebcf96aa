"""One training iteration of SSD: match, forward, loss, backward, SGD step.

Everything the earlier modules taught meets here, in the order the paper trains:

1. **match** every default box to an object or to background, and encode its regression target
   (:func:`ssd_edu.matching.assign_targets_batch`, §2.2 "Matching strategy", eq. 2);
2. **forward**: the network predicts offsets and class scores for every default box;
3. **loss**: ``(L_conf + alpha L_loc) / N`` with hard negative mining (:class:`ssd_edu.loss.
   MultiBoxLoss`, eqs. 1-3);
4. **backward** and one **SGD step** (§3: momentum 0.9, weight decay 5e-4).

One guard sits between backward and the step: a loss, gradient or batch-norm statistic that is NaN
or infinite stops training before the step reaches the weights, and a weight that overflows in the
step stops it before anything is saved. The error names what went wrong
(:class:`NonFiniteLossError`); the training loop adds the iteration and the images of the batch.

This is what the CPU training loop runs. On a GPU the same step runs through
:class:`ssd_edu.fast.engine.TrainEngine` (mixed precision, matching on a side stream, a guard that
never waits for the GPU), which a test holds equal to this function.

Shapes: ``images [B, 3, S, S]``; ``boxes`` and ``labels`` lists of ``[G_i, 4]`` xyxy fractions and
``[G_i]`` classes in 1..C; ``priors [P, 4]`` cxcywh.

Paper: §2.2 "Training" and §3 (training settings).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ssd_edu.matching import assign_targets_batch


class NonFiniteLossError(FloatingPointError):
    """Training stopped because something became NaN or infinite; the message says what and where.

    Attributes:
        what: the first value found not finite ("the loss", "the gradient of ...", ...).
        losses: ``[3]`` total, localisation and confidence loss of the step.
        tag: whatever the caller attached to the step (the loop: iteration and dataset indices).
    """

    def __init__(self, message: str, what: str = "", losses: Tensor | None = None, tag=None):
        super().__init__(message)
        self.what, self.losses, self.tag = what or message, losses, tag


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    images: Tensor,
    boxes: list[Tensor],
    labels: list[Tensor],
    priors: Tensor,
    iou_threshold: float = 0.5,
    assign: Callable[..., tuple[Tensor, Tensor]] = assign_targets_batch,
) -> Tensor:
    """One SGD iteration of the paper's training on one batch.

    Args:
        model: an SSD in training mode (returns ``loc [B, P, 4]`` and ``logits [B, P, C]``).
        optimizer: the SGD optimiser over ``model``'s parameters.
        criterion: :class:`~ssd_edu.loss.MultiBoxLoss`.
        images: ``[B, 3, S, S]`` normalised, on the model's device.
        boxes, labels: per-image ground truth (``[G_i, 4]`` xyxy fractions, ``[G_i]`` in 1..C).
        priors: ``[P, 4]`` cxcywh default boxes.
        iou_threshold: matching threshold (0.5 in the paper).
        assign: the batch matching (the reference by default; the training engine passes the
            fast one, which gives the same targets).

    Returns:
        ``[3]`` the total, localisation and confidence loss (detached).

    Raises:
        NonFiniteLossError: the loss, a gradient or a batch-norm statistic is not finite (the
            weights are left as they were), or a weight overflowed in the step.

    Paper: §2.2 "Training", eq. 1; §3 (SGD).
    """
    with torch.no_grad():  # targets are data, not something to differentiate
        loc_t, cls_t = assign(boxes, labels, priors, iou_threshold)  # [B, P, 4], [B, P]
    loc, logits = model(images)  # [B, P, 4], [B, P, C]
    total, loc_loss, conf_loss = criterion(loc, logits, loc_t, cls_t)
    losses = torch.stack((total, loc_loss, conf_loss)).detach()  # [3]
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    problem = first_non_finite(model, losses, gradients=True)  # before the step touches weights
    if problem is None:
        optimizer.step()
        problem = first_non_finite(model, None, gradients=False)  # did a weight overflow?
    if problem is not None:
        raise NonFiniteLossError(f"{problem} is not finite", what=problem, losses=losses)
    return losses


def first_non_finite(model: nn.Module, losses: Tensor | None, gradients: bool) -> str | None:
    """Name the first NaN or infinite value among the losses, gradients, weights and buffers.

    Args:
        model: the network (its parameters, their gradients and its buffers are looked at).
        losses: ``[3]`` total, localisation, confidence loss, or ``None`` to skip them.
        gradients: look at the gradients (before a step) or at the weights (after one).

    Returns:
        ``None`` when everything is finite, else e.g. ``"the loss (total=nan, loc=0.8, conf=nan)"``
        or ``"the gradient of backbone.vgg.0.weight"``.
    """
    if losses is not None and not bool(torch.isfinite(losses).all()):
        total, loc, conf = losses.tolist()
        return f"the loss (total={total}, loc={loc}, conf={conf})"
    # batch-norm statistics change in the forward pass, before any check could stop them
    named = [(f"the buffer {n} (batch-norm statistics)", b) for n, b in model.named_buffers()]
    for name, p in model.named_parameters():
        value = p.grad if gradients else p
        if value is not None:
            named.append((f"the {'gradient of' if gradients else 'weight'} {name}", value))
    named = [(what, t) for what, t in named if t.is_floating_point()]
    if not named:
        return None
    # the largest magnitude of each tensor: NaN or inf exactly when the tensor holds one (a sum
    # could overflow on large finite values); one fused call and one read-back for all of them
    finite = torch.isfinite(torch.stack(torch._foreach_norm([t for _, t in named], float("inf"))))
    if bool(finite.all()):
        return None
    return named[int(torch.nonzero(~finite)[0])][0]
