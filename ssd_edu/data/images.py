"""Reading image files: any common PIL mode to 8-bit RGB, and errors that name the file.

The network takes 8-bit RGB (docs/design.md, "Model input"). PIL's ``convert("RGB")`` does the
right thing for palette, grey, RGBA and CMYK images, but it saturates images of more than 8 bits:
a 16-bit grey PNG comes out almost white and a float TIFF black or white. :func:`to_rgb` scales
those to 0..255 instead (16-bit: divided by 257; floats: 0..1 as is, any other range stretched to
0..255). A truncated, corrupted or absurdly large file raises :class:`ImageReadError`, whose
message starts with the file's path, instead of PIL's message without it.

Shapes: PIL images in, PIL RGB images out (``width x height`` unchanged).

Paper: not in the paper; §3 trains on 8-bit RGB JPEGs, and this keeps other files to that format.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(OSError):
    """An image file could not be read; the message names the file and what went wrong."""


def open_image(path: str | os.PathLike, where: str = "") -> Image.Image:
    """Open an image lazily (the header only: pixels are decoded on first use).

    Args:
        path: the file.
        where: extra context for the message (e.g. ``"image id 000005, dataset index 3"``).

    Raises:
        ImageReadError: missing, unreadable or not an image, or larger than PIL's safety limit.
    """
    path = Path(path)
    context = f" ({where})" if where else ""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}{context}: no such image file") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
        raise ImageReadError(f"{path}{context}: cannot read the image: {e}") from None


def to_rgb(image: Image.Image, where: str = "") -> Image.Image:
    """The image as 8-bit RGB, deeper images scaled rather than saturated.

    Decodes the pixels if ``image`` was opened lazily; a decoding error raises
    :class:`ImageReadError` naming ``image.filename`` (or ``where``).
    """
    try:
        if image.mode == "RGB":
            image.load()
            return image
        if image.mode.startswith("I") or image.mode == "F":
            return Image.fromarray(_to_8bit(image)).convert("RGB")
        return image.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        name = getattr(image, "filename", "") or "image"
        context = f" ({where})" if where else ""
        raise ImageReadError(f"{name}{context}: cannot read the image: {e}") from None


def read_image(path: str | os.PathLike, where: str = "") -> Image.Image:
    """:func:`open_image` then :func:`to_rgb`: an 8-bit RGB PIL image, or a named error."""
    return to_rgb(open_image(path, where), where)


def _to_8bit(image: Image.Image) -> np.ndarray:
    """A deep grey image (``I;16*``, ``I``, ``F``) as ``[H, W]`` uint8, scaled into 0..255."""
    values = np.asarray(image).astype(np.float64)  # [H, W]
    top = values.max(initial=0)
    if image.mode.startswith("I;16") or (image.mode == "I" and 255 < top <= 65535):
        scaled = values / 257.0  # 16 bits: 65535 -> 255
    elif image.mode == "I" and values.min(initial=0) >= 0 and top <= 255:
        scaled = values  # 8-bit values stored in 32 bits
    elif image.mode == "F" and values.min(initial=0) >= 0 and values.max(initial=0) <= 1:
        scaled = values * 255.0  # floats on [0, 1]
    else:  # any other range: stretch it (a constant image becomes black)
        finite = values[np.isfinite(values)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        scaled = (np.nan_to_num(values, nan=lo) - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
