"""Default-box coverage: which objects of a dataset some default box can match at all.

Training (§2.2, "Matching strategy") makes a default box a positive for an object when their
jaccard overlap is at least 0.5. An object that *no* default box overlaps by 0.5 gets only the
forced match, one poorly placed box, and at test time the network must stretch that box a long way;
such objects are found late or never. *Coverage* is the share of objects whose best default box,
anywhere in the image, reaches the threshold. It is measured honestly: every object against every
actual default box of the configuration (its real centres and sizes, eq. 4), not against an
idealised box centred on the object.

It is broken down by object size, ``sqrt(w h)`` as a fraction of the image side (the paper's
scale ``s``), and by aspect ratio ``w / h`` in the network's square input (the boxes are fractions,
so the ratio is the one the network sees after the square resize).

:func:`fit_default_boxes` then chooses ``s_min``, ``s_max`` (eq. 4) and the aspect ratios from the
training boxes, keeping the paper's structure, and never returns a configuration that covers the
training boxes worse than the one it started from (``ssd_edu/fit_boxes.py``).

Formats (docs/design.md): ground truth ``[N, 4]`` xyxy fractions; default boxes ``[P, 4]`` cxcywh.

Paper: §2.2 "Matching strategy" and "Choosing scales and aspect ratios for default boxes", eq. 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ssd_edu.boxes import _check_boxes, box_iou, cxcywh_to_xyxy
from ssd_edu.priors import PriorConfig, default_boxes

# size bins: sqrt(w h) as a fraction of the image side (4, 8, 16, 32, 64 px at 128 px)
SIZE_EDGES: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
# aspect-ratio bins of w / h, edges between the paper's 1/3, 1/2, 1, 2, 3
RATIO_EDGES: tuple[float, ...] = (1 / 2.5, 1 / 1.5, 1.5, 2.5)
# IoU matrix entries per chunk: objects are compared with every default box a chunk at a time
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class Coverage:
    """How well a set of default boxes covers a set of objects.

    Attributes:
        best_iou: ``[N]`` each object's highest jaccard overlap with any default box.
        scale: ``[N]`` ``sqrt(w h)`` of each object, a fraction of the image side.
        ratio: ``[N]`` ``w / h`` of each object.
        threshold: the overlap that counts as covered (0.5, the paper's matching threshold).
        image_size: input side in pixels (for labels in pixels), or None.
        size_edges, ratio_edges: bin edges of :meth:`by_size` and :meth:`by_ratio`.
    """

    best_iou: Tensor
    scale: Tensor
    ratio: Tensor
    threshold: float = 0.5
    image_size: int | None = None
    size_edges: tuple[float, ...] = SIZE_EDGES
    ratio_edges: tuple[float, ...] = RATIO_EDGES

    @property
    def covered(self) -> Tensor:
        """``[N]`` bool: the object has a default box with overlap ``>= threshold``."""
        return self.best_iou >= self.threshold

    @property
    def n_objects(self) -> int:
        return int(self.best_iou.numel())

    @property
    def n_covered(self) -> int:
        return int(self.covered.sum())

    @property
    def share(self) -> float:
        """Covered share of all objects; 1.0 when there are no objects (nothing is missed)."""
        return self.n_covered / self.n_objects if self.n_objects else 1.0

    def by_size(self) -> list[tuple[str, int, int]]:
        """``(label, objects, covered)`` per size bin, smallest first; the counts add up."""
        return self._bins(self.scale, self.size_edges, self._size_label)

    def by_ratio(self) -> list[tuple[str, int, int]]:
        """``(label, objects, covered)`` per ``w / h`` bin, tallest first."""
        return self._bins(self.ratio, self.ratio_edges, lambda v: f"{v:.2g}")

    def _size_label(self, v: float) -> str:
        return f"{v:.3g}" + (f" ({v * self.image_size:.0f} px)" if self.image_size else "")

    def _bins(self, values: Tensor, edges: Sequence[float], label) -> list[tuple[str, int, int]]:
        # bucketize with right=True puts a value equal to an edge in the bin above it
        index = torch.bucketize(values, torch.tensor(edges, dtype=values.dtype), right=True)
        names = (
            [f"< {label(edges[0])}"]
            + [f"{label(lo)} - {label(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]
            + [f">= {label(edges[-1])}"]
        )
        covered = self.covered
        return [
            (name, int((index == b).sum()), int((covered & (index == b)).sum()))
            for b, name in enumerate(names)
        ]

    def table(self) -> str:
        """The share covered overall, per size and per aspect ratio, as aligned text."""
        lines = [
            f"default-box coverage: {self.n_covered} of {self.n_objects} objects "
            f"({100 * self.share:.1f}%) have a default box with IoU >= {self.threshold:g}"
        ]
        for title, rows in (("size sqrt(w h)", self.by_size()), ("aspect w/h", self.by_ratio())):
            width = max(len(title), *(len(name) for name, n, _ in rows if n), 0)
            lines.append(f"  {title:<{width}}  objects  covered")
            for name, n, c in rows:
                if not n:  # an empty bin says nothing; the counts still add up without it
                    continue
                share = f"{100 * c / n:5.1f}%"
                lines.append(f"  {name:<{width}}  {n:7d}  {share}")
        return "\n".join(lines)


def as_boxes(boxes: Tensor | Sequence[Tensor], name: str = "boxes") -> Tensor:
    """Ground-truth boxes as one checked ``[N, 4]`` float tensor of xyxy fractions.

    Args:
        boxes: ``[N, 4]`` xyxy, or a list of per-image ``[G_i, 4]`` tensors (concatenated).
        name: the argument's name, for error messages.

    Raises:
        ValueError: a box is not finite or is degenerate (``x2 <= x1`` or ``y2 <= y1``).
    """
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            _check_boxes(f"{name}[{i}]", b, ndim=2)
        boxes = torch.cat([b.float() for b in boxes]) if boxes else torch.zeros(0, 4)
    _check_boxes(name, boxes, ndim=2)
    bad = ~torch.isfinite(boxes).all(dim=1) | (boxes[:, 2] <= boxes[:, 0])
    bad |= boxes[:, 3] <= boxes[:, 1]
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}[{i}] = {boxes[i].tolist()} is not a box: corners must be finite with "
            f"x2 > x1 and y2 > y1 (xyxy fractions); {int(bad.sum())} such box(es) in all"
        )
    return boxes


def best_overlaps(gt_boxes: Tensor, priors: Tensor) -> Tensor:
    """Each object's highest jaccard overlap with any default box, a chunk of objects at a time.

    Args:
        gt_boxes: ``[N, 4]`` xyxy fractions.
        priors: ``[P, 4]`` cxcywh default boxes.

    Returns:
        ``[N]`` overlaps in ``[0, 1]`` (dtype of ``priors``).

    Paper: §2.2 (jaccard overlap, the measure of matching).
    """
    corners = cxcywh_to_xyxy(priors)  # [P, 4]
    rows = max(1, _CHUNK_ELEMENTS // max(1, len(priors)))  # keeps each [rows, P] matrix small
    gt = gt_boxes.to(priors.device, priors.dtype)
    best = [box_iou(gt[i : i + rows], corners).amax(dim=1) for i in range(0, len(gt), rows)]
    return torch.cat(best) if best else priors.new_zeros(0)


def coverage(
    gt_boxes: Tensor | Sequence[Tensor],
    priors: PriorConfig | Tensor,
    threshold: float = 0.5,
    size_edges: Sequence[float] = SIZE_EDGES,
    ratio_edges: Sequence[float] = RATIO_EDGES,
) -> Coverage:
    """Share of objects whose best default box has jaccard overlap ``>= threshold``.

    Args:
        gt_boxes: ``[N, 4]`` xyxy fractions, or a list of per-image ``[G_i, 4]``.
        priors: a :class:`PriorConfig` (its default boxes are built) or ``[P, 4]`` cxcywh boxes.
        threshold: the overlap that counts as covered (0.5, the matching threshold of §2.2).
        size_edges: increasing edges of the size bins (``sqrt(w h)``, fractions).
        ratio_edges: increasing edges of the ``w / h`` bins.

    Returns:
        A :class:`Coverage` (``.share``, ``.by_size()``, ``.by_ratio()``, ``.table()``).

    Paper: §2.2 "Matching strategy" (threshold 0.5), eq. 4 (the default boxes).
    """
    gt = as_boxes(gt_boxes, "gt_boxes")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    for name, edges in (("size_edges", size_edges), ("ratio_edges", ratio_edges)):
        edges = list(edges)
        if not edges or any(b <= a for a, b in zip(edges[:-1], edges[1:])) or edges[0] <= 0:
            raise ValueError(f"{name} must be positive and strictly increasing, got {edges}")
    image_size = None
    if isinstance(priors, PriorConfig):
        image_size = priors.image_size
        priors = default_boxes(priors)
    else:
        _check_boxes("priors", priors, ndim=2)
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]  # [N]
    return Coverage(
        best_iou=best_overlaps(gt, priors.float()).cpu(),
        scale=(w * h).sqrt().cpu(),
        ratio=(w / h).cpu(),
        threshold=float(threshold),
        image_size=image_size,
        size_edges=tuple(size_edges),
        ratio_edges=tuple(ratio_edges),
    )
