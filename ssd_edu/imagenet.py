"""The model's input format: RGB in [0, 1], normalised by ImageNet's channel statistics.

SSD starts from a VGG16 trained on ImageNet (§3 "Base network"), so its input must look like what
that network saw: RGB scaled to [0, 1], minus the ImageNet mean, divided by the ImageNet standard
deviation, per channel (the torchvision convention). Both the data pipeline (which normalises
images) and the network (whose VGG16 weights and conv1_1 conversion assume it) read the numbers
here, so neither depends on the other.

Shapes: ``normalize`` takes an RGB uint8 PIL image or ``[H, W, 3]`` array and gives ``[3, H, W]``
float32; ``denormalize`` takes ``[3, H, W]`` (or ``[..., 3, H, W]``) and gives floats in [0, 1].

Paper: §3 "Base network" (VGG16 pre-trained on ILSVRC CLS-LOC); the statistics are torchvision's.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

# RGB, [0, 1] scale
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def normalize(
    image: Image.Image | np.ndarray,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Tensor:
    """RGB uint8 (PIL or ``[H, W, 3]`` array) -> ``[3, H, W]`` float32, ``(x / 255 - mean) / std``.

    Args:
        image: RGB pixels on 0..255.
        mean, std: per-channel statistics, [0, 1] scale.

    Returns:
        ``[3, H, W]`` float32, the network's input for one image.
    """
    chw = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))  # [3, H, W]
    m = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1) * 255
    s = np.asarray(std, dtype=np.float32).reshape(3, 1, 1) * 255
    # numpy, not torch: single-threaded, so DataLoader workers never fight over intra-op threads
    out = chw.astype(np.float32)
    out -= m
    out /= s
    return torch.from_numpy(out)  # [3, H, W]


def denormalize(
    image: Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Tensor:
    """The inverse of :func:`normalize`, for display: ``[..., 3, H, W]`` floats in [0, 1]."""
    m = torch.tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * s + m).clamp(0, 1)
