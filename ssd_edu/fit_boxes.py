"""Default boxes fitted to a dataset: ``s_min``, ``s_max`` and the aspect ratios from its boxes.

The paper chose its default boxes for VOC and COCO (``s_min = 0.2``, ``s_max = 0.9``, ratios
``{1, 2, 3, 1/2, 1/3}``, §2.2) and notes that "an alternative way of improving SSD is to design a
better tiling of default boxes so that its position and scale are better aligned with the receptive
field of each position on a feature map". A student's own dataset often has objects of a narrow
range of sizes: small products on a table, all between 5% and 30% of the image. Fitting keeps the
paper's structure and changes only its three numbers:

- the same feature maps, steps and input size (the network is unchanged);
- scales still linear from ``s_min`` to ``s_max`` over the maps (eq. 4), with the extra square
  ``s_k' = sqrt(s_k s_{k+1})`` at every cell;
- the same *number* of aspect ratios per map, so every head keeps its ``k`` boxes per location and
  its shape; only their values change, each a pair ``(a, 1/a)`` with ``a`` from ``RATIO_GRID``.

How the numbers are chosen, so that a reader can redo it by hand:

1. candidates for ``s_min`` are low quantiles of the objects' scale ``sqrt(w h)`` (and those times
   ``sqrt 2``: a square default box of side ``s`` reaches IoU 0.5 with centred squares from
   ``s / sqrt 2`` to ``s sqrt 2``), candidates for ``s_max`` high quantiles (and those over
   ``sqrt 2``);
2. the aspect ratios: the ratio ``max(w/h, h/w)`` of the clearly non-square objects (ratio at
   least 1.25), a map with ``n`` ratios taking its quantiles ``(i + 0.5) / n``, each snapped to the
   nearest grid value (in log) and kept distinct;
3. a combination whose boxes on some map are much smaller than that map's cells (``s_k`` below
   :data:`TILING` of the cell spacing) is dropped: its map would leave gaps between its cells;
4. every other combination, and the starting configuration itself, is scored by its coverage
   (:func:`ssd_edu.coverage.coverage`) of the training boxes; the best wins only if it covers
   strictly more, so fitting never lowers the training coverage.

Paper: §2.2 "Choosing scales and aspect ratios for default boxes", eq. 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ssd_edu.coverage import Coverage, as_boxes, coverage
from ssd_edu.priors import PriorConfig

# the values an aspect ratio a (> 1; each adds a and 1/a) may take: the paper's 2 and 3 and
# their neighbours
RATIO_GRID: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0)
_LOW_QUANTILES = (0.02, 0.05, 0.1)
_HIGH_QUANTILES = (0.9, 0.98, 1.0)
# a map's boxes must be at least this share of its cell spacing (SSD300's last map: 0.88): boxes
# much smaller than their cells leave gaps between cells that no box of the map covers, and the
# map is wasted. Without this rule a dataset of small objects pulls every map's scale down to the
# objects' and the coarse maps' few boxes match nothing (shapes of 8-20 px, 600 iterations, one
# seed: held-out mAP 0.90 with SSD128_SHAPES, 0.83 fitted without this rule (every s_k in
# 0.10-0.16), 0.90 fitted with it)
TILING = 0.8


@dataclass
class DefaultBoxFit:
    """The outcome of :func:`fit_default_boxes`.

    Attributes:
        config: the configuration to use (the fitted one, or the base when it was not better).
        base: the configuration fitting started from.
        before: coverage of the training boxes by ``base``.
        after: coverage of the training boxes by ``config``.
    """

    config: PriorConfig
    base: PriorConfig
    before: Coverage
    after: Coverage

    @property
    def changed(self) -> bool:
        return self.config != self.base

    def summary(self) -> str:
        """Coverage before and after, and the scales and ratios chosen, as a few lines."""
        cfg, size = self.config, self.config.image_size
        lines = [
            f"default boxes fitted to {self.before.n_objects} training boxes: coverage "
            f"(IoU >= {self.before.threshold:g}) {100 * self.before.share:.1f}% -> "
            f"{100 * self.after.share:.1f}%"
        ]
        if not self.changed:
            lines.append("  kept the starting default boxes: no fitted set covered more")
        else:
            scales = ", ".join(f"{s / size:.3f}" for s in cfg.min_sizes)
            lines.append(f"  s_k = {scales} (eq. 4, {len(cfg.min_sizes)} maps)")
            lines.append(f"  aspect ratios per map: {[list(r) for r in cfg.aspect_ratios]}")
        return "\n".join(lines)


def fitted_ratios(ratio: Tensor, counts: Sequence[int], grid: Sequence[float] = RATIO_GRID):
    """Aspect ratios ``a > 1`` for each map from the objects' ``w / h``, snapped to ``grid``.

    Args:
        ratio: ``[N]`` objects' ``w / h``.
        counts: how many ratios each map has (kept, so the heads keep their shape).
        grid: allowed values of ``a``, increasing.

    Returns:
        One tuple of distinct ratios per map, or None when fewer than 10 objects are non-square
        (too few to estimate from; the caller keeps the base ratios).
    """
    a = torch.exp(ratio.double().log().abs())  # [N] max(w/h, h/w) >= 1
    a = a[a >= 1.25]  # nearly square objects are served by the two square boxes
    if len(a) < 10 or max(counts, default=0) > len(grid):
        return None
    log_grid = torch.tensor(grid, dtype=torch.float64).log()
    out = []
    for n in counts:
        chosen: list[int] = []
        for i in range(n):
            q = float(torch.quantile(a, (i + 0.5) / n).log())
            order = (log_grid - q).abs().argsort().tolist()  # nearest grid value first
            chosen.append(next(j for j in order if j not in chosen))
        out.append(tuple(grid[j] for j in sorted(chosen)))
    return tuple(out)


def tiles(cfg: PriorConfig) -> bool:
    """Whether every map's smallest box ``s_k`` is at least :data:`TILING` of its cell spacing."""
    return all(lo >= TILING * step for lo, step in zip(cfg.min_sizes, cfg.steps))


def candidate_configs(gt: Tensor, base: PriorConfig) -> list[PriorConfig]:
    """Eq. 4 configurations on ``base``'s maps with ``s_min``, ``s_max`` and ratios from ``gt``.

    Args:
        gt: ``[N, 4]`` xyxy training boxes (N > 0).
        base: gives the input size, feature maps, steps, clipping and ratio counts.

    Returns:
        The candidates, in a fixed order (ties in coverage go to the earlier one).
    """
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    scale = (w * h).sqrt().double()  # [N]
    low = [float(torch.quantile(scale, q)) for q in _LOW_QUANTILES]
    high = [float(torch.quantile(scale, q)) for q in _HIGH_QUANTILES]
    s_mins = sorted({round(s * f, 4) for s in low for f in (1.0, math.sqrt(2))})
    s_maxs = sorted({round(s / f, 4) for s in high for f in (1.0, math.sqrt(2))})
    s_maxs.append(base.min_sizes[-1] / base.image_size)  # the base's s_max, kept when it tiles
    ratio_sets = [base.aspect_ratios]
    fitted = fitted_ratios(w / h, [len(r) for r in base.aspect_ratios])
    if fitted is not None and fitted != base.aspect_ratios:
        ratio_sets.append(fitted)
    out = []
    for ratios in ratio_sets:
        for s_min in s_mins:
            for s_max in s_maxs:
                if not 0 < s_min <= s_max:
                    continue
                cfg = PriorConfig.from_scales(
                    base.image_size, base.feature_maps, ratios, s_min, s_max, clip=base.clip
                )
                cfg = replace(cfg, steps=base.steps)  # the base's cell centres
                if tiles(cfg):
                    out.append(cfg)
    return out


def fit_default_boxes(
    train_boxes: Tensor | Sequence[Tensor],
    base: PriorConfig,
    threshold: float = 0.5,
    max_objects: int = 5000,
    seed: int = 0,
) -> DefaultBoxFit:
    """Default boxes whose ``s_min``, ``s_max`` and aspect ratios fit the training boxes.

    Args:
        train_boxes: ``[N, 4]`` xyxy fractions, or a list of per-image ``[G_i, 4]``.
        base: the configuration to start from (e.g. ``SSD128_SHAPES``); its maps, steps and
            number of boxes per location are kept.
        threshold: the overlap that counts as covered (0.5).
        max_objects: the candidates are scored on at most this many boxes (a seeded sample);
            the final comparison with ``base`` uses every box.
        seed: seed of that sample.

    Returns:
        A :class:`DefaultBoxFit`: ``.config`` (never covering the training boxes worse than
        ``base``), ``.before`` and ``.after`` coverage, ``.summary()``.

    Paper: §2.2 "Choosing scales and aspect ratios for default boxes", eq. 4.
    """
    gt = as_boxes(train_boxes, "train_boxes")
    if not isinstance(base, PriorConfig):
        raise TypeError(f"base must be a PriorConfig, got {type(base).__name__}")
    if len(gt) == 0:
        raise ValueError("train_boxes holds no boxes: there is nothing to fit the default boxes to")
    if not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
    before = coverage(gt, base, threshold)
    sample = gt
    if len(gt) > max_objects:
        g = torch.Generator().manual_seed(seed)
        sample = gt[torch.randperm(len(gt), generator=g)[:max_objects]]
    best, best_share = base, coverage(sample, base, threshold).share
    for cfg in candidate_configs(sample, base):
        share = coverage(sample, cfg, threshold).share
        if share > best_share:  # strictly better: ties keep the earlier (the base first)
            best, best_share = cfg, share
    after = before if best == base else coverage(gt, best, threshold)
    if after.share < before.share:  # better on the sample, worse on all boxes: keep the base
        best, after = base, before
    return DefaultBoxFit(config=best, base=base, before=before, after=after)
