"""Default boxes: a fixed set of boxes tiled over several feature maps (section 2.2).

SSD does not search for boxes; it fixes in advance a set of *default boxes* (``priors`` in code)
and learns, for each, class scores and a small correction. Map ``k`` of ``m`` gets the scale

    s_k = s_min + (s_max - s_min) / (m - 1) * (k - 1),   k in [1, m]          (paper eq. 4)

and at every cell boxes of that scale with aspect ratios ``a_r``: width ``s_k * sqrt(a_r)``, height
``s_k / sqrt(a_r)``, plus one extra square box of scale ``s_k' = sqrt(s_k * s_{k+1})``.

Order of the output (docs/design.md, and the order of the network's outputs): map ``k`` (largest map
first), then row ``i``, then column ``j``, then per cell
``[s_k square, s_k' square, (a, 1/a) for each ratio a]``; the cell centre is
``((j + 0.5) * step_k / image_size, (i + 0.5) * step_k / image_size)``.

Sizes are given in pixels of the input (``min_sizes``, ``max_sizes``), as the released models do;
the boxes come out as fractions, ``[P, 4]`` cxcywh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PriorConfig:
    """Where the default boxes go and how large they are, one entry per feature map.

    Args:
        image_size: side of the square input, in pixels (300 for SSD300).
        feature_maps: side ``f_k`` of each square feature map, largest first.
        steps: pixels of input per feature-map cell (``image_size / f_k`` up to rounding).
        min_sizes: side of the small square box ``s_k * image_size``, in pixels.
        max_sizes: ``s_{k+1} * image_size``; the extra square has side ``sqrt(min * max)``.
        aspect_ratios: per map, ratios ``a > 1``; each adds a box ``a`` wide and one ``1/a`` wide.
        clip: clip each default box's corners to the image. The released Caffe VOC models use
            ``clip=False``; several PyTorch ports clip (ssd.pytorch clamps each ``cx, cy, w, h``
            value to ``[0, 1]`` rather than the corners). Boxes at the border then keep their
            nominal size unless this is set.

    Paper: §2.2 "Choosing scales and aspect ratios for default boxes".
    """

    image_size: int
    feature_maps: tuple[int, ...]
    steps: tuple[float, ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    clip: bool = False

    def __post_init__(self) -> None:
        # frozen dataclass: normalise lists to tuples so configs compare and hash by value
        for name in ("feature_maps", "steps", "min_sizes", "max_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "aspect_ratios", tuple(tuple(r) for r in self.aspect_ratios))

        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {self.image_size!r}")
        m = len(self.feature_maps)
        if m == 0:
            raise ValueError("feature_maps must name at least one feature map, got ()")
        for name in ("steps", "min_sizes", "max_sizes", "aspect_ratios"):
            if len(getattr(self, name)) != m:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries but feature_maps has {m}: "
                    f"give one per feature map"
                )
        for k, f in enumerate(self.feature_maps):
            if not isinstance(f, int) or f <= 0:
                raise ValueError(f"feature_maps[{k}] must be a positive int, got {f!r}")
        for name in ("steps", "min_sizes", "max_sizes"):
            for k, v in enumerate(getattr(self, name)):
                if not 0 < v < math.inf:  # NaN fails both comparisons
                    raise ValueError(f"{name}[{k}] must be positive and finite, got {v!r}")
        for k, (lo, hi) in enumerate(zip(self.min_sizes, self.max_sizes)):
            if hi < lo:
                raise ValueError(
                    f"max_sizes[{k}] = {hi} is smaller than min_sizes[{k}] = {lo}; "
                    f"the extra square box sqrt(min * max) must not shrink"
                )
        for k, ratios in enumerate(self.aspect_ratios):
            for a in ratios:
                if not 1 < a < math.inf:
                    raise ValueError(
                        f"aspect_ratios[{k}] contains {a!r}; give finite ratios > 1 only "
                        f"(each ratio a adds both a and 1/a, and ratio 1 is always present)"
                    )

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        """``k`` per map: two squares plus two boxes for each ratio."""
        return tuple(2 + 2 * len(r) for r in self.aspect_ratios)

    @property
    def boxes_per_map(self) -> tuple[int, ...]:
        """``k * f_k * f_k`` per map."""
        return tuple(k * f * f for k, f in zip(self.boxes_per_location, self.feature_maps))

    @property
    def num_priors(self) -> int:
        """Total number of default boxes ``P``."""
        return sum(self.boxes_per_map)

    @classmethod
    def from_scales(
        cls,
        image_size: int,
        feature_maps: Sequence[int],
        aspect_ratios: Sequence[Sequence[float]],
        s_min: float = 0.2,
        s_max: float = 0.9,
        clip: bool = False,
    ) -> PriorConfig:
        """A config whose sizes follow the paper's scale equation, for any input size.

        Map ``k`` gets ``s_k`` from :func:`paper_scales`; the extra square uses ``s_{k+1}``, where
        the scale after the last map continues the same arithmetic step. Steps are
        ``image_size / f_k``, so cell centres are ``((j + 0.5) / f_k, (i + 0.5) / f_k)``.

        Paper: §2.2, eq. 4.
        """
        m = len(feature_maps)
        scales = paper_scales(m, s_min, s_max)
        delta = (s_max - s_min) / (m - 1) if m > 1 else 0.0
        following = scales[1:] + [scales[-1] + delta if m > 1 else s_max]
        return cls(
            image_size=image_size,
            feature_maps=tuple(feature_maps),
            steps=tuple(image_size / f for f in feature_maps),
            # rounded so that printed configs read 38.4, not 38.400000000000006
            min_sizes=tuple(round(s * image_size, 6) for s in scales),
            max_sizes=tuple(round(s * image_size, 6) for s in following),
            aspect_ratios=tuple(tuple(r) for r in aspect_ratios),
            clip=clip,
        )


def paper_scales(m: int, s_min: float = 0.2, s_max: float = 0.9) -> list[float]:
    """The scale ``s_k`` of each of ``m`` feature maps, evenly spaced from ``s_min`` to ``s_max``.

    Args:
        m: number of feature maps.
        s_min: scale of the lowest (largest) map.
        s_max: scale of the highest (smallest) map.

    Returns:
        ``[s_1, ..., s_m]``; ``[s_min]`` when ``m == 1``.

    Paper: §2.2, eq. 4 (``s_min = 0.2``, ``s_max = 0.9``).
    """
    if m < 1:
        raise ValueError(f"m (number of feature maps) must be at least 1, got {m}")
    if not 0 < s_min <= s_max:
        raise ValueError(f"need 0 < s_min <= s_max, got s_min={s_min}, s_max={s_max}")
    if m == 1:
        return [s_min]
    return [s_min + (s_max - s_min) * (k - 1) / (m - 1) for k in range(1, m + 1)]


# The released Caffe VOC configurations (weiliu89/caffe, ssd_pascal.py). Their first map, conv4_3,
# gets scale 0.1 rather than s_min = 0.2, and the pixel sizes are rounded as the script rounds them.
SSD300_VOC = PriorConfig(
    image_size=300,
    feature_maps=(38, 19, 10, 5, 3, 1),
    steps=(8, 16, 32, 64, 100, 300),
    min_sizes=(30, 60, 111, 162, 213, 264),
    max_sizes=(60, 111, 162, 213, 264, 315),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
)

SSD512_VOC = PriorConfig(
    image_size=512,
    feature_maps=(64, 32, 16, 8, 4, 2, 1),
    steps=(8, 16, 32, 64, 128, 256, 512),
    min_sizes=(35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8),
    max_sizes=(76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
)

# The small configuration of the CPU notebooks: 128 x 128 inputs, five maps (strides 8 to 128).
# Scales from 0.1 so that the smallest synthetic shapes (about 10 px) still have a default box.
SSD128_SHAPES = PriorConfig.from_scales(
    image_size=128,
    feature_maps=(16, 8, 4, 2, 1),
    aspect_ratios=((2,), (2, 3), (2, 3), (2,), (2,)),
    s_min=0.1,
    s_max=0.9,
)


def cell_boxes_wh(cfg: PriorConfig, k: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Width and height of the default boxes of one cell of map ``k``, in docs/design.md order.

    Args:
        cfg: the configuration.
        k: map index, 0-based.
        dtype: floating dtype of the result.

    Returns:
        ``[boxes_per_location[k], 2]`` (w, h) as fractions of the image.
    """
    if not 0 <= k < len(cfg.feature_maps):
        raise IndexError(f"map index k={k} out of range for {len(cfg.feature_maps)} feature maps")
    s_k = cfg.min_sizes[k] / cfg.image_size
    s_k_prime = math.sqrt(s_k * cfg.max_sizes[k] / cfg.image_size)
    wh = [(s_k, s_k), (s_k_prime, s_k_prime)]
    for a in cfg.aspect_ratios[k]:
        r = math.sqrt(a)
        wh += [(s_k * r, s_k / r), (s_k / r, s_k * r)]
    return torch.tensor(wh, dtype=dtype)


def default_boxes(
    cfg: PriorConfig, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """All default boxes of a configuration, in the order the network predicts them.

    Args:
        cfg: the configuration (e.g. ``SSD300_VOC``).
        device: where to build the tensor.
        dtype: floating dtype of the result.

    Returns:
        ``[P, 4]`` cxcywh fractions; ``P = cfg.num_priors`` (8732 for SSD300_VOC).

    Paper: §2.2 and eq. 4; the order follows the released models' PriorBox layers.
    """
    per_map = []
    for k, f in enumerate(cfg.feature_maps):
        offsets = (torch.arange(f, dtype=torch.float64) + 0.5) * cfg.steps[k] / cfg.image_size
        cy, cx = torch.meshgrid(offsets, offsets, indexing="ij")  # [f, f], row i then column j
        centres = torch.stack((cx, cy), dim=-1).reshape(f * f, 1, 2)  # [f*f, 1, 2]
        wh = cell_boxes_wh(cfg, k, dtype=torch.float64)[None]  # [1, A, 2]
        boxes = torch.cat(torch.broadcast_tensors(centres, wh), dim=-1)  # [f*f, A, 4]
        per_map.append(boxes.reshape(-1, 4))
    priors = torch.cat(per_map)  # [P, 4]
    if cfg.clip:
        # clip corners to the image (Caffe's PriorBox clip), then return to centre and size
        x1y1 = (priors[:, :2] - priors[:, 2:] / 2).clamp(0, 1)
        x2y2 = (priors[:, :2] + priors[:, 2:] / 2).clamp(0, 1)
        priors = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim=-1)
    return priors.to(device=device, dtype=dtype)
