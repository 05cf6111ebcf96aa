"""The geometric augmentation as plain steps: zoom out, the min-IoU patch sampler, crop, flip.

Section 2.2 ("Data augmentation") makes SSD see objects at every size and cut: each training
image is either used whole or replaced by a patch that overlaps some object by a minimum jaccard
overlap, then flipped with p = 0.5. Section 3.6 adds a "zoom out": the image is first placed on a
canvas up to 4 times larger, filled with the mean colour, so that small objects become common.
The parameters are those of the released Caffe models (``ssd_pascal.py``):

* zoom out with p = 0.5: canvas ``r ~ U[1, 4]`` times the image, the image anywhere on it;
* patches of scale ``s ~ U[0.3, 1]`` and aspect ratio ``a ~ U[1/2, 2]``; for each minimum IoU in
  ``{0.1, 0.3, 0.5, 0.7, 0.9}`` and for "no constraint", the first of 50 trial patches that
  overlaps some object by at least that much (:func:`sample_patch`);
* crop: objects whose centre lies in the patch are kept, clipped to it (:func:`window_boxes`).

Every step works on a PIL image and its boxes, in whole pixels as the released code does (an
integer canvas and crop), and the boxes follow the pixels exactly. Patches are drawn in fractions,
before any pixel is known: the cut may be half a pixel off the drawn patch, its overlap likewise.
:class:`Augmentation` holds what one call decided; its :meth:`~Augmentation.window` says which
part of the original image the output shows, which is how the fast layer
(``ssd_edu/fast/augment.py``) renders zoom out and crop in one resize.

Formats: boxes are ``[N, 4]`` xyxy fractions of the image they belong to (the image, the canvas,
the patch); patches are ``[4]`` xyxy fractions of the image they are cut from.

Paper: §2.2 "Data augmentation", §3.6 (zoom out), Table 2 (the crop is worth +8.8 mAP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ssd_edu.boxes import box_iou
from ssd_edu.data.photometric import Photometric

# None = "no constraint": the first trial, whatever it overlaps (the released code's sampler
# without min_jaccard_overlap); it is offered only when the image has objects at all.
MIN_IOUS: tuple[float | None, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, None)
MAX_TRIALS = 50
SCALE_RANGE = (0.3, 1.0)
ASPECT_RANGE = (0.5, 2.0)
MAX_ZOOM_OUT = 4.0


def trial_patches(u: Tensor) -> Tensor:
    """Random patches from uniform numbers, one per row of 4.

    ``s ~ U[0.3, 1]``, ``a ~ U[1/2, 2]`` clamped to ``[s^2, 1/s^2]`` so that both sides fit,
    ``w = s sqrt(a)``, ``h = s / sqrt(a)``, and the corner uniform over the places it fits.

    Args:
        u: ``[..., 4]`` uniforms in [0, 1) (a float64 tensor or array).

    Returns:
        ``[..., 4]`` float64 xyxy patches, fractions of the image.

    Paper: §2.2 "Data augmentation" (patch size in [0.1, 1] of the image in the paper; the
    released code's [0.3, 1] scale and [1/2, 2] aspect ratio).
    """
    # numpy, not torch: its sqrt is correctly rounded on every machine (torch's vectorised float64
    # sqrt can be one ulp off on some CPUs, which would make the draw machine-dependent), and it
    # is cheaper on a few hundred numbers
    u = np.asarray(u, dtype=np.float64)
    s = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u[..., 0]
    a = ASPECT_RANGE[0] + (ASPECT_RANGE[1] - ASPECT_RANGE[0]) * u[..., 1]
    a = np.clip(a, s * s, 1 / (s * s))
    # min(., 1): a = s^2 gives w = 1 up to rounding, and the patch must stay inside the image
    w, h = np.minimum(s * np.sqrt(a), 1.0), np.minimum(s / np.sqrt(a), 1.0)
    x1, y1 = (1 - w) * u[..., 2], (1 - h) * u[..., 3]
    return torch.from_numpy(np.stack((x1, y1, x1 + w, y1 + h), axis=-1))


def first_success(best: Sequence[float], min_iou: float | None) -> int | None:
    """The sampler's rule: the first trial whose best overlap reaches ``min_iou``.

    Args:
        best: ``T`` numbers, each trial's largest IoU with the objects, in the order drawn.
        min_iou: the constraint; ``None`` ("no constraint") accepts the first trial.

    Returns:
        The trial's index, or ``None`` when no trial meets the constraint.

    Paper: §2.2 "Data augmentation"; the released code stops at the first trial that succeeds.
    """
    for trial, overlap in enumerate(best):
        if min_iou is None or overlap >= min_iou:
            return trial
    return None


def sample_patch(boxes: Tensor, min_iou: float | None, u: Tensor) -> tuple[Tensor | None, float]:
    """The first of the trial patches that overlaps some object by at least ``min_iou``.

    Args:
        boxes: ``[G, 4]`` xyxy fractions (the objects).
        min_iou: the constraint; ``None`` accepts any patch when there is at least one object.
        u: ``[T, 4]`` uniform numbers, one row per trial (``T = 50`` in the released code).

    Returns:
        ``(patch, best_iou)``: the ``[4]`` float64 xyxy patch (fractions) and its largest IoU
        with the objects, or ``(None, 0.0)`` when no trial satisfies the constraint.

    Paper: §2.2 "Data augmentation" (the patch must overlap some object by at least the drawn
    minimum IoU, one of ``MIN_IOUS``).
    """
    if np.ndim(u) != 2 or np.shape(u)[1] != 4:
        raise ValueError(f"u must have shape [T, 4], one row per trial, got {list(np.shape(u))}")
    boxes = torch.as_tensor(boxes).detach().cpu().double().reshape(-1, 4)
    if len(boxes) == 0:
        return None, 0.0
    trials = trial_patches(u)  # [T, 4]
    best = box_iou(trials, boxes).max(dim=1).values.tolist()  # T overlaps
    first = first_success(best, min_iou)
    if first is None:
        return None, 0.0
    return trials[first], best[first]


def canvas_pixels(
    width: int, height: int, expand: tuple[float, float, float] | None
) -> tuple[int, int, int, int]:
    """The zoom-out canvas in whole pixels, as the released code makes it (integer sizes).

    Args:
        width, height: the image's size in pixels.
        expand: ``(ratio, x, y)`` as drawn; ``None`` for no zoom out.

    Returns:
        ``(canvas_width, canvas_height, x0, y0)``: ``round(ratio * size)``, and the image's corner
        on it, ``round(x * free room)``; ``(width, height, 0, 0)`` without zoom out.

    Paper: §3.6 (zoom out).
    """
    if expand is None:
        return width, height, 0, 0
    ratio, x, y = expand
    cw, ch = round(ratio * width), round(ratio * height)
    return cw, ch, round((cw - width) * x), round((ch - height) * y)


def patch_pixels(
    width: int, height: int, patch: tuple[float, float, float, float]
) -> tuple[int, int, int, int]:
    """A patch in whole pixels, as the released code crops (integer offsets and sizes).

    Args:
        width, height: the size in pixels of the image the patch is cut from.
        patch: xyxy fractions of that image.

    Returns:
        ``(x1, y1, x2, y2)`` pixels, end exclusive, each corner rounded, at least 1 pixel wide
        and high.

    Paper: §2.2 "Data augmentation".
    """
    x1, y1 = min(round(patch[0] * width), width - 1), min(round(patch[1] * height), height - 1)
    return x1, y1, max(round(patch[2] * width), x1 + 1), max(round(patch[3] * height), y1 + 1)


def zoom_out(
    image: Image.Image,
    boxes: Tensor,
    expand: tuple[float, float, float],
    fill: tuple[int, int, int],
) -> tuple[Image.Image, Tensor]:
    """Place the image on a canvas ``ratio`` times larger, filled with ``fill`` (the mean colour).

    Args:
        image: RGB PIL image, ``W x H``.
        boxes: ``[N, 4]`` xyxy fractions of the image.
        expand: ``(ratio, x, y)``: canvas size in image sizes, and where the image goes, as a
            fraction of the free room (0 = left / top edge, 1 = right / bottom edge).
        fill: RGB 0..255 of the canvas.

    Returns:
        ``(canvas, boxes [N, 4])``: boxes moved with the image, fractions of the canvas.

    Paper: §3.6 (a canvas of up to 16x the image's area, filled with the mean, before the crop).
    """
    if not expand[0] >= 1:
        raise ValueError(f"the zoom-out ratio must be >= 1, got expand={expand}")
    width, height = image.size
    cw, ch, x0, y0 = canvas_pixels(width, height, expand)
    canvas = Image.new("RGB", (cw, ch), fill)
    canvas.paste(image, (x0, y0))
    scale = boxes.new_tensor([width / cw, height / ch] * 2)  # [4]
    return canvas, boxes * scale + boxes.new_tensor([x0 / cw, y0 / ch] * 2)


def window_boxes(
    boxes: Tensor, window: np.ndarray | Tensor, keep_centre: bool = True
) -> tuple[Tensor, Tensor]:
    """Boxes seen through a window: shifted and scaled to it, clipped, centre rule applied.

    Args:
        boxes: ``[N, 4]`` xyxy fractions of the image.
        window: ``[4]`` xyxy fractions of the image (may leave [0, 1]).
        keep_centre: keep only boxes whose centre lies in the window (the released code's rule).

    Returns:
        ``(boxes [K, 4]`` xyxy fractions of the window, ``keep [N]`` bool``)``; every kept box has
        ``x2 > x1`` and ``y2 > y1``.

    Paper: §2.2 "Data augmentation" ("we keep the overlapped part of the ground truth box if the
    center of it is in the sampled patch").
    """
    w = torch.as_tensor(window, dtype=boxes.dtype)
    size = torch.cat((w[2:] - w[:2], w[2:] - w[:2]))  # [4]
    moved = ((boxes - torch.cat((w[:2], w[:2]))) / size).clamp(0, 1)  # [N, 4]
    keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])  # [N]
    if keep_centre:
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
        keep &= ((centre >= w[:2]) & (centre <= w[2:])).all(dim=1)
    return moved[keep], keep


def crop(
    image: Image.Image, boxes: Tensor, patch: tuple[float, float, float, float]
) -> tuple[Image.Image, Tensor, Tensor]:
    """Cut a patch out of the image; keep the objects whose centre lies in it, clipped to it.

    Args:
        image: RGB PIL image (after zoom out, the canvas).
        boxes: ``[N, 4]`` xyxy fractions of the image.
        patch: xyxy fractions of the image; cut at the nearest whole pixels.

    Returns:
        ``(patch image, boxes [K, 4]`` fractions of the patch, ``keep [N]`` bool``)``: filter
        labels and difficult flags with ``keep`` too.

    Paper: §2.2 "Data augmentation".
    """
    if not 0 <= patch[0] < patch[2] <= 1 or not 0 <= patch[1] < patch[3] <= 1:
        raise ValueError(f"patch must be xyxy fractions inside [0, 1], got {tuple(patch)}")
    width, height = image.size
    px = patch_pixels(width, height, patch)
    cut = torch.tensor(px, dtype=torch.float64) / torch.tensor([width, height] * 2)  # [4]
    new_boxes, keep = window_boxes(boxes, cut)
    return image.crop(px), new_boxes, keep


def flip(image: Image.Image, boxes: Tensor) -> tuple[Image.Image, Tensor]:
    """Mirror the image left to right; ``x`` becomes ``1 - x`` (and the corners swap).

    Args:
        image: RGB PIL image.
        boxes: ``[N, 4]`` xyxy fractions.

    Returns:
        ``(mirrored image, boxes [N, 4])``.

    Paper: §2.2 "Data augmentation" (each sampled patch is flipped with probability 0.5).
    """
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    mirrored = torch.stack((1 - x2, y1, 1 - x1, y2), dim=1)  # [N, 4]
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mirrored


@dataclass(frozen=True)
class Augmentation:
    """Everything one TrainTransform call decided, before any pixel is touched.

    ``photometric``: the colour distortion, or ``None``. ``expand``: ``(ratio, x, y)`` for
    :func:`zoom_out`, or ``None`` (no zoom out). ``crop``: xyxy patch in fractions of the
    (zoomed-out) canvas, or ``None`` (whole canvas). ``sampler``: which candidate was picked (an
    entry of ``MIN_IOUS``, or ``"whole"``). ``flip``: mirror or not. ``dataclasses.replace``
    switches single steps off (the notebook shows the steps one at a time this way).
    """

    photometric: Photometric | None
    expand: tuple[float, float, float] | None
    crop: tuple[float, float, float, float] | None
    sampler: float | str | None
    flip: bool

    def window(self, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """The output's field of view, ``[4]`` xyxy fractions of the original image (past [0, 1]
        where zoom out shows the mean-coloured canvas).

        Args:
            image_size: ``(width, height)`` of the original image: the window is then the exact
                one of :func:`zoom_out` and :func:`crop`, in whole pixels. Without it, the drawn
                window, unrounded.
        """
        if image_size is None:
            # in units of the image: the canvas is r x r, the image's corner at (x0, y0) on it
            r, ex, ey = self.expand or (1.0, 0.0, 0.0)
            x0, y0 = (r - 1) * ex, (r - 1) * ey
            c = self.crop or (0.0, 0.0, 1.0, 1.0)
            return np.array([c[0] * r - x0, c[1] * r - y0, c[2] * r - x0, c[3] * r - y0])
        width, height = image_size
        cw, ch, x0, y0 = canvas_pixels(width, height, self.expand)
        px = (0, 0, cw, ch) if self.crop is None else patch_pixels(cw, ch, self.crop)
        return (np.array(px, dtype=np.float64) - [x0, y0, x0, y0]) / [width, height, width, height]
