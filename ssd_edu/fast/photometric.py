"""finish_batch: the photometric distortion and normalisation of a whole batch, on its device.

Reference: :func:`ssd_edu.data.photometric.photometric_distort` (PIL, one image, 8-bit HSV),
followed by :func:`ssd_edu.imagenet.normalize`.

Why: on a GPU, SSD300 trains faster than a CPU core can augment images, so the data pipeline sets
the pace. The geometric steps (zoom out, crop, flip, resize) need the whole image and stay in the
DataLoader workers, but the photometric distortion of §2.2 is pixel-wise and, on a CPU, the single
most expensive step (an RGB -> HSV -> RGB round trip). ``FastTrainTransform(...,
defer_photometric=True)`` (``ssd_edu/fast/augment.py``) therefore stops after the geometry: its
item carries the image as ``uint8`` (a quarter of the bytes to pass between processes and copy to
the GPU) and a row of :data:`~ssd_edu.data.photometric.PIXEL_PARAMS` saying what is left to do.
:func:`finish_batch` does it on the device, for the whole batch in one set of tensor operations.

What it trades: the steps and their order are the reference's (brightness, then contrast either
second or last, saturation and hue in HSV), on the same 8-bit grid: every step rounds and
saturates to 0..255. The HSV round trip here is exact float arithmetic, where PIL's 8-bit HSV
truncates hue and saturation to 256 levels, so the two agree exactly where only brightness and
contrast change and to at most 8 grey levels (under 1 on average) where saturation or hue changes
(``tests/test_fast_photometric.py``). The zoom-out canvas outside ``(x1, y1, x2, y2)`` is left as
it is: it is the mean colour, which the reference does not distort either. Speed
(``python benchmarks/bench_data.py``): a batch of 32 x 300x300 takes about 0.5 s on one CPU core;
a worker's CPU time per image drops by about 40% when the colours wait for the device.

Shapes: images ``[B, 3, H, W]`` uint8 RGB; params ``[B, 15]`` float32 (one row per image, fields
in ``PIXEL_PARAMS``); output ``[B, 3, H, W]`` float32, normalised as by
``ssd_edu.imagenet.normalize``.

Paper: §2.2 "Data augmentation" (photometric distortions after Howard 2013).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd_edu.data.photometric import PIXEL_PARAMS


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the colour circle).

    Args:
        rgb: ``[..., 3, H, W]`` float.

    Returns:
        ``[..., 3, H, W]``: hue in [0, 1), saturation and value in [0, 1].

    Paper: §2.2 (the saturation and hue steps work in HSV); the hexcone model, as ``colorsys``.
    """
    r, g, b = rgb.unbind(-3)
    v, _ = rgb.max(dim=-3)
    spread = v - rgb.min(dim=-3).values
    grey = spread == 0
    d = torch.where(grey, torch.ones_like(spread), spread)  # grey pixels: no hue, no division by 0
    # which channel is largest decides the sixth of the circle; red wins ties, then green
    h = torch.where(v == r, (g - b) / d, torch.where(v == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(grey, torch.zeros_like(h), (h / 6) % 1.0)
    s = torch.where(v > 0, spread / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack((h, s, v), dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_hsv`.

    Args:
        hsv: ``[..., 3, H, W]`` float, hue as a fraction of the circle, all in [0, 1].

    Returns:
        ``[..., 3, H, W]`` RGB in [0, 1].

    Paper: §2.2 (the saturation and hue steps work in HSV); the hexcone model, as ``colorsys``.
    """
    h, s, v = hsv.unbind(-3)
    # channel c = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6 with n = 5, 3, 1 for
    # R, G, B: the piecewise-linear hexcone without branching on the sector
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(3, 1, 1)
    k = (n + 6 * h.unsqueeze(-3)) % 6  # [..., 3, H, W]
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    return v.unsqueeze(-3) * (1 - s.unsqueeze(-3) * ramp)


def _to_8bit(x: Tensor) -> Tensor:
    # round half to even and saturate: what the reference's lookup tables do (numpy rint, clip)
    return x.round().clamp(0, 255)


def distort_batch(images: Tensor, params: Tensor) -> Tensor:
    """Apply each image's photometric distortion inside its region.

    Args:
        images: ``[B, 3, H, W]`` uint8 RGB (or floats on the 0..255 grid).
        params: ``[B, 15]`` rows of :data:`PIXEL_PARAMS`.

    Returns:
        ``[B, 3, H, W]`` float32 on the 0..255 grid (whole numbers).

    Paper: §2.2 "Data augmentation"; steps and order as ``photometric_distort``.
    """
    _check(images, params)
    x0 = images.float()
    p = params.to(device=x0.device, dtype=x0.dtype)

    def col(i: int) -> Tensor:
        return p[:, i].view(-1, 1, 1, 1)  # [B, 1, 1, 1]: broadcasts over channels and pixels

    contrast_last = col(0) > 0.5
    x = _to_8bit(x0 + col(1))  # brightness
    x = torch.where(contrast_last, x, _to_8bit(x * col(2)))
    hsv = rgb_to_hsv(x / 255)
    h, s, v = hsv.unbind(1)
    s = (s * col(3)[:, 0]).clamp(0, 1)
    # the reference shifts PIL's 8-bit hue, which has 255 steps round the circle: the same
    # whole number of steps here keeps both paths' hue changes equal
    h = (h + (col(4)[:, 0] * 255 / 360).round() / 255) % 1.0
    x = _to_8bit(hsv_to_rgb(torch.stack((h, s, v), dim=1)) * 255)
    x = torch.where(contrast_last, _to_8bit(x * col(2)), x)

    rows = torch.arange(x.shape[-2], device=x.device, dtype=x.dtype).view(1, 1, -1, 1)
    cols = torch.arange(x.shape[-1], device=x.device, dtype=x.dtype).view(1, 1, 1, -1)
    inside = (cols >= col(5)) & (cols < col(7)) & (rows >= col(6)) & (rows < col(8))
    return torch.where(inside, x, x0)


def finish_batch(images: Tensor, params: Tensor) -> Tensor:
    """Distort (:func:`distort_batch`) and normalise a batch of deferred training images.

    Args:
        images: ``[B, 3, H, W]`` uint8 RGB from ``FastTrainTransform(...,
            defer_photometric=True)``, on any device.
        params: ``[B, 15]`` rows of :data:`PIXEL_PARAMS` (moved to the images' device).

    Returns:
        ``[B, 3, H, W]`` float32, ``(x / 255 - mean) / std``: the model's input.

    Paper: §2.2 "Data augmentation" (photometric distortions); §3 (the VGG16 input format).
    """
    x = distort_batch(images, params)
    p = params.to(device=x.device, dtype=x.dtype)
    mean = p[:, 9:12].view(-1, 3, 1, 1) * 255
    std = p[:, 12:15].view(-1, 3, 1, 1) * 255
    return (x - mean) / std


def _check(images: Tensor, params: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape [B, 3, H, W], got {got}")
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(f"images must be uint8 (or float on 0..255), got {images.dtype}")
    want = (images.shape[0], len(PIXEL_PARAMS))
    if not isinstance(params, Tensor) or tuple(params.shape) != want:
        got = list(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"params must have shape [B, {want[1]}] = {list(want)}, got {got}")
