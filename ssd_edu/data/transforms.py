"""The paper's training augmentation, from a photo and its boxes to the model's input; test input.

SSD learns objects of every size and position from few images because each training image is
re-drawn every time it is seen. :class:`TrainTransform` does the released code's steps one after
another, on the full image: (1) photometric distortion (``ssd_edu/data/photometric.py``); (2) zoom
out onto a real mean-coloured canvas; (3) the min-IoU crop, one candidate picked uniformly among
the whole image and the samplers of ``MIN_IOUS`` that found a patch; (4) horizontal flip (steps
2-4 in ``ssd_edu/data/geometry.py``); (5) resize to ``size x size`` (bilinear, aspect ratio not
kept) and normalise (``ssd_edu/imagenet.py``).

It first decides every random choice from the boxes alone (:meth:`TrainTransform.draw`, an
:class:`~ssd_edu.data.geometry.Augmentation`), then renders it (:meth:`TrainTransform.apply`). The
fast layer's ``ssd_edu.fast.augment.FastTrainTransform`` makes the same draw and renders zoom out
and crop as one window, resized once, with the colours done on the small result or on the GPU.

Randomness: every random number of one call comes from one ``torch.Generator`` passed in (or from
torch's global generator when none is), always the same count of them. Datasets derive the
generator of item ``i`` from ``(seed, epoch, i)`` with :func:`item_generator`, so the same item
gets the same augmentation in any process, DataLoader workers included.

Formats: images in are PIL images or ``[3, H, W]`` tensors (uint8, or floats in [0, 1]); out,
``[3, size, size]`` float32 normalised RGB. Boxes in and out are ``[N, 4]`` xyxy fractions;
labels ``[N]`` int64 and difficult ``[N]`` bool are filtered together with the boxes.

Paper: §2.2 "Data augmentation", §3.6 (zoom out), Table 2 (the crop is worth +8.8 mAP).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ssd_edu.boxes import box_iou
from ssd_edu.data.geometry import (
    MAX_TRIALS,
    MAX_ZOOM_OUT,
    MIN_IOUS,
    Augmentation,
    crop,
    first_success,
    flip,
    sample_patch,
    trial_patches,
    zoom_out,
)
from ssd_edu.data.images import to_rgb
from ssd_edu.data.photometric import (
    N_UNIFORMS,
    Photometric,
    draw_photometric,
    photometric_distort,
)
from ssd_edu.imagenet import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

# handed on: notebooks and older code import these from here
__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_IOUS",
    "Augmentation",
    "EvalTransform",
    "Photometric",
    "TrainTransform",
    "check_targets",
    "denormalize",
    "item_generator",
    "mean_colour",
    "normalize",
    "photometric_distort",
    "sample_patch",
    "to_pil",
]

# How many uniform numbers one draw takes (always the same count, so that the stream of a seeded
# generator never depends on the image): photometric, zoom out, 6 samplers x 50 trials x 4 + the
# pick among the candidates, flip.
_N_EXPAND = 4
_N_CROP = len(MIN_IOUS) * MAX_TRIALS * 4 + 1
_N_DRAWS = N_UNIFORMS + _N_EXPAND + _N_CROP + 1


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator for item ``index`` in ``epoch``: a function of the three numbers only.

    Datasets call this in ``__getitem__``, so results do not depend on which DataLoader worker
    process draws the item nor on the order items are drawn in.

    Args:
        seed, epoch, index: the run's seed, the epoch, the item.

    Returns:
        A CPU ``torch.Generator``.

    Paper: not in the paper; it makes the §2.2 augmentation reproducible.
    """
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def check_targets(boxes: Tensor, labels: Tensor, difficult: Tensor) -> None:
    """Raise a ValueError naming the argument unless boxes are [N, 4], labels and difficult [N]."""
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
        return to_rgb(image)  # 16-bit and float images scaled, decoding errors name the file
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
        got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a PIL image or a [3, H, W] tensor, got {got}")
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy())


def mean_colour(mean: tuple[float, float, float]) -> tuple[int, int, int]:
    """The normalisation mean as RGB 0..255: the zoom-out canvas' fill (0 after normalising)."""
    return tuple(int(round(c * 255)) for c in mean)


class TrainTransform:
    """The paper's training augmentation, from a PIL image (or tensor) to the model's input.

    Call as ``t(image, boxes, labels, difficult, generator=None)``; returns
    ``(image [3, size, size] float32 normalised, boxes [K, 4], labels [K], difficult [K])`` with
    the objects that survive the crop. ``K`` may be 0 (the "no constraint" patch can miss every
    object centre, as in the released code).

    Args:
        size: output side in pixels (300 for SSD300).
        mean, std: RGB normalisation, [0, 1] scale; ``mean`` is also the zoom-out fill colour.
        distort, expand, crop, flip: switch single steps off (all on = the paper's recipe).

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
    ) -> None:
        if int(size) <= 0:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)
        self.distort, self.expand, self.crop, self.flip = distort, expand, crop, flip

    def __repr__(self) -> str:
        steps = [s for s in ("distort", "expand", "crop", "flip") if getattr(self, s)]
        return f"{type(self).__name__}(size={self.size}, steps={'+'.join(steps) or 'none'})"

    def draw(self, boxes: Tensor, generator: torch.Generator | None = None) -> Augmentation:
        """Decide every random choice for one image from its boxes alone (no pixels needed).

        Args:
            boxes: ``[N, 4]`` xyxy fractions of the image.
            generator: source of randomness; ``None`` uses torch's global generator.

        Returns:
            The :class:`~ssd_edu.data.geometry.Augmentation` (apply it with :meth:`apply`).

        Paper: §2.2 "Data augmentation" (the samplers, the pick, the flip), §3.6 (zoom out).
        """
        # one fixed-size draw: the generator's stream never depends on the image or the boxes
        u = torch.rand(_N_DRAWS, generator=generator, dtype=torch.float64)
        u_photo, u_expand, u_crop, u_flip = u.split([N_UNIFORMS, _N_EXPAND, _N_CROP, 1])
        photometric = draw_photometric(u_photo.tolist()) if self.distort else None

        expand = None
        gate, u_ratio, u_x, u_y = u_expand.tolist()
        if self.expand and gate < 0.5:
            expand = (1 + (MAX_ZOOM_OUT - 1) * u_ratio, u_x, u_y)

        patch, sampler = None, None
        if self.crop:
            gt = boxes.detach().cpu().double().reshape(-1, 4)  # [G, 4]
            if expand is not None:
                # the objects in fractions of the canvas, where the patches are drawn
                r, ex, ey = expand
                gt = (gt + gt.new_tensor([(r - 1) * ex, (r - 1) * ey] * 2)) / r
            candidates: list[tuple] = [(None, "whole")]  # (patch, sampler)
            if len(gt) > 0:
                # each sampler's 50 trial patches, and their overlaps with the objects in one
                # box_iou call ([6, 50, 4] against [G, 4]) rather than in six calls of
                # sample_patch, which would cost 0.5 ms an image more (tests hold the two equal)
                trials = trial_patches(u_crop[:-1].reshape(len(MIN_IOUS), MAX_TRIALS, 4))
                best = box_iou(trials, gt).max(dim=-1).values.tolist()  # [6][50]
                for k, min_iou in enumerate(MIN_IOUS):  # the released code's loop over samplers
                    first = first_success(best[k], min_iou)
                    if first is not None:
                        candidates.append((tuple(trials[k, first].tolist()), min_iou))
            pick = min(int(u_crop[-1].item() * len(candidates)), len(candidates) - 1)
            patch, sampler = candidates[pick]

        mirror = bool(self.flip and u_flip.item() < 0.5)
        return Augmentation(photometric, expand, patch, sampler, mirror)

    def apply(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        aug: Augmentation,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Apply the decided augmentation: the paper's steps, in its order, on the full image.

        Args:
            image: PIL image or ``[3, H, W]`` tensor.
            boxes: ``[N, 4]`` xyxy fractions; labels, difficult: ``[N]``.
            aug: from :meth:`draw`.

        Returns:
            ``(image [3, size, size] float32 normalised, boxes [K, 4], labels [K], difficult [K])``.

        Paper: §2.2 "Data augmentation", §3.6.
        """
        check_targets(boxes, labels, difficult)
        pil = to_pil(image)
        boxes = boxes.double()  # the box arithmetic in float64; float32 out
        if aug.photometric is not None:
            pil = photometric_distort(pil, aug.photometric)
        if aug.expand is not None:
            pil, boxes = zoom_out(pil, boxes, aug.expand, mean_colour(self.mean))
        if aug.crop is not None:
            pil, boxes, keep = crop(pil, boxes, aug.crop)
            labels, difficult = labels[keep], difficult[keep]
        if aug.flip:
            pil, boxes = flip(pil, boxes)
        pil = pil.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return normalize(pil, self.mean, self.std), boxes.float(), labels.long(), difficult.bool()

    def __call__(
        self,
        image: Image.Image | Tensor,
        boxes: Tensor,
        labels: Tensor,
        difficult: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, ...]:
        """Augment one image and its objects (see the class docstring for shapes)."""
        check_targets(boxes, labels, difficult)
        return self.apply(image, boxes, labels, difficult, self.draw(boxes, generator))


class EvalTransform:
    """Test-time input: resize to ``size x size`` (aspect ratio not kept) and normalise.

    Call as ``t(image, boxes, labels, difficult, generator=None)``; boxes (fractions) pass
    through unchanged, since a warp to a square keeps fractions of width and height.

    Args:
        size: output side in pixels.
        mean, std: RGB normalisation, [0, 1] scale.

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
        check_targets(boxes, labels, difficult)
        pil = to_pil(image)
        if pil.size != (self.size, self.size):
            pil = pil.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return normalize(pil, self.mean, self.std), boxes.float(), labels.long(), difficult.bool()
