"""ImageNet VGG16 weights into SSD's base network: fc6/fc7 decimated, Caffe's input converted (§3).

SSD starts from a VGG16 pre-trained on ImageNet. Its classifier's fc6 and fc7 become the
convolutions of :class:`~ssd_edu.model.backbones.VGG16Backbone` by decimation: fc6 ``[4096,
25088]`` keeps every 4th filter and kernel taps 0, 3, 6 (hence the atrous fc6, dilation 6), fc7
``[4096, 4096]`` every 4th output and input. The pre-reduced, Caffe-made file of popular PyTorch
ports expects BGR on 0..255 minus ``CAFFE_BGR_MEAN``; its conv1_1 is rewritten so the model keeps
taking RGB in [0, 1] normalised by ``IMAGENET_MEAN`` / ``IMAGENET_STD`` (:mod:`ssd_edu.imagenet`).

Shapes: conv1_1 ``[64, 3, 3, 3]``, fc6 ``[1024, 512, 3, 3]``, fc7 ``[1024, 1024, 1, 1]`` after
conversion; only ``backbone.vgg`` is written (extras, heads and L2Norm are untouched).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ssd_edu.imagenet import IMAGENET_MEAN, IMAGENET_STD
from ssd_edu.model.backbones import _FC6, _FC7, VGG16_CONV_NAMES, VGG16Backbone

# The pixel means (B, G, R, on 0..255) that the Caffe-made reduced VGG16 subtracts from its input.
CAFFE_BGR_MEAN: tuple[float, float, float] = (104.0, 117.0, 123.0)


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


def _source_keys(
    state: Mapping[str, Tensor], vgg: nn.Sequential
) -> tuple[str, dict[int, str], dict[str, tuple[int, ...]]]:
    """The file's format, told by its keys: ``(format, our layer -> key prefix, key -> shape)``."""
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
    return fmt, src, want


def _shape_problems(state: Mapping[str, Tensor], want: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Every key of ``want`` missing from ``state`` or of another shape, as one line each."""
    problems = []
    for key, shape in want.items():
        if key not in state:
            problems.append(f"missing key '{key}' (expected shape {list(shape)})")
        elif tuple(state[key].shape) != shape:
            problems.append(
                f"key '{key}' has shape {list(state[key].shape)}, expected {list(shape)}"
            )
    return problems


def load_vgg16_backbone(
    model: nn.Module, state_dict_or_path: Mapping[str, Tensor] | str | os.PathLike
) -> LoadSummary:
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
    fmt, src, want = _source_keys(state, vgg)
    problems = _shape_problems(state, want)
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
