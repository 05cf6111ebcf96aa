"""Photometric distortion: brightness, contrast, saturation and hue, in 8 bits as the released code.

The paper trains with "photometric distortions similar to those described in Howard 2013" (§2.2,
"Data augmentation"). The released Caffe models (``ssd_pascal.py``) do each step with p = 0.5, in
one of two orders chosen with p = 0.5:

* brightness ``+delta``, ``delta ~ U[-32, 32]``, on every channel;
* contrast ``x alpha``, ``alpha ~ U[0.5, 1.5]``, on every channel (no re-centring);
* saturation ``x beta``, ``beta ~ U[0.5, 1.5]``, on the S channel of HSV;
* hue ``+-18`` degrees round the colour circle (the H channel of HSV);
* order (brightness, contrast, saturation, hue) or (brightness, saturation, hue, contrast).

Every step rounds and saturates to 0..255, as OpenCV's 8-bit ``convertTo`` does. Here the RGB
steps are lookup tables and the HSV steps run in PIL's 8-bit HSV.

:data:`PIXEL_PARAMS` and :func:`pixel_params` describe, as one row of numbers, the pixel work still
to do on an image whose geometry is done: the fast layer (``ssd_edu/fast/augment.py``) hands such a
row over with a ``uint8`` image, and ``ssd_edu/fast/photometric.py`` finishes a whole batch of them
on the training device.

Shapes: images are RGB PIL images of any size; a row of :data:`PIXEL_PARAMS` is ``[15]`` float32.

Paper: §2.2 "Data augmentation" (photometric distortions after Howard 2013).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
# The released code shifts OpenCV's 8-bit hue (units of 2 degrees) by up to 18 units; we follow the
# issue and the common PyTorch ports: +-18 degrees on the colour circle.
HUE_DELTA_DEGREES = 18.0

N_UNIFORMS = 9  # how many uniform numbers draw_photometric takes


@dataclass(frozen=True)
class Photometric:
    """What one photometric distortion does; ``None`` means the step is skipped.

    ``contrast_last`` picks the order: (brightness, saturation, hue, contrast) when True,
    (brightness, contrast, saturation, hue) when False.
    """

    contrast_last: bool
    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue_degrees: float | None


def draw_photometric(u: Tensor | np.ndarray) -> Photometric:
    """The photometric parameters of one image from 9 uniform numbers.

    Args:
        u: ``[9]`` uniforms in [0, 1): the order, then a gate (step done when < 0.5) and a value
            for each of brightness, contrast, saturation and hue.

    Returns:
        The :class:`Photometric` to apply.

    Paper: §2.2 "Data augmentation"; ranges and probabilities of the released code.
    """
    u = [float(v) for v in u]
    if len(u) != N_UNIFORMS:
        raise ValueError(f"u must hold {N_UNIFORMS} uniform numbers, got {len(u)}")

    def pick(gate: float, value: float, lo: float, hi: float) -> float | None:
        return float(lo + (hi - lo) * value) if gate < 0.5 else None

    return Photometric(
        contrast_last=u[0] < 0.5,
        brightness=pick(u[1], u[2], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA),
        contrast=pick(u[3], u[4], *CONTRAST_RANGE),
        saturation=pick(u[5], u[6], *SATURATION_RANGE),
        hue_degrees=pick(u[7], u[8], -HUE_DELTA_DEGREES, HUE_DELTA_DEGREES),
    )


# float32, the precision of the batched fast path: x * alpha rounds alike in both
_VALUES = np.arange(256, dtype=np.float32)


def _lut(values: np.ndarray) -> list[int]:
    """A 0..255 lookup table, rounded and saturated like OpenCV's ``convertTo``."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).tolist()


def photometric_distort(image: Image.Image, p: Photometric) -> Image.Image:
    """Apply brightness, contrast, saturation and hue changes to an RGB PIL image.

    Brightness adds ``delta`` to every channel, contrast multiplies by ``alpha`` (as the released
    code does: no re-centring), both saturated to 0..255. Saturation multiplies the S channel and
    hue shifts the H channel (wrapping round the colour circle) in 8-bit HSV.

    Args:
        image: RGB PIL image.
        p: the drawn parameters.

    Returns:
        The distorted RGB PIL image, same size.

    Paper: §2.2 (photometric distortions, after Howard 2013); parameters of the released code.
    """
    brightness = _lut(_VALUES + np.float32(p.brightness)) if p.brightness is not None else None
    contrast = _lut(_VALUES * np.float32(p.contrast)) if p.contrast is not None else None

    def rgb_step(img: Image.Image, lut: list[int] | None) -> Image.Image:
        return img.point(lut * 3) if lut is not None else img

    def hsv_steps(img: Image.Image) -> Image.Image:
        if p.saturation is None and p.hue_degrees is None:
            return img
        h, s, v = img.convert("HSV").split()
        if p.saturation is not None:
            s = s.point(_lut(_VALUES * np.float32(p.saturation)))
        if p.hue_degrees is not None:
            # PIL's 8-bit hue has 255 steps round the circle (0..254; 255 is red again)
            shift = int(round(p.hue_degrees * 255.0 / 360.0))
            h = h.point(((np.arange(256) + shift) % 255).tolist())
        return Image.merge("HSV", (h, s, v)).convert("RGB")

    image = rgb_step(image, brightness)
    if p.contrast_last:
        return rgb_step(hsv_steps(image), contrast)
    return hsv_steps(rgb_step(image, contrast))


# One row per image. A skipped step is stored as its identity (brightness 0, contrast 1,
# saturation 1, hue 0), which changes no pixel. The region is where the image lies in the output
# (pixels, end exclusive; the rest is the mean-coloured zoom-out canvas, never distorted); mean
# and std (RGB, [0, 1] scale) travel along so that a batch carries everything needed to finish it.
PIXEL_PARAMS: tuple[str, ...] = (
    "contrast_last",
    "brightness",
    "contrast",
    "saturation",
    "hue_degrees",
    "x1",
    "y1",
    "x2",
    "y2",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
)


def pixel_params(
    photometric: Photometric | None,
    region: tuple[int, int, int, int],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> Tensor:
    """One row of :data:`PIXEL_PARAMS`: the pixel work still to do on one geometry-only image.

    Args:
        photometric: the drawn distortion, or ``None`` for none.
        region: ``(x1, y1, x2, y2)`` output pixels holding the image (the rest is canvas).
        mean, std: RGB normalisation, [0, 1] scale.

    Returns:
        ``[15]`` float32, fields in the order of :data:`PIXEL_PARAMS`.

    Paper: §2.2 "Data augmentation" (what is left of it once the geometry is done).
    """
    steps = [0.0, 0.0, 1.0, 1.0, 0.0]  # every step skipped
    if photometric is not None:
        p = photometric
        for i, v in enumerate((p.brightness, p.contrast, p.saturation, p.hue_degrees), start=1):
            if v is not None:
                steps[i] = float(v)
        steps[0] = float(p.contrast_last)
    row = [*steps, *(float(v) for v in region), *mean, *std]
    return torch.tensor(row, dtype=torch.float32)
