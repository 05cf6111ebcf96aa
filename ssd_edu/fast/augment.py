"""FastTrainTransform: the paper's augmentation with zoom out and crop rendered as one window.

Reference: :class:`ssd_edu.data.transforms.TrainTransform`, which does the steps one after another
on the full image: colours on the whole photo, a real canvas up to 4 x 4 times its area, a crop,
a flip, a resize. This class inherits its :meth:`~ssd_edu.data.transforms.TrainTransform.draw`
(the same random stream, the same :class:`~ssd_edu.data.geometry.Augmentation`) and renders it
another way:

* zoom out and crop compose into one axis-aligned window on the original image
  (:meth:`Augmentation.window` with the image size: the same whole pixels as the reference's
  canvas and crop), so no canvas is ever built;
* only the part of the photo inside the window is resized, once (bilinear), and pasted on a
  mean-coloured ``size x size`` canvas;
* the photometric distortion runs on that small resized part (at most ``size x size`` pixels
  instead of the whole photo), or not at all with ``defer_photometric=True``: the item is then a
  ``uint8`` image and a row of :data:`~ssd_edu.data.photometric.PIXEL_PARAMS`, and
  :func:`ssd_edu.fast.photometric.finish_batch` does the colours and the normalisation for the
  whole batch on the training device.

What it trades: the reference distorts colours before resizing and resizes the canvas with the
photo's border blended into the mean colour; here colours are distorted after the resize and the
border is a sharp paste. Measured in ``tests/test_fast_augment.py`` (photos, shapes scenes and
random images of many sizes, 60 seeds each): labels and difficult flags identical, boxes within
1e-6 (float64 in a different order); pixels, in grey levels, a mean absolute difference of 0.16
without distortion and 0.43 with it (99th percentile 1 and 5; white noise, the worst case for
colours after the resize, 4.0 and 31).

Speed (``python benchmarks/bench_data.py``, one core of a busy 2-core machine, JPEG 500x375 ->
augmented 300x300): the reference 104-108 images/s, this class 212-217 (2.0x), and 375-385 (3.6x)
with ``defer_photometric=True``.

Shapes: as the reference; with ``defer_photometric=True`` the image is ``[3, size, size]`` uint8
and a fifth element ``params [15]`` float32 follows.

Paper: §2.2 "Data augmentation", §3.6 (zoom out).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ssd_edu.data.geometry import Augmentation, flip, window_boxes
from ssd_edu.data.photometric import Photometric, photometric_distort, pixel_params
from ssd_edu.data.transforms import (
    TrainTransform,
    check_targets,
    mean_colour,
    to_pil,
)
from ssd_edu.imagenet import normalize

# where the image lands in the output (pixels) and what of it shows (image pixels), or None
Placed = tuple[tuple[int, int, int, int], tuple[float, float, float, float]] | None


def image_region(image_size: tuple[int, int], window: np.ndarray, size: int) -> Placed:
    """Where the image lands in the ``size x size`` view of ``window``, and what of it shows.

    Args:
        image_size: ``(width, height)`` of the image in pixels.
        window: ``[4]`` xyxy fractions of the image (may leave [0, 1] where zoom out shows canvas).
        size: output side in pixels.

    Returns:
        ``(target, source)``: the output pixels ``(x1, y1, x2, y2)`` that lie wholly on the image
        (end exclusive) and the image pixels (floats) that fill them; ``None`` when the window
        shows no whole output pixel of the image.
    """
    width, height = image_size
    wx1, wy1, wx2, wy2 = (window * np.array([width, height, width, height])).tolist()
    sx, sy = size / (wx2 - wx1), size / (wy2 - wy1)  # output pixels per image pixel
    # only output pixels that lie wholly on the image: PIL resizes a region inside the image,
    # and a rounded edge would stretch it by up to half a pixel (the 1e-9 absorbs float noise
    # where an edge falls on a pixel boundary)
    tx1 = math.ceil(min(max(-wx1 * sx, 0), size) - 1e-9)
    ty1 = math.ceil(min(max(-wy1 * sy, 0), size) - 1e-9)
    tx2 = math.floor(min(max((width - wx1) * sx, 0), size) + 1e-9)
    ty2 = math.floor(min(max((height - wy1) * sy, 0), size) + 1e-9)
    if tx2 <= tx1 or ty2 <= ty1:
        return None
    source = (
        max(wx1 + tx1 / sx, 0.0),
        max(wy1 + ty1 / sy, 0.0),
        min(wx1 + tx2 / sx, width),
        min(wy1 + ty2 / sy, height),
    )
    return (tx1, ty1, tx2, ty2), source


def render_window(
    image: Image.Image,
    window: np.ndarray,
    size: int,
    fill: tuple[int, int, int],
    photometric: Photometric | None = None,
) -> Image.Image:
    """The ``size x size`` view of ``window`` (fractions of ``image``); outside it, ``fill``.

    Only the part of the image inside the window is resized (bilinear, once); the photometric
    distortion runs on that resized part, so the mean-coloured border stays the mean.

    Args:
        image: RGB PIL image.
        window: ``[4]`` xyxy fractions of the image.
        size: output side in pixels.
        fill: RGB 0..255 of the canvas.
        photometric: the distortion for the photo's pixels, or ``None``.

    Returns:
        The ``size x size`` RGB PIL image.
    """
    return _render(image, image_region(image.size, window, size), size, fill, photometric)


def _render(
    image: Image.Image,
    placed: Placed,
    size: int,
    fill: tuple[int, int, int],
    photometric: Photometric | None,
) -> Image.Image:
    """:func:`render_window` once :func:`image_region` has placed the image."""
    if placed is None:
        return Image.new("RGB", (size, size), fill)
    (tx1, ty1, tx2, ty2), source = placed
    part = image.resize((tx2 - tx1, ty2 - ty1), Image.Resampling.BILINEAR, box=source)
    if photometric is not None:
        part = photometric_distort(part, photometric)
    if (tx1, ty1, tx2, ty2) == (0, 0, size, size):
        return part
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(part, (tx1, ty1))
    return canvas


class FastTrainTransform(TrainTransform):
    """:class:`~ssd_edu.data.transforms.TrainTransform` rendered as one window (see the module).

    Call as the reference: ``t(image, boxes, labels, difficult, generator=None)``.

    Args:
        size, mean, std, distort, expand, crop, flip: as the reference (same order).
        defer_photometric: keyword only; stop after the geometry and return
            ``(image [3, size, size] uint8, boxes, labels, difficult, params [15])``: the
            photometric distortion and the normalisation are left to
            :func:`ssd_edu.fast.photometric.finish_batch` (the random draws are the same either
            way).

    Paper: §2.2 "Data augmentation" and §3.6.
    """

    def __init__(self, *args, defer_photometric: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # the reference's arguments, in its order
        self.defer_photometric = defer_photometric

    def __repr__(self) -> str:
        deferred = ", defer_photometric=True" if self.defer_photometric else ""
        return super().__repr__()[:-1] + deferred + ")"

    def apply(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        aug: Augmentation,
    ) -> tuple[Tensor, ...]:
        """Render the decided augmentation through one window.

        Args:
            image: PIL image or ``[3, H, W]`` tensor.
            boxes: ``[N, 4]`` xyxy fractions; labels, difficult: ``[N]``.
            aug: from :meth:`draw`.

        Returns:
            As the reference's ``apply``; with ``defer_photometric`` a ``uint8`` image and a
            fifth element ``params [15]``.

        Paper: §2.2 "Data augmentation", §3.6.
        """
        check_targets(boxes, labels, difficult)
        pil = to_pil(image)
        window = aug.window(pil.size)  # the reference's canvas and crop, in whole pixels
        placed = image_region(pil.size, window, self.size)
        photometric = None if self.defer_photometric else aug.photometric
        out = _render(pil, placed, self.size, mean_colour(self.mean), photometric)
        new_boxes, keep = window_boxes(boxes.double(), window, keep_centre=aug.crop is not None)
        if aug.flip:
            out, new_boxes = flip(out, new_boxes)
        targets = (new_boxes.float(), labels[keep].long(), difficult[keep].bool())
        if not self.defer_photometric:
            return normalize(out, self.mean, self.std), *targets
        x1, y1, x2, y2 = placed[0] if placed is not None else (0, 0, 0, 0)
        if aug.flip:
            x1, x2 = self.size - x2, self.size - x1
        params = pixel_params(aug.photometric, (x1, y1, x2, y2), self.mean, self.std)
        # PIL's raw encoder hands out one band at a time: [3, S, S] without a transpose
        planes = bytearray(b"".join(out.tobytes("raw", band) for band in "RGB"))
        chw = np.frombuffer(planes, dtype=np.uint8).reshape(3, self.size, self.size)
        return torch.from_numpy(chw), *targets, params  # image [3, S, S] uint8
