"""Lesson tools for looking inside an SSD: its layer table, receptive fields, frozen features.

Not part of detection itself: :func:`layer_table` lists every convolution, pooling and L2Norm with
its output shape and parameter count (the VGG layers under their paper names, conv4_3, fc6, ...),
:func:`receptive_fields` gives the theoretical receptive field of a prediction on each source map
(to compare with the default-box scales of §2.2), :func:`input_gradient` measures the effective
one (the input gradient of one prediction), and :func:`freeze_features` swaps the backbone
for a :class:`FixedFeatures` holding maps computed once, so a lesson trains the heads alone (§2.1).

Shapes: source maps ``[B, C_k, f_k, f_k]``, largest first; ``layer_table`` rows give ``[C, H, W]``
for one image of side ``model.cfg.image_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ssd_edu.model.backbones import VGG16_CONV_NAMES, L2Norm
from ssd_edu.model.ssd import SSD, _dry_run


class FixedFeatures(nn.Module):
    """A stand-in backbone that hands back source maps computed once, whatever the input.

    Lets a lesson train only the heads of an SSD quickly: the backbone's work is done once, and
    every later forward pass starts from the stored maps (the images passed in are ignored).

    Args:
        maps: the source maps, largest first, each ``[B, C_k, f_k, f_k]``.
        out_channels: ``C_k`` per map, as the replaced backbone's ``out_channels``.
    """

    def __init__(self, maps: Sequence[Tensor], out_channels: Sequence[int]) -> None:
        super().__init__()
        self.maps = list(maps)
        self.out_channels = tuple(out_channels)

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.maps


def freeze_features(model: SSD, images: Tensor, batch_statistics: bool = True) -> list[Tensor]:
    """Run ``model.backbone`` once on ``images`` and swap it for a :class:`FixedFeatures`.

    Afterwards ``model(images)`` costs only the heads, and ``model.parameters()`` are the heads'
    alone (the stored maps carry no gradient), so an optimiser built then trains the heads only.

    Args:
        model: an SSD (its backbone is replaced in place).
        images: ``[B, 3, H, W]`` the batch whose maps are kept.
        batch_statistics: run the backbone in train mode (batch-norm layers use the batch's own
            statistics, so a freshly initialised backbone gives maps of about unit scale), then
            leave the old backbone in eval mode. ``False``: run it in its current mode.

    Returns:
        The stored source maps, largest first, each ``[B, C_k, f_k, f_k]``.

    Paper: §2.1 (the heads read the backbone's source maps; here the maps are held fixed).
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape [B, 3, H, W], got {got}")
    backbone = model.backbone
    if batch_statistics:
        backbone.train()
    with torch.no_grad():
        maps = list(backbone(images))  # [B, C_k, f_k, f_k] per map
    if batch_statistics:
        backbone.eval()
    model.backbone = FixedFeatures(maps, backbone.out_channels)
    return maps


def receptive_fields(model: SSD) -> list[int]:
    """The theoretical receptive field, in input pixels, of one prediction on each source map.

    Walks the backbone's convolutions and poolings in the order they are registered (which is the
    order they run), with ``rf += (kernel_eff - 1) * jump`` and ``jump *= stride``, where
    ``kernel_eff = dilation * (kernel - 1) + 1``; the 3x3 head adds one more step on top.

    Args:
        model: an SSD whose backbone has ``source_names``.

    Returns:
        One receptive-field side per source map, in pixels of the input.

    Paper: §2.2 (default boxes need not match the receptive fields; this lets you compare them).
    """
    names = getattr(model.backbone, "source_names", None)
    if not names:
        raise ValueError("model.backbone has no source_names: cannot tell where each map is taken")
    rf, jump, found = 1, 1, {}
    for name, m in model.backbone.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, d = (_pair(m.kernel_size), _pair(m.stride), _pair(m.dilation))
            rf += (d * (k - 1) + 1 - 1) * jump
            jump *= s
            if name in names:
                found[name] = rf + 2 * jump  # the 3x3 head on top of this map
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"source layers {missing} not found among the backbone's modules")
    return [found[n] for n in names]


def _pair(v: int | tuple[int, ...]) -> int:
    return v if isinstance(v, int) else v[0]


def _paper_name(name: str) -> str:
    """``backbone.vgg.21`` -> ``conv4_3``, ``backbone.extras.0.2`` -> ``conv8_2``, and so on."""
    parts = name.split(".")
    if name.startswith("backbone.vgg."):
        idx = int(parts[2])
        pools = {4: "pool1", 9: "pool2", 16: "pool3", 23: "pool4", 30: "pool5"}
        return VGG16_CONV_NAMES.get(idx) or pools.get(idx, f"vgg.{idx}")
    if name.startswith("backbone.extras."):
        return f"conv{8 + int(parts[2])}_{1 if parts[3] == '0' else 2}"
    if name == "backbone.l2norm":
        return "conv4_3 L2Norm"
    if parts[0] in ("loc_heads", "conf_heads"):
        return f"{parts[0][:-6]} head, map {parts[1]}"
    return name.removeprefix("backbone.")


def layer_table(model: SSD, image_size: int | None = None) -> list[dict]:
    """Every convolution, pooling and L2Norm of ``model`` with its output shape and parameter count.

    Args:
        model: an SSD.
        image_size: side of the dry-run input (default ``model.cfg.image_size``).

    Returns:
        Rows ``{"name", "layer", "out_shape" [C, H, W], "params"}`` in the order the layers run;
        the VGG layers carry their paper names (conv4_3, fc6, ...).
    """
    rows: list[dict] = []
    names = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, L2Norm)):
            names[m] = name

    def hook(m: nn.Module, _inp, out: Tensor) -> None:
        name = names[m]
        label = _paper_name(name)
        params = sum(p.numel() for p in m.parameters())
        rows.append(
            {"name": label, "layer": m.__class__.__name__, "out_shape": list(out.shape[1:]),
             "params": params}
        )  # fmt: skip

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        _dry_run(model, image_size or model.cfg.image_size)
    finally:
        for h in handles:
            h.remove()
    return rows


def input_gradient(model: SSD, image_size: int | None = None, seed: int = 0) -> Tensor:
    """How strongly each input pixel drives one prediction of source map 0 (conv4_3).

    Runs a seeded random image through VGG16 up to conv4_3, the L2Norm and map 0's two heads, and
    differentiates the sum of the heads' outputs at the map's centre cell with respect to the
    image. The gradient is zero outside the theoretical receptive field (:func:`receptive_fields`);
    where it is large is the *effective* receptive field, which is much smaller.

    Args:
        model: an SSD on the VGG16 backbone (its weights are used as they are; nothing is updated).
        image_size: side of the random image (default ``model.cfg.image_size``); smaller is faster.
        seed: seed of the random image.

    Returns:
        ``[S, S]`` absolute gradient, summed over the colour channels.

    Paper: §2.2 (receptive fields and default boxes); the measure follows Luo et al. 2016.
    """
    from ssd_edu.model.backbones import _CONV4_3_RELU

    size = image_size or model.cfg.image_size
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, size, size, generator=g).requires_grad_(True)  # [1, 3, S, S]
    backbone = model.backbone
    with torch.enable_grad():
        x = backbone.l2norm(backbone.vgg[: _CONV4_3_RELU + 1](image))  # [1, 512, f, f]
        out = torch.cat((model.loc_heads[0](x), model.conf_heads[0](x)), dim=1)  # [1, (c+4)k, f, f]
        centre = out.shape[-1] // 2
        (grad,) = torch.autograd.grad(out[0, :, centre, centre].sum(), image)
    return grad[0].abs().sum(0)  # [S, S]


def mass_side(grad: Tensor, fraction: float = 0.9) -> int:
    """Side, in pixels, of the smallest square around the peak holding ``fraction`` of ``grad``.

    Args:
        grad: ``[S, S]`` non-negative map (e.g. :func:`input_gradient`).
        fraction: share of the total to enclose.

    Returns:
        The odd side ``2 r + 1`` of the square centred on the largest entry.
    """
    cy, cx = divmod(int(grad.argmax()), grad.shape[1])
    total = float(grad.sum())
    for r in range(max(grad.shape)):
        window = grad[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1]
        if float(window.sum()) >= fraction * total:
            return 2 * r + 1
    return 2 * max(grad.shape) + 1


def support_side(grad: Tensor) -> int:
    """Side of the bounding square of the non-zero entries of ``grad`` ``[S, S]`` (0 if none)."""
    ys, xs = torch.nonzero(grad > 0, as_tuple=True)
    if len(ys) == 0:
        return 0
    return int(max(ys.max() - ys.min(), xs.max() - xs.min())) + 1
