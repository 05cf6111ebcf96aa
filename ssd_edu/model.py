"""The SSD network: a base network, extra layers, and a small convolution per source map (§2.1).

SSD takes the feature maps of a classification network at several resolutions ("source maps")
and, on every cell of map ``k``, predicts for each of its ``k`` default boxes four offsets and
``c`` class scores with one 3x3 convolution of ``(c + 4) k`` filters (split here into a ``4k``
head and a ``ck`` head). The base network is VGG16 cut before its classifier (figure 2):

- pool5 becomes 3x3, stride 1, padding 1, so the resolution stays at conv5_3's;
- fc6 and fc7 become convolutions: fc6 a 3x3 atrous (dilation 6) convolution with 1024 filters,
  fc7 a 1x1 convolution with 1024 filters; :func:`load_vgg16_backbone` makes them from the
  classifier's weights by decimation;
- conv4_3 (38x38 at 300 px) is L2-normalised with a learned per-channel scale (:class:`L2Norm`),
  because its activations are larger than those of the deeper maps;
- extra layers (a 1x1 then a 3x3 convolution each) halve the resolution down to 1x1.

Input: ``images [B, 3, S, S]``, RGB in [0, 1], normalised by ``IMAGENET_MEAN`` / ``IMAGENET_STD``
(the torchvision convention), with ``S = cfg.image_size``.
Output: ``loc [B, P, 4]`` offsets (to be decoded with variances, see :mod:`ssd_edu.boxes`) and
``logits [B, P, num_classes]`` (class 0 is background), in DESIGN.md's default-box order: map by
map, then row ``i``, column ``j``, then the ``k`` boxes of the cell. That order is what reshaping a
head's output ``[B, k*4, f, f] -> [B, f, f, k*4] -> [B, f*f*k, 4]`` gives.

``ssd_small`` swaps VGG16 for a few conv/BN/ReLU blocks (128 x 128 inputs, about 1 M parameters) and
keeps everything else, so the CPU notebooks train the same heads, priors, matching and loss.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

# the data pipeline normalises images with these; the model (and conv1_1's conversion) agrees
from ssd_edu.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ssd_edu.priors import SSD128_SHAPES, SSD300_VOC, SSD512_VOC, PriorConfig, default_boxes

# The pixel means (B, G, R, on 0..255) that the Caffe-made reduced VGG16 subtracts from its input.
CAFFE_BGR_MEAN: tuple[float, float, float] = (104.0, 117.0, 123.0)

# VGG16 up to fc7 as a flat layer list. The indices 0..29 are torchvision's ``features.N`` and all
# indices are those of the popular PyTorch ports' reduced-VGG file ("0.weight" ... "33.weight").
# "M" is a 2x2 max-pool, "C" the same with ceil_mode (75 -> 38 at 300 px).
_VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
VGG16_CONV_NAMES = {
    0: "conv1_1", 2: "conv1_2", 5: "conv2_1", 7: "conv2_2",
    10: "conv3_1", 12: "conv3_2", 14: "conv3_3", 17: "conv4_1", 19: "conv4_2", 21: "conv4_3",
    24: "conv5_1", 26: "conv5_2", 28: "conv5_3", 31: "fc6", 33: "fc7",
}  # fmt: skip
_FC6, _FC7 = 31, 33
_CONV4_3_RELU = 22  # source 1 is taken after this layer (conv4_3 + ReLU)

# Extra layers: (1x1 channels, 3x3 channels, 3x3 stride, 3x3 padding, 3x3 kernel), one per source.
_EXTRAS_300 = ((256, 512, 2, 1, 3), (128, 256, 2, 1, 3), (128, 256, 1, 0, 3), (128, 256, 1, 0, 3))
_EXTRAS_512 = (
    (256, 512, 2, 1, 3),
    (128, 256, 2, 1, 3),
    (128, 256, 2, 1, 3),
    (128, 256, 2, 1, 3),
    (128, 256, 1, 1, 4),  # conv12_2: a 4x4 kernel turns the 2x2 map into 1x1
)


class L2Norm(nn.Module):
    """Scale each position's channel vector to unit length, then by a learned per-channel ``gamma``.

    ``y_c = gamma_c * x_c / ||x||_2`` (norm over channels at each position), ``gamma`` starting at
    ``scale`` (20 for conv4_3).

    Args:
        channels: number of channels ``C``.
        scale: initial value of every ``gamma_c``.

    Paper: §3.1 "PASCAL VOC2007" (conv4_3 normalisation, after ParseNet).
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # in float32 even under autocast: a sum of 512 squares overflows bf16's precision quickly
        x32 = x.float()  # [B, C, H, W]
        norm = x32.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps  # [B, 1, H, W]
        return (x32 / norm * self.weight.float()[None, :, None, None]).to(x.dtype)


def _vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _VGG16_PLAN:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif v == "C":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = v
    layers += [
        nn.MaxPool2d(3, stride=1, padding=1),  # pool5: keeps conv5_3's resolution
        nn.Conv2d(512, 1024, 3, padding=6, dilation=6),  # fc6, atrous
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 1),  # fc7
        nn.ReLU(inplace=True),
    ]
    return layers


class VGG16Backbone(nn.Module):
    """VGG16 to fc7 (reduced, atrous), L2Norm on conv4_3, and the extra layers.

    ``forward(images [B, 3, S, S])`` returns the source maps, largest first: conv4_3 (normalised),
    fc7, then the second convolution of each extra block.

    Args:
        extras: per extra block ``(c_1x1, c_3x3, stride, padding, kernel)``.

    Attributes:
        out_channels: channels of each source map.
        source_names: name of the convolution that ends each source (for tables, receptive fields).

    Paper: §2.1 and figure 2.
    """

    def __init__(self, extras: Sequence[tuple[int, int, int, int, int]] = _EXTRAS_300) -> None:
        super().__init__()
        # registered in the order they run: receptive_fields() relies on it
        self.vgg = nn.Sequential(*_vgg16_layers())
        self.l2norm = L2Norm(512, scale=20.0)
        blocks = []
        in_ch = 1024
        for c1, c3, stride, padding, kernel in extras:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, c1, 1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c1, c3, kernel, stride=stride, padding=padding),
                    nn.ReLU(inplace=True),
                )
            )
            in_ch = c3
        self.extras = nn.ModuleList(blocks)
        self.out_channels = (512, 1024, *(e[1] for e in extras))
        self.source_names = (
            "vgg.21",
            "vgg.33",
            *(f"extras.{n}.2" for n in range(len(extras))),
        )
        for block in self.extras:  # new layers, initialised as the released models do
            _xavier_init(block)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.vgg[: _CONV4_3_RELU + 1](images)  # [B, 512, 38, 38] at 300 px
        sources = [self.l2norm(x)]
        x = self.vgg[_CONV4_3_RELU + 1 :](x)  # [B, 1024, 19, 19]
        sources.append(x)
        for block in self.extras:
            x = block(x)  # halves (or trims) the resolution
            sources.append(x)
        return sources


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SmallBackbone(nn.Module):
    """A few plain conv/BN/ReLU blocks: the CPU stand-in for VGG16 (128 x 128 inputs).

    Three stride-2 stages take 128 px to a 16x16 map (the first source); each further block halves
    the resolution (stride 2, padding 1: ``f -> ceil(f / 2)``), giving 16, 8, 4, 2, 1 for five maps.

    Args:
        num_maps: number of source maps.
        width: channels of every source map.
    """

    def __init__(self, num_maps: int = 5, width: int = 128) -> None:
        super().__init__()
        if num_maps < 1:
            raise ValueError(f"num_maps must be at least 1, got {num_maps}")
        self.stem = nn.Sequential(
            _conv_bn_relu(3, 32, 2),  # 64 x 64
            _conv_bn_relu(32, 32, 1),
            _conv_bn_relu(32, 64, 2),  # 32 x 32
            _conv_bn_relu(64, 64, 1),
            _conv_bn_relu(64, width, 2),  # 16 x 16
            _conv_bn_relu(width, width, 1),
        )
        self.blocks = nn.ModuleList(_conv_bn_relu(width, width, 2) for _ in range(num_maps - 1))
        self.out_channels = (width,) * num_maps
        self.source_names = ("stem.5.0", *(f"blocks.{n}.0" for n in range(num_maps - 1)))

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.stem(images)  # [B, width, 16, 16] at 128 px
        sources = [x]
        for block in self.blocks:
            x = block(x)  # [B, width, ceil(f/2), ceil(f/2)]
            sources.append(x)
        return sources


def _xavier_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SSD(nn.Module):
    """The single-shot detector: a backbone's source maps, and two 3x3 heads per map.

    Args:
        cfg: the default boxes (``cfg.feature_maps`` must be the backbone's map sizes at
            ``cfg.image_size``; ``cfg.boxes_per_location`` sets each head's ``k``).
        backbone: a module whose ``forward(images)`` returns the list of source maps, largest
            first, with an ``out_channels`` tuple (and optionally ``source_names``).
        num_classes: classes including background (21 for VOC).

    Attributes:
        cfg, num_classes, backbone, loc_heads, conf_heads, and ``priors`` ``[P, 4]`` cxcywh (a
        non-persistent buffer: it follows ``.to(device)`` and is not saved in checkpoints).

    Raises:
        ValueError: at construction, when a source map's size or channels disagree with ``cfg``
            or the backbone's ``out_channels``, or a head's output does not hold ``k`` boxes.

    Paper: §2.1 "Model" and figure 2.
    """

    def __init__(self, cfg: PriorConfig, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not isinstance(cfg, PriorConfig):
            raise TypeError(f"cfg must be a PriorConfig, got {type(cfg).__name__}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an int >= 2 (background + at least one class), "
                f"got {num_classes!r}"
            )
        channels = tuple(getattr(backbone, "out_channels", ()))
        if len(channels) != len(cfg.feature_maps):
            raise ValueError(
                f"backbone.out_channels lists {len(channels)} source maps {channels} but "
                f"cfg.feature_maps has {len(cfg.feature_maps)} {cfg.feature_maps}"
            )
        self.cfg = cfg
        self.num_classes = num_classes
        self.backbone = backbone
        ks = cfg.boxes_per_location
        self.loc_heads = nn.ModuleList(
            nn.Conv2d(c, k * 4, 3, padding=1) for c, k in zip(channels, ks)
        )
        self.conf_heads = nn.ModuleList(
            nn.Conv2d(c, k * num_classes, 3, padding=1) for c, k in zip(channels, ks)
        )
        _xavier_init(self.loc_heads)
        _xavier_init(self.conf_heads)
        self.register_buffer("priors", default_boxes(cfg), persistent=False)
        self._check_against_cfg()

    def source_name(self, k: int) -> str:
        names = getattr(self.backbone, "source_names", None)
        return f"map {k} ({names[k]})" if names else f"map {k}"

    def _check_against_cfg(self) -> None:
        """Dry run on a zero image: every map and head must match ``cfg``, map by map."""
        cfg = self.cfg
        sources, head_outputs = _dry_run(self, cfg.image_size)
        if len(sources) != len(cfg.feature_maps):
            raise ValueError(
                f"the backbone returned {len(sources)} source maps but cfg.feature_maps has "
                f"{len(cfg.feature_maps)} {cfg.feature_maps}"
            )
        for k, (x, f, c) in enumerate(zip(sources, cfg.feature_maps, self.backbone.out_channels)):
            if tuple(x.shape[1:]) != (c, f, f):
                raise ValueError(
                    f"{self.source_name(k)} has shape {list(x.shape[1:])} [C, H, W] at "
                    f"{cfg.image_size} px but cfg.feature_maps[{k}] = {f} and "
                    f"backbone.out_channels[{k}] = {c} expect {[c, f, f]}"
                )
            k_boxes = cfg.boxes_per_location[k]
            for out, per_box in zip(head_outputs[k], (4, self.num_classes)):
                if tuple(out.shape[1:]) != (k_boxes * per_box, f, f):
                    raise ValueError(
                        f"head on {self.source_name(k)} gives {list(out.shape[1:])} but "
                        f"{k_boxes} boxes per location need {[k_boxes * per_box, f, f]}"
                    )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Predict offsets and class scores for every default box.

        Args:
            images: ``[B, 3, S, S]``, ``S = cfg.image_size``, ImageNet-normalised RGB.

        Returns:
            ``loc [B, P, 4]`` offsets and ``logits [B, P, num_classes]``, in default-box order.

        Paper: §2.1 "Convolutional predictors for detection".
        """
        s = self.cfg.image_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s):
            raise ValueError(
                f"images must have shape [B, 3, {s}, {s}] (cfg.image_size = {s}), "
                f"got {list(images.shape)}"
            )
        loc, logits = [], []
        for x, loc_head, conf_head in zip(self.backbone(images), self.loc_heads, self.conf_heads):
            loc.append(flatten_head(loc_head(x), 4))  # [B, f*f*k, 4]
            logits.append(flatten_head(conf_head(x), self.num_classes))  # [B, f*f*k, C]
        return torch.cat(loc, dim=1), torch.cat(logits, dim=1)  # [B, P, 4], [B, P, C]


def flatten_head(out: Tensor, values_per_box: int) -> Tensor:
    """One head's output map as one row per default box, in DESIGN.md order.

    A head's channel ``a * n + v`` at cell ``(i, j)`` is value ``v`` of the cell's box ``a``; moving
    channels last puts the ``k`` boxes of a cell next to each other, so the rows come out as
    (row ``i``, column ``j``, box ``a``): row ``(i * f + j) * k + a``.

    Args:
        out: ``[B, k * n, H, W]`` a head's output (``n = values_per_box``).
        values_per_box: ``n``: 4 for the offsets, ``num_classes`` for the scores.

    Returns:
        ``[B, H * W * k, n]``.

    Paper: §2.1 "Convolutional predictors for detection".
    """
    if out.ndim != 4 or out.shape[1] % values_per_box != 0:
        raise ValueError(
            f"out must have shape [B, k * {values_per_box}, H, W], got {list(out.shape)}"
        )
    b = out.shape[0]
    return out.permute(0, 2, 3, 1).reshape(b, -1, values_per_box)  # [B, H*W*k, n]


def _dry_run(model: SSD, image_size: int) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
    """Run backbone and heads on one zero image; return the source maps and each map's head outputs.

    Only shapes matter, so it runs on the ``meta`` device (no arithmetic, no memory), with the
    module's own weights swapped for meta copies; a backbone that cannot run there runs for real.
    """

    def run(to_meta: bool) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
        probe = next(model.parameters())
        device = "meta" if to_meta else probe.device
        tensors = {
            name: (t.to("meta") if to_meta else t)
            for name, t in [*model.named_parameters(), *model.named_buffers()]
        }
        x = torch.zeros(1, 3, image_size, image_size, device=device, dtype=probe.dtype)

        def call(prefix: str, module: nn.Module, *args: Tensor):
            own = {n.removeprefix(prefix): t for n, t in tensors.items() if n.startswith(prefix)}
            return functional_call(module, own, args)

        sources = call("backbone.", model.backbone, x)
        heads = [
            (call(f"loc_heads.{k}.", lh, src), call(f"conf_heads.{k}.", ch, src))
            for k, (src, lh, ch) in enumerate(zip(sources, model.loc_heads, model.conf_heads))
        ]
        return sources, heads

    was_training = model.training
    model.eval()  # batch-norm cannot take batch 1 at 1x1 in training mode
    try:
        with torch.no_grad():
            try:
                return run(to_meta=True)
            except (NotImplementedError, RuntimeError):
                return run(to_meta=False)
    finally:
        model.train(was_training)


def ssd300(num_classes: int = 21) -> SSD:
    """SSD300 for VOC: VGG16 base, six source maps (38, 19, 10, 5, 3, 1), 8732 default boxes.

    The VGG16 layers start untrained: load ImageNet weights with :func:`load_vgg16_backbone`.

    Paper: §2.1, figure 2; §3.1 (SSD300).
    """
    return SSD(SSD300_VOC, VGG16Backbone(_EXTRAS_300), num_classes)


def ssd512(num_classes: int = 21) -> SSD:
    """SSD512 for VOC: one more extra block (conv12_2), seven maps (64 ... 1), 24564 default boxes.

    Paper: §3.1, "SSD512" (and Table 1).
    """
    return SSD(SSD512_VOC, VGG16Backbone(_EXTRAS_512), num_classes)


def ssd_small(num_classes: int, cfg: PriorConfig = SSD128_SHAPES, width: int = 128) -> SSD:
    """The small CPU model: :class:`SmallBackbone` with SSD's heads and default boxes.

    Args:
        num_classes: classes including background.
        cfg: default boxes; its ``feature_maps`` must be the backbone's map sizes (16, 8, 4, 2, 1
            at 128 px for ``SSD128_SHAPES``).
        width: channels of each source map.
    """
    return SSD(cfg, SmallBackbone(len(cfg.feature_maps), width), num_classes)


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


@dataclass
class LoadSummary:
    """What :func:`load_vgg16_backbone` did: which format, which keys went where, what was left."""

    format: str
    loaded: dict[str, str] = field(default_factory=dict)  # our parameter name -> source key
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"format: {self.format}; loaded {len(self.loaded)} tensors into backbone.vgg"]
        lines += [f"  {ours} <- {src}" for ours, src in self.loaded.items()]
        if self.ignored:
            lines.append(f"ignored {len(self.ignored)} keys: {', '.join(self.ignored)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _decimate_fc6(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """fc6 ``[4096, 25088]`` -> ``[1024, 512, 3, 3]``: every 4th filter, every 3rd kernel tap."""
    w = w.reshape(4096, 512, 7, 7)  # fc6 read pool5's 7x7x512 output
    return w[::4, :, ::3, ::3].contiguous(), b[::4].contiguous()


def _decimate_fc7(w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """fc7 ``[4096, 4096]`` -> ``[1024, 1024, 1, 1]``: every 4th output and every 4th input."""
    return w[::4, ::4].reshape(1024, 1024, 1, 1).contiguous(), b[::4].contiguous()


def caffe_conv1_1_to_torchvision(weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """Rewrite conv1_1 of a Caffe VGG16 so it takes our input instead of Caffe's.

    Caffe's model reads BGR on 0..255 minus ``CAFFE_BGR_MEAN``; ours reads RGB on [0, 1] minus
    ``IMAGENET_MEAN`` over ``IMAGENET_STD``. With ``x_caffe[2 - c] = 255 (std_c x_c + mean_c) -
    mu_{2-c}``, a convolution of ``x_caffe`` equals one of ``x`` with input channels flipped and
    scaled by ``255 std_c``, and the constant ``255 mean_c - mu_{2-c}`` summed through the kernel
    into the bias. Exact wherever the 3x3 window lies inside the image: at the border, Caffe's zero
    padding is not ours (a zero of ``x`` is not a zero of ``x_caffe``).

    Args:
        weight: ``[64, 3, 3, 3]`` Caffe conv1_1 weight (input channels B, G, R).
        bias: ``[64]``.

    Returns:
        ``(weight [64, 3, 3, 3], bias [64])`` for ImageNet-normalised RGB input.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    mu_bgr = torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float64)
    w_rgb = weight.double().flip(1)  # [64, 3, 3, 3], input channels now R, G, B
    new_w = w_rgb * (255.0 * std)[None, :, None, None]
    shift = 255.0 * mean - mu_bgr.flip(0)  # [3], per RGB channel
    new_b = bias.double() + (w_rgb.sum(dim=(2, 3)) * shift[None, :]).sum(dim=1)  # [64]
    return new_w.to(weight.dtype), new_b.to(bias.dtype)


def load_vgg16_backbone(model: SSD, state_dict_or_path: Mapping[str, Tensor] | str | os.PathLike):
    """Copy ImageNet VGG16 weights into ``model.backbone.vgg`` (conv1_1 ... fc7).

    Two formats are accepted, told apart by their keys:

    - torchvision's VGG16 (``features.N.weight/bias``, ``classifier.0`` and ``classifier.3``):
      fc6 ``[4096, 25088]`` is read as ``[4096, 512, 7, 7]`` and decimated to ``[1024, 512, 3, 3]``
      (every 4th filter, kernel taps 0, 3, 6 in each direction: taps 3 apart on pool5's stride-32
      grid are 6 apart on our stride-16 grid, hence dilation 6); fc7 ``[4096, 4096]`` keeps every
      4th output and input. Its input convention is ours, so nothing else changes.
    - the pre-reduced file of popular PyTorch ports (keys ``"0.weight"`` ... ``"33.weight"``, fc6 at
      31 already ``[1024, 512, 3, 3]``, fc7 at 33). It comes from Caffe and expects BGR on 0..255
      minus (104, 117, 123); its conv1_1 is rewritten by :func:`caffe_conv1_1_to_torchvision` so
      the model keeps taking ImageNet-normalised RGB (exact except at the zero-padded border).

    The extras, heads and L2Norm are untouched. Nothing is changed unless every key is present with
    the right shape.

    Args:
        model: an SSD with a :class:`VGG16Backbone` (``ssd300()``, ``ssd512()``).
        state_dict_or_path: the state dict, or a path read with ``torch.load(weights_only=True)``.

    Returns:
        A :class:`LoadSummary` (print it to see which key went where).

    Raises:
        ValueError: listing every missing key and every misshaped key (expected vs got).

    Paper: §3 "Base network" (fc6/fc7 subsampled, atrous fc6).
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, VGG16Backbone):
        raise TypeError(
            f"model must be an SSD with a VGG16Backbone (ssd300(), ssd512()), got backbone "
            f"{type(backbone).__name__}"
        )
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state = torch.load(state_dict_or_path, map_location="cpu", weights_only=True)
    else:
        state = state_dict_or_path
    if not isinstance(state, Mapping):
        raise TypeError(f"state_dict_or_path must be a mapping of tensors, got {type(state)}")
    # DataParallel checkpoints prefix every key with "module."
    state = {k.removeprefix("module."): v for k, v in state.items()}
    vgg = backbone.vgg
    conv_idx = [i for i, m in enumerate(vgg) if isinstance(m, nn.Conv2d)]  # 0, 2, ..., 31, 33

    if any(k.startswith("features.") for k in state):
        fmt = "torchvision"
        src = {i: f"features.{i}" for i in conv_idx if i < _FC6}
        src[_FC6], src[_FC7] = "classifier.0", "classifier.3"
        want = {f"{s}.weight": tuple(vgg[i].weight.shape) for i, s in src.items() if i < _FC6}
        want |= {"classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096)}
        want |= {f"{s}.bias": (vgg[i].weight.shape[0],) for i, s in src.items() if i < _FC6}
        want |= {"classifier.0.bias": (4096,), "classifier.3.bias": (4096,)}
    elif any(k.split(".", 1)[0].isdigit() for k in state):
        fmt = "reduced (Caffe-converted layer list)"
        src = {i: str(i) for i in conv_idx}
        want = {f"{i}.weight": tuple(vgg[i].weight.shape) for i in conv_idx}
        want |= {f"{i}.bias": (vgg[i].weight.shape[0],) for i in conv_idx}
    else:
        first = list(state)[:3]
        raise ValueError(
            f"state_dict keys look like neither torchvision's VGG16 ('features.0.weight', "
            f"'classifier.0.weight') nor the reduced layer list ('0.weight' ... '33.weight'); "
            f"first keys: {first}"
        )

    problems = []
    for key, shape in want.items():
        if key not in state:
            problems.append(f"missing key '{key}' (expected shape {list(shape)})")
        elif tuple(state[key].shape) != shape:
            problems.append(
                f"key '{key}' has shape {list(state[key].shape)}, expected {list(shape)}"
            )
    if problems:
        raise ValueError(f"cannot load the {fmt} VGG16 weights:\n  " + "\n  ".join(problems))

    summary = LoadSummary(format=fmt, ignored=sorted(set(state) - set(want)))
    with torch.no_grad():
        for i, s in src.items():
            w, b = state[f"{s}.weight"], state[f"{s}.bias"]
            if fmt == "torchvision" and i == _FC6:
                w, b = _decimate_fc6(w, b)
                summary.notes.append("fc6 decimated: every 4th filter, kernel taps 0, 3, 6")
            elif fmt == "torchvision" and i == _FC7:
                w, b = _decimate_fc7(w, b)
                summary.notes.append("fc7 decimated: every 4th output and input")
            elif fmt != "torchvision" and i == 0:
                w, b = caffe_conv1_1_to_torchvision(w, b)
                summary.notes.append(
                    "conv1_1 rewritten from Caffe's BGR 0..255 mean-subtracted input to "
                    "ImageNet-normalised RGB (exact except at the zero-padded border)"
                )
            vgg[i].weight.copy_(w)
            vgg[i].bias.copy_(b)
            name = VGG16_CONV_NAMES[i]
            summary.loaded[f"backbone.vgg.{i}.weight ({name})"] = f"{s}.weight"
            summary.loaded[f"backbone.vgg.{i}.bias ({name})"] = f"{s}.bias"
    return summary
