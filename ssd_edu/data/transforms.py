"""The paper's data augmentation: photometric distortion, zoom out, the min-IoU crop, flip, resize.

SSD learns objects of every size and position from few images because each training image is
re-drawn every time it is seen. Section 2.2 ("Data augmentation") samples a patch that overlaps
the objects by a minimum jaccard overlap; section 3.6 adds a "zoom out" that shrinks the image on
a larger canvas so that small objects become common. The parameters below are those of the
released Caffe models (``ssd_pascal.py``):

* photometric distortion, each step with p = 0.5: brightness ``+-32``, contrast ``x[0.5, 1.5]``,
  saturation ``x[0.5, 1.5]``, hue ``+-18`` degrees, in one of two orders chosen with p = 0.5
  (brightness, contrast, saturation, hue) or (brightness, saturation, hue, contrast);
* zoom out with p = 0.5: the image placed at a random spot of a canvas ``r`` times larger,
  ``r ~ U[1, 4]``, the rest filled with the mean colour (0 after normalisation);
* the crop sampler: candidates are the whole image and, for each minimum IoU in
  ``{0.1, 0.3, 0.5, 0.7, 0.9}`` and for "no constraint", the first of 50 random patches
  (scale ``s ~ U[0.3, 1]``, aspect ratio ``a ~ U[1/2, 2]``, ``w = s sqrt(a)``, ``h = s / sqrt(a)``)
  that overlaps some object by at least that IoU; one candidate is picked uniformly; objects whose
  centre lies in the patch are kept, clipped to it;
* horizontal flip with p = 0.5, resize to ``size x size`` (aspect ratio not kept), normalise.

How it is made fast: zoom out and crop are one axis-aligned window on the original image, so the
whole geometry is decided from the image size and the boxes before any pixel is touched. Then the
part of the image inside the window is resized once with PIL (no 4x canvas is ever built), the
photometric distortion runs on that small image only (lookup tables and PIL's HSV conversion, in
8 bits like the released code), and it is pasted on a mean-coloured canvas. For GPU training,
``defer_photometric=True`` leaves the distortion and the normalisation to one batched step on the
device (:mod:`ssd_edu.data.batch_photometric`), which roughly halves the CPU work per image.

Randomness: every random number of one call comes from one ``torch.Generator`` passed in (or from
torch's global generator when none is). Datasets derive the generator of item ``i`` from
``(seed, epoch, i)`` with :func:`item_generator`, so the same item gets the same augmentation in
any process, DataLoader workers included.

Formats: images in are PIL images (any size) or ``[3, H, W]`` tensors (uint8, or floats in
[0, 1]); images out are ``[3, size, size]`` float32, RGB normalised by ``IMAGENET_MEAN`` and
``IMAGENET_STD``. Boxes in and out are ``[N, 4]`` xyxy fractions of the image; labels ``[N]``
int64; difficult ``[N]`` bool, filtered together with the boxes.

Paper: §2.2 "Data augmentation", §3.6 (zoom out), Table 2 (the crop is worth +8.8 mAP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ssd_edu.data.batch_photometric import pixel_params

# RGB, [0, 1] scale: the model takes RGB in [0, 1] normalised by these (ImageNet statistics,
# the same the VGG16 base was trained with).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# None = "no constraint": any patch that keeps at least one object in view (the released code's
# sampler with max_jaccard_overlap 1.0).
MIN_IOUS: tuple[float | None, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, None)
MAX_TRIALS = 50
SCALE_RANGE = (0.3, 1.0)
ASPECT_RANGE = (0.5, 2.0)
MAX_ZOOM_OUT = 4.0
BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
# The released code shifts OpenCV's 8-bit hue (units of 2 degrees) by up to 18 units; we follow the
# issue and the common PyTorch ports: +-18 degrees on the colour circle.
HUE_DELTA_DEGREES = 18.0

# How many uniform numbers one TrainTransform call draws (always the same count, so that the
# stream of a seeded generator never depends on the image).
_N_PHOTO = 9
_N_EXPAND = 4
_N_CROP = len(MIN_IOUS) * MAX_TRIALS * 4 + 1
_N_DRAWS = _N_PHOTO + _N_EXPAND + _N_CROP + 1


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator for item ``index`` in ``epoch``: a function of the three numbers only.

    Datasets call this in ``__getitem__``, so results do not depend on which DataLoader worker
    process draws the item nor on the order items are drawn in.
    """
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ---------------------------------------------------------------------------------------------
# Input checks and conversions
# ---------------------------------------------------------------------------------------------


def _check_targets(boxes: Tensor, labels: Tensor, difficult: Tensor) -> None:
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
        got = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must have shape [N, 4], got {got}")
    n = boxes.shape[0]
    for name, t in (("labels", labels), ("difficult", difficult)):
        if not isinstance(t, Tensor) or t.shape != (n,):
            got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must have shape [N] = [{n}] like boxes, got {got}")


def to_pil(image: Image.Image | Tensor) -> Image.Image:
    """A PIL RGB image from a PIL image or a ``[3, H, W]`` tensor (uint8, or floats in [0, 1])."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a PIL image or a [3, H, W] tensor, got {got}")
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy())


def normalize(
    image: Image.Image | np.ndarray,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Tensor:
    """RGB uint8 (PIL or ``[H, W, 3]`` array) -> ``[3, H, W]`` float32, ``(x / 255 - mean) / std``.

    The model's input format (DESIGN.md): RGB in [0, 1] normalised by the ImageNet statistics.
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
    """The inverse of :func:`normalize`, for display: ``[3, H, W]`` floats in [0, 1]."""
    m = torch.tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * s + m).clamp(0, 1)


def _mean_colour(mean: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(round(c * 255)) for c in mean)


# ---------------------------------------------------------------------------------------------
# Photometric distortion (pixel-wise, 8-bit like the released code)
# ---------------------------------------------------------------------------------------------


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


# float32, the precision of the batched path (batch_photometric.py): x * alpha rounds alike in both
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


def _draw_photometric(u: np.ndarray) -> Photometric:
    """Photometric parameters from 9 uniform numbers."""

    def pick(gate: float, value: float, lo: float, hi: float) -> float | None:
        return float(lo + (hi - lo) * value) if gate < 0.5 else None

    return Photometric(
        contrast_last=bool(u[0] < 0.5),
        brightness=pick(u[1], u[2], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA),
        contrast=pick(u[3], u[4], *CONTRAST_RANGE),
        saturation=pick(u[5], u[6], *SATURATION_RANGE),
        hue_degrees=pick(u[7], u[8], -HUE_DELTA_DEGREES, HUE_DELTA_DEGREES),
    )


# ---------------------------------------------------------------------------------------------
# Geometry: zoom out and the min-IoU crop, as windows in fractions of the image
# ---------------------------------------------------------------------------------------------


def _iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a [..., 4]`` with ``b [G, 4]`` -> ``[..., G]`` (numpy; geometry only)."""
    lt = np.maximum(a[..., None, :2], b[:, :2])  # [..., G, 2]
    rb = np.minimum(a[..., None, 2:], b[:, 2:])  # [..., G, 2]
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)  # [..., G]
    area_a = np.prod(a[..., 2:] - a[..., :2], axis=-1)[..., None]  # [..., 1]
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)  # [G]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _patches(u: np.ndarray) -> np.ndarray:
    """Random patches from uniform numbers ``u [..., 4]`` -> ``[..., 4]`` xyxy fractions.

    ``s ~ U[0.3, 1]``, ``a ~ U[1/2, 2]`` clamped to ``[s^2, 1/s^2]`` so that both sides fit,
    ``w = s sqrt(a)``, ``h = s / sqrt(a)``, and the corner uniform over the places it fits.
    """
    s = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u[..., 0]
    a = ASPECT_RANGE[0] + (ASPECT_RANGE[1] - ASPECT_RANGE[0]) * u[..., 1]
    a = np.clip(a, s**2, 1 / s**2)
    # min(., 1): a = s^2 gives w = 1 up to rounding, and the patch must stay inside the image
    w, h = np.minimum(s * np.sqrt(a), 1.0), np.minimum(s / np.sqrt(a), 1.0)
    x1, y1 = (1 - w) * u[..., 2], (1 - h) * u[..., 3]
    return np.stack((x1, y1, x1 + w, y1 + h), axis=-1)


def sample_patch(
    boxes: np.ndarray | Tensor, min_iou: float | None, u: np.ndarray
) -> tuple[np.ndarray | None, float]:
    """The first of the trial patches that overlaps some box by at least ``min_iou``.

    Args:
        boxes: ``[G, 4]`` xyxy fractions (the objects).
        min_iou: the constraint; ``None`` accepts any patch when there is at least one object.
        u: ``[T, 4]`` uniform numbers, one row per trial (``T = 50`` in the released code).

    Returns:
        ``(patch, best_iou)``: the ``[4]`` xyxy patch (fractions) and its largest IoU with the
        objects, or ``(None, 0.0)`` when no trial satisfies the constraint.

    Paper: §2.2 "Data augmentation" (the patch must overlap some object by at least the drawn
    minimum IoU, one of ``MIN_IOUS``).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None, 0.0
    trials = _patches(u)  # [T, 4]
    best = _iou_np(trials, boxes).max(axis=1)  # [T]
    ok = np.ones_like(best, dtype=bool) if min_iou is None else best >= min_iou
    if not ok.any():
        return None, 0.0
    first = int(np.argmax(ok))
    return trials[first], float(best[first])


@dataclass(frozen=True)
class Augmentation:
    """Everything one TrainTransform call decided, before any pixel is touched.

    ``expand``: ``(ratio, x, y)``, the image's top-left corner on the canvas in fractions of the
    canvas' free room, or ``None`` (no zoom out). ``crop``: ``[4]`` xyxy patch in fractions of the
    (zoomed-out) canvas, or ``None`` (whole canvas). ``sampler``: which candidate was picked (an
    entry of ``MIN_IOUS``, or ``"whole"``). Replace fields with ``dataclasses.replace`` to switch
    single steps off (the notebook shows the steps one at a time this way).
    """

    photometric: Photometric | None
    expand: tuple[float, float, float] | None
    crop: tuple[float, float, float, float] | None
    sampler: float | str | None
    flip: bool

    def window(self) -> np.ndarray:
        """The output's field of view as ``[4]`` xyxy in fractions of the original image.

        It may extend past [0, 1] where zoom out shows the mean-coloured canvas.
        """
        if self.expand is None:
            canvas = np.array([0.0, 0.0, 1.0, 1.0])
        else:
            r, ex, ey = self.expand
            # the image occupies [x0, x0 + 1] in canvas units of one image width
            x0, y0 = (r - 1) * ex, (r - 1) * ey
            canvas = np.array([-x0, -y0, r - x0, r - y0])
        if self.crop is None:
            return canvas
        size = canvas[2:] - canvas[:2]
        c = np.asarray(self.crop, dtype=np.float64)
        return np.concatenate((canvas[:2] + c[:2] * size, canvas[:2] + c[2:] * size))


def window_boxes(
    boxes: Tensor, window: np.ndarray, keep_centre: bool = True
) -> tuple[Tensor, Tensor]:
    """Boxes seen through a window: shifted and scaled to it, clipped, centre rule applied.

    Args:
        boxes: ``[N, 4]`` xyxy fractions of the original image.
        window: ``[4]`` xyxy fractions of the original image (may leave [0, 1]).
        keep_centre: keep only boxes whose centre lies in the window (the released code's rule).

    Returns:
        ``(boxes [K, 4]`` xyxy fractions of the window, ``keep [N]`` bool``)``; every kept box has
        ``x2 > x1`` and ``y2 > y1``.
    """
    w = torch.as_tensor(window, dtype=boxes.dtype)
    size = torch.cat((w[2:] - w[:2], w[2:] - w[:2]))  # [4]
    moved = ((boxes - torch.cat((w[:2], w[:2]))) / size).clamp(0, 1)  # [N, 4]
    keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])  # [N]
    if keep_centre:
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
        keep &= ((centre >= w[:2]) & (centre <= w[2:])).all(dim=1)
    return moved[keep], keep


# ---------------------------------------------------------------------------------------------
# Pixels: one resize of the visible part, distortion on the small image, paste on the mean
# ---------------------------------------------------------------------------------------------


def image_region(
    image_size: tuple[int, int], window: np.ndarray, size: int
) -> tuple[tuple[int, int, int, int], tuple[float, float, float, float]] | None:
    """Where the image lands in the ``size x size`` view of ``window``, and what of it shows.

    Args:
        image_size: ``(width, height)`` of the image in pixels.
        window: ``[4]`` xyxy fractions of the image (may leave [0, 1] where zoom out shows canvas).
        size: output side in pixels.

    Returns:
        ``(target, source)``: the output pixels ``(x1, y1, x2, y2)`` (end exclusive, snapped to
        whole pixels) and the image pixels (floats) that fill them; ``None`` when the window
        shows only canvas.
    """
    width, height = image_size
    wx1, wy1, wx2, wy2 = (window * np.array([width, height, width, height])).tolist()
    sx, sy = size / (wx2 - wx1), size / (wy2 - wy1)  # output pixels per image pixel
    tx1 = int(round(min(max(-wx1 * sx, 0), size)))
    ty1 = int(round(min(max(-wy1 * sy, 0), size)))
    tx2 = int(round(min(max((width - wx1) * sx, 0), size)))
    ty2 = int(round(min(max((height - wy1) * sy, 0), size)))
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
    """
    placed = image_region(image.size, window, size)
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


# ---------------------------------------------------------------------------------------------
# The transforms
# ---------------------------------------------------------------------------------------------


class TrainTransform:
    """The paper's training augmentation, from a PIL image (or tensor) to the model's input.

    Call as ``t(image, boxes, labels, difficult, generator=None)``; returns
    ``(image [3, size, size] float32 normalised, boxes [K, 4], labels [K], difficult [K])`` with
    the objects that survive the crop. ``K`` may be 0 (the "no constraint" patch can miss every
    object centre, as in the released code).

    With ``defer_photometric=True`` the call stops after the geometry and returns
    ``(image [3, size, size] uint8, boxes, labels, difficult, params [15])``: the photometric
    distortion and the normalisation are left to
    :func:`ssd_edu.data.batch_photometric.finish_batch`, which does them for a whole batch on the
    training device (``params`` says what to do; the random draws are the same either way).

    Args:
        size: output side in pixels (300 for SSD300).
        mean, std: RGB normalisation, [0, 1] scale; ``mean`` is also the zoom-out fill colour.
        distort, expand, crop, flip: switch single steps off (all on = the paper's recipe).
        defer_photometric: leave the pixel-wise steps to ``finish_batch`` (see above).

    Paper: §2.2 "Data augmentation" and §3.6.
    """

    def __init__(
        self,
        size: int = 300,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        distort: bool = True,
        expand: bool = True,
        crop: bool = True,
        flip: bool = True,
        defer_photometric: bool = False,
    ) -> None:
        if int(size) <= 0:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)
        self.distort, self.expand, self.crop, self.flip = distort, expand, crop, flip
        self.defer_photometric = defer_photometric

    def __repr__(self) -> str:
        steps = [s for s in ("distort", "expand", "crop", "flip") if getattr(self, s)]
        deferred = ", defer_photometric=True" if self.defer_photometric else ""
        return f"TrainTransform(size={self.size}, steps={'+'.join(steps) or 'none'}{deferred})"

    def draw(self, boxes: Tensor, generator: torch.Generator | None = None) -> Augmentation:
        """Decide every random choice for one image from its boxes alone (no pixels needed).

        Args:
            boxes: ``[N, 4]`` xyxy fractions of the image.
            generator: source of randomness; ``None`` uses torch's global generator.

        Returns:
            The :class:`Augmentation` (apply it with :meth:`apply`).
        """
        # one fixed-size draw: the generator's stream never depends on the image or the boxes
        u = torch.rand(_N_DRAWS, generator=generator, dtype=torch.float64).numpy()
        u_photo, u = u[:_N_PHOTO], u[_N_PHOTO:]
        u_expand, u = u[:_N_EXPAND], u[_N_EXPAND:]
        u_crop, u_flip = u[:_N_CROP], u[_N_CROP]
        photometric = _draw_photometric(u_photo) if self.distort else None

        expand = None
        if self.expand and u_expand[0] < 0.5:
            ratio = 1 + (MAX_ZOOM_OUT - 1) * u_expand[1]
            expand = (float(ratio), float(u_expand[2]), float(u_expand[3]))

        crop, sampler = None, None
        if self.crop:
            # objects in canvas fractions: the patches are drawn on the zoomed-out canvas
            gt = boxes.detach().cpu().double().numpy().reshape(-1, 4)
            if expand is not None:
                r, ex, ey = expand
                gt = (gt + np.array([(r - 1) * ex, (r - 1) * ey] * 2)) / r
            # all 6 x 50 trial patches and their overlaps at once; each sampler keeps its first
            # trial that meets its constraint (the released code stops at the first success)
            patches = _patches(u_crop[:-1].reshape(len(MIN_IOUS), MAX_TRIALS, 4))  # [6, 50, 4]
            best = _iou_np(patches, gt).max(axis=-1, initial=0.0)  # [6, 50]
            need = np.array([-1.0 if m is None else m for m in MIN_IOUS])[:, None]  # [6, 1]
            ok = (best >= need) & (len(gt) > 0)  # [6, 50]
            first = ok.argmax(axis=1)  # [6]
            candidates: list[tuple[object, float | str | None]] = [(None, "whole")]
            for k in np.flatnonzero(ok.any(axis=1)):
                patch = tuple(float(v) for v in patches[k, first[k]])
                candidates.append((patch, MIN_IOUS[k]))
            pick = min(int(u_crop[-1] * len(candidates)), len(candidates) - 1)
            crop, sampler = candidates[pick]

        flip = bool(self.flip and u_flip < 0.5)
        return Augmentation(photometric, expand, crop, sampler, flip)

    def apply(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        aug: Augmentation,
    ) -> tuple[Tensor, ...]:
        """Apply the decided :class:`Augmentation` to pixels and boxes."""
        _check_targets(boxes, labels, difficult)
        pil = to_pil(image)
        window = aug.window()
        photometric = None if self.defer_photometric else aug.photometric
        out = render_window(pil, window, self.size, _mean_colour(self.mean), photometric)
        new_boxes, keep = window_boxes(boxes.float(), window, keep_centre=aug.crop is not None)
        if aug.flip:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            new_boxes = torch.stack(
                (1 - new_boxes[:, 2], new_boxes[:, 1], 1 - new_boxes[:, 0], new_boxes[:, 3]), dim=1
            )
        targets = (new_boxes.float(), labels[keep].long(), difficult[keep].bool())
        if not self.defer_photometric:
            return normalize(out, self.mean, self.std), *targets
        placed = image_region(pil.size, window, self.size)
        x1, y1, x2, y2 = placed[0] if placed is not None else (0, 0, 0, 0)
        if aug.flip:
            x1, x2 = self.size - x2, self.size - x1
        params = pixel_params(aug.photometric, (x1, y1, x2, y2), self.mean, self.std)
        chw = np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))
        return torch.from_numpy(chw), *targets, params  # image [3, S, S] uint8

    def __call__(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, ...]:
        """Augment one image and its objects (see the class docstring for shapes)."""
        _check_targets(boxes, labels, difficult)
        return self.apply(image, boxes, labels, difficult, self.draw(boxes, generator))


class EvalTransform:
    """Test-time input: resize to ``size x size`` (aspect ratio not kept) and normalise.

    Call as ``t(image, boxes, labels, difficult, generator=None)``; boxes (fractions) pass
    through unchanged, since a warp to a square keeps fractions of width and height.

    Paper: §3 (the input is resized to 300x300 or 512x512).
    """

    def __init__(
        self,
        size: int = 300,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if int(size) <= 0:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"

    def __call__(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Resize and normalise; ``generator`` is accepted (and unused) so both transforms match."""
        _check_targets(boxes, labels, difficult)
        pil = to_pil(image)
        if pil.size != (self.size, self.size):
            pil = pil.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return normalize(pil, self.mean, self.std), boxes.float(), labels.long(), difficult.bool()
