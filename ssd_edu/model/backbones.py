"""SSD's base networks: VGG16 cut before its classifier, plus extra layers (§2.1, fig. 2, §3.1).

The base network is VGG16 truncated before its classification layers (figure 2), changed so its
maps can feed SSD's heads:

- pool5 becomes 3x3, stride 1, padding 1, so the resolution stays at conv5_3's;
- fc6 and fc7 become convolutions: fc6 a 3x3 atrous (dilation 6) convolution with 1024 filters,
  fc7 a 1x1 convolution with 1024 filters (:mod:`ssd_edu.model.vgg_weights` makes them from the
  classifier's weights by decimation);
- conv4_3 (38x38 at 300 px) is L2-normalised with a learned per-channel scale (:class:`L2Norm`),
  because its activations are larger than those of the deeper maps (§3.1);
- extra layers (a 1x1 then a 3x3 convolution each) halve the resolution down to 1x1.

:class:`SmallBackbone` is the CPU stand-in for VGG16: a few conv/BN/ReLU blocks (128 x 128 inputs,
about 1 M parameters) giving maps of 16, 8, 4, 2, 1. ``ssd_small`` keeps everything else, so the
CPU notebooks train the same heads, default boxes, matching and loss.

Shapes: each backbone's ``forward(images [B, 3, S, S])`` returns the source maps, largest first,
``[B, C_k, f_k, f_k]``; ``out_channels`` lists the ``C_k`` and ``source_names`` the module that
ends each map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

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
