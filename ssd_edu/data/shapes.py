"""ShapesDataset: labelled detection images made on the fly, so every notebook has data offline.

Each image is a cluttered background (noise, stripes or a gradient, in low-saturation colours) with
one to a few solid, vividly coloured shapes: rectangles, ellipses, triangles and crosses. Shape
sizes run from about 10 pixels to nearly the whole image, log-uniformly, so the small objects that
SSD's early feature maps handle are as common as the large ones that its late maps handle (the
multi-scale idea of §2.1). Shapes may overlap a little (box IoU below 0.3); larger shapes are
painted first so a smaller one is never hidden.

Everything is a function of ``(seed, index)``: item ``i`` is the same image in any process, on any
run, in any order. A training transform (``augment=True``) additionally depends on the epoch
(:meth:`ShapesDataset.set_epoch`), through :func:`~ssd_edu.data.transforms.item_generator`.

Formats (as every dataset here): an item is ``(image, boxes, labels, difficult)`` with
``image [3, S, S]`` float32 RGB normalised by ``IMAGENET_MEAN``/``IMAGENET_STD``,
``boxes [N, 4]`` float32 xyxy fractions (the tight box of the painted pixels: pixel columns
``c1..c2`` give ``x1 = c1 / S``, ``x2 = (c2 + 1) / S``), ``labels [N]`` int64 in ``1..4``
(label ``l`` is ``SHAPE_CLASSES[l - 1]``), ``difficult [N]`` bool (all False).

Paper: §2.1 (detections at multiple scales) motivates the size range; the data itself is ours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ssd_edu.boxes import _iou
from ssd_edu.data.loader import collate_detections
from ssd_edu.data.transforms import TrainTransform, item_generator
from ssd_edu.imagenet import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = ["SHAPE_CLASSES", "ShapesDataset", "collate_detections", "render_shapes"]

SHAPE_CLASSES: tuple[str, ...] = ("rectangle", "ellipse", "triangle", "cross")

MAX_BOX_IOU = 0.3  # two shapes overlap at most this much, so both stay recognisable
# colour families (render_shapes(families=F)): a hue within FAMILY_SPREAD / F of f / F. With F = 5
# the families' centres sit 72 degrees apart and a hue strays at most 11 degrees from its centre,
# so even after the paper's +-18 degree hue distortion two families stay 14 degrees apart.
FAMILY_SPREAD = 0.15
MAX_FAMILIES = 5


def _shape_mask(kind: int, w: int, h: int) -> np.ndarray:
    """``[h, w]`` bool mask of shape ``kind`` (0-based index into SHAPE_CLASSES) in its box."""
    u = (np.arange(w, dtype=np.float32) + 0.5) / w  # [w] pixel centres in [0, 1]
    v = (np.arange(h, dtype=np.float32) + 0.5) / h  # [h]
    uu, vv = u[None, :], v[:, None]
    if kind == 0:  # rectangle
        return np.ones((h, w), dtype=bool)
    if kind == 1:  # ellipse touching the four sides
        return (2 * uu - 1) ** 2 + (2 * vv - 1) ** 2 <= 1.0
    if kind == 2:  # triangle, apex up, base along the bottom
        return np.abs(uu - 0.5) <= vv / 2
    # cross: two bars a third of the box thick
    return (np.abs(uu - 0.5) <= 1 / 6) | (np.abs(vv - 0.5) <= 1 / 6)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV in [0, 1] -> RGB in [0, 1], ``[..., 3]``."""
    h, s, v = np.asarray(h), np.asarray(s), np.asarray(v)
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6) % 6  # [..., 3]
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered, low-saturation background: ``[H, W, 3]`` float32 in [0, 255]."""
    base = _hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.75)) * 255  # [3]
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]  # [H, 1]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]  # [1, W]
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y  # [H, W]
    style = rng.integers(3)
    if style == 0:  # plain
        pattern = np.zeros((height, width), dtype=np.float32)
    elif style == 1:  # stripes
        pattern = np.sin(along * rng.uniform(4, 20) + rng.uniform(0, 2 * np.pi))
    else:  # gradient
        pattern = along
    amplitude = rng.uniform(10, 40)
    tint = rng.uniform(0.7, 1.3, size=3).astype(np.float32)  # stripes/gradient slightly coloured
    image = base.astype(np.float32) + amplitude * pattern[..., None] * tint  # [H, W, 3]
    image += np.float32(rng.uniform(0, 12)) * rng.standard_normal((height, width, 1), np.float32)
    return image


def render_shapes(
    rng: np.random.Generator,
    width: int,
    height: int,
    max_objects: int = 4,
    min_size: float = 10.0,
    max_size: float | None = None,
    n_classes: int = len(SHAPE_CLASSES),
    families: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint one scene: a background and 1..max_objects shapes, all drawn from ``rng``.

    Colours: by default the shapes of a scene get hues well apart from each other, and the hue
    says nothing about the shape. With ``families=F`` each shape also draws a colour family
    ``f`` in ``0..F-1`` and its hue lies within ``FAMILY_SPREAD / F`` of ``f / F`` round the
    colour circle, so shape and family together name one of ``n_classes * F`` classes that can be
    told apart by eye (and by a network: the families stay apart by more than the paper's +-18
    degree hue distortion).

    Args:
        rng: numpy generator; the scene is a function of its state.
        width, height: image size in pixels.
        max_objects: at most this many shapes (fewer when they do not fit without overlap).
        min_size, max_size: range of ``sqrt(w h)`` in pixels (log-uniform); ``max_size``
            defaults to 0.9 of the shorter side.
        n_classes: how many of the shape kinds to use.
        families: ``None`` (hue carries no class) or the number ``F`` of colour families.

    Returns:
        ``image [H, W, 3]`` uint8, ``boxes [N, 4]`` int pixel edges ``(c1, r1, c2 + 1, r2 + 1)``,
        ``kinds [N]`` int: the shape in ``0..n_classes-1``, or with ``families=F`` the class
        ``shape * F + family`` in ``0..n_classes * F - 1``.
    """
    if families is not None and not 1 <= families <= MAX_FAMILIES:
        raise ValueError(f"families must be None or in 1..{MAX_FAMILIES}, got {families}")
    image = _background(rng, width, height)
    short = min(width, height)
    max_size = 0.9 * short if max_size is None else max_size
    n = int(rng.integers(1, max_objects + 1))
    # biggest first: a later (smaller) shape is painted on top and is never hidden
    sizes = np.sort(np.exp(rng.uniform(np.log(min_size), np.log(max_size), size=n)))[::-1]
    hues = (rng.random() + 0.618034 * np.arange(n)) % 1.0  # well-separated hues
    boxes: list[tuple[int, int, int, int]] = []
    kinds: list[int] = []
    for size, hue in zip(sizes, hues):
        kind = int(rng.integers(n_classes))
        if families is not None:  # the hue names the family: f / F, give or take the spread
            family = int(rng.integers(families))
            hue = (family + rng.uniform(-FAMILY_SPREAD, FAMILY_SPREAD)) / families % 1.0
            kind = kind * families + family
        aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
        w = int(np.clip(round(size * np.sqrt(aspect)), 4, width))
        h = int(np.clip(round(size / np.sqrt(aspect)), 4, height))
        for _ in range(10):  # a few tries to find a place that overlaps little
            x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            if _fits((x0, y0, x0 + w, y0 + h), boxes):
                break
        else:
            continue
        mask = _shape_mask(kind // (families or 1), w, h)  # [h, w]
        colour = _hsv_to_rgb(np.float32(hue), rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0)) * 255
        image[y0 : y0 + h, x0 : x0 + w][mask] = colour
        cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
        boxes.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
        kinds.append(kind)
    image_u8 = np.clip(image, 0, 255).astype(np.uint8)
    return image_u8, np.array(boxes, dtype=np.int64).reshape(-1, 4), np.array(kinds, np.int64)


def _fits(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    """Whether ``box`` (pixel edges) overlaps every placed box by IoU <= MAX_BOX_IOU."""
    if not placed:
        return True
    # float64 on whole pixels: areas are exact integers, so the quotient is the same one a plain
    # integer formula gives, and every scene stays as it was
    # (box_iou's arithmetic, on coordinates-first tensors: [4] against [4, G], unchecked, since
    # this runs for every placement attempt of every image)
    new = torch.tensor(box, dtype=torch.float64)  # [4]
    old = torch.tensor(placed, dtype=torch.float64).T  # [4, G]
    return bool((_iou(new, old) <= MAX_BOX_IOU).all())  # [G]


Transform = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]


class ShapesDataset(Dataset):
    """``n`` synthetic detection images, item ``i`` made from ``(seed, i)`` when asked for.

    Args:
        n: number of items.
        image_size: side ``S`` of the square images in pixels.
        seed: base seed; two datasets with different seeds share no images (use one for
            training, another for held-out evaluation).
        transform: called as ``transform(image, boxes, labels, difficult, generator=g)`` with a
            PIL image; ``None`` gives the image normalised as the model expects (no augmentation).
        augment: use the paper's :class:`~ssd_edu.data.transforms.TrainTransform` (ignored when
            ``transform`` is given).
        max_objects: at most this many shapes per image.
        min_size, max_size: range of shape sizes ``sqrt(w h)`` in pixels.

    Paper: §2.1 (objects at many scales); items follow docs/design.md's dataset format.
    """

    def __init__(
        self,
        n: int,
        image_size: int = 128,
        seed: int = 0,
        transform: Transform | None = None,
        augment: bool = False,
        max_objects: int = 4,
        min_size: float = 10.0,
        max_size: float | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if int(image_size) < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        max_size = 0.9 * image_size if max_size is None else max_size
        if not 4 <= min_size <= max_size <= image_size:
            raise ValueError(
                f"need 4 <= min_size <= max_size <= image_size, got min_size={min_size}, "
                f"max_size={max_size}, image_size={image_size}"
            )
        self.n, self.image_size, self.seed = int(n), int(image_size), int(seed)
        self.max_objects, self.min_size, self.max_size = max_objects, min_size, max_size
        self.mean, self.std = mean, std
        if transform is None and augment:
            transform = TrainTransform(size=self.image_size, mean=mean, std=std)
        self.transform = transform
        self.epoch = 0
        self.class_names = SHAPE_CLASSES
        self.image_ids = [f"shapes-{self.seed}-{i}" for i in range(self.n)]

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: augmentation differs per epoch, the underlying images do not."""
        self.epoch = int(epoch)

    def render(self, index: int) -> tuple[np.ndarray, Tensor, Tensor]:
        """The raw item: ``image [S, S, 3]`` uint8, ``boxes [N, 4]`` fractions, ``labels [N]``."""
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        index %= self.n
        rng = np.random.default_rng([self.seed, index])
        s = self.image_size
        image, boxes_px, kinds = render_shapes(
            rng, s, s, self.max_objects, self.min_size, self.max_size
        )
        boxes = torch.from_numpy(boxes_px).float() / s  # [N, 4]
        return image, boxes, torch.from_numpy(kinds) + 1  # labels 1..C; 0 is background

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        image, boxes, labels = self.render(index)
        difficult = torch.zeros(len(labels), dtype=torch.bool)
        if self.transform is None:
            return normalize(image, self.mean, self.std), boxes, labels, difficult
        g = item_generator(self.seed, self.epoch, index % self.n)
        return self.transform(Image.fromarray(image), boxes, labels, difficult, generator=g)
