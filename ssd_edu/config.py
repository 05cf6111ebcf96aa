"""The training recipe: every setting of a run in one dataclass, and the learning-rate schedule.

The defaults are the paper's SSD300 recipe for PASCAL VOC (§3, §3.1): SGD with momentum 0.9 and
weight decay 5e-4, batch 32, learning rate 1e-3 divided by 10 at 80k and 100k iterations, 120k in
all (the released models' schedule for 07+12 with data augmentation; the paper's own VOC2007
schedule is 40k iterations at 1e-3, then 10k at 1e-4 and 10k at 1e-5). Two things are not in the
paper: a short linear warm-up, which many re-implementations add because a freshly initialised
SSD300 sometimes diverges in its first iterations at 1e-3, and the small CPU preset below, the
"baby" configuration that trains on a laptop in minutes.

Paper: §3 "Experimental Results" (training settings), §3.1 (the VOC schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from torch.utils.data import Dataset


@dataclass
class TrainConfig:
    """Everything that decides a training run. The defaults are the paper's SSD300 VOC recipe.

    Args:
        model: ``"ssd300"``, ``"ssd512"`` or ``"ssd_small"`` (the 128-pixel CPU model).
        batch_size: images per iteration over all processes (split evenly between DDP ranks).
        max_iters: iterations to train for (the loop counts iterations, not epochs).
        lr: base learning rate of SGD.
        momentum: SGD momentum.
        weight_decay: L2 penalty on the weights.
        lr_steps: iterations at which the learning rate is multiplied by ``lr_gamma``.
        lr_gamma: the factor applied at each step.
        warmup_iters: iterations of linear warm-up from ``warmup_factor * lr`` to ``lr``.
        warmup_factor: the fraction of ``lr`` the warm-up starts from.
        iou_threshold: jaccard overlap above which a default box matches an object.
        neg_pos_ratio: negatives kept per positive by hard negative mining.
        alpha: weight of the localisation loss.
        seed: seeds the data order and augmentation (and the model's initialisation in the CLI).
        num_workers: data-loading processes per training process.
        amp: ``"bf16"``, ``"fp16"`` or ``"none"``: autocast on CUDA; on the CPU only bf16, and
            only where the CPU computes it natively (AVX512-BF16, AMX), else fp32.
        channels_last: NHWC memory layout on CUDA (faster convolutions on tensor cores), and on
            the CPU when it trains in bf16 (oneDNN's bf16 convolutions work in NHWC).
        compile: wrap the model with ``torch.compile``.
        eval_every: evaluate on the held-out set every this many iterations (0: only at the end).
        checkpoint_every: save a checkpoint every this many iterations (0: only at the end).
        log_every: write a row of the CSV log every this many iterations.
        eval_batch_size: images per batch when evaluating.
        out_dir: folder of ``checkpoint.pt`` and ``log.csv``.

    Paper: §3 (training settings), §3.1 (the VOC schedule of the released models).
    """

    model: str = "ssd300"
    batch_size: int = 32
    max_iters: int = 120_000
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_steps: tuple[int, ...] = (80_000, 100_000)
    lr_gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.1
    iou_threshold: float = 0.5
    neg_pos_ratio: float = 3
    alpha: float = 1.0
    seed: int = 0
    num_workers: int = 8
    amp: str = "bf16"
    channels_last: bool = True
    compile: bool = False
    eval_every: int = 10_000
    checkpoint_every: int = 5_000
    log_every: int = 20
    eval_batch_size: int = 64
    out_dir: str = "runs/ssd300_voc"

    def __post_init__(self) -> None:
        self.lr_steps = tuple(self.lr_steps)
        if self.model not in ("ssd300", "ssd512", "ssd_small"):
            raise ValueError(f"model must be 'ssd300', 'ssd512' or 'ssd_small', got {self.model!r}")
        for name in ("batch_size", "max_iters", "log_every", "eval_batch_size"):
            _need(name, getattr(self, name), "an int at least 1", lambda v: _is_int(v) and v >= 1)
        for name in ("warmup_iters", "eval_every", "checkpoint_every", "num_workers", "seed"):
            _need(name, getattr(self, name), "an int >= 0", lambda v: _is_int(v) and v >= 0)
        # (name, what it must be, the test): each number of the recipe, refused by name
        for name, what, ok in (
            ("lr", "positive and finite", lambda v: v > 0),
            ("momentum", "in [0, 1)", lambda v: 0 <= v < 1),
            ("weight_decay", ">= 0 and finite", lambda v: v >= 0),
            ("lr_gamma", "in (0, 1]", lambda v: 0 < v <= 1),
            ("warmup_factor", "in [0, 1]", lambda v: 0 <= v <= 1),
            ("iou_threshold", "in (0, 1]", lambda v: 0 < v <= 1),
            ("neg_pos_ratio", ">= 0 and finite", lambda v: v >= 0),
            ("alpha", ">= 0 and finite", lambda v: v >= 0),
        ):
            _need(name, getattr(self, name), what, lambda v, ok=ok: _finite(v) and ok(v))
        if self.amp not in ("bf16", "fp16", "none"):
            raise ValueError(f"amp must be 'bf16', 'fp16' or 'none', got {self.amp!r}")
        if list(self.lr_steps) != sorted(self.lr_steps) or not all(map(_is_int, self.lr_steps)):
            raise ValueError(f"lr_steps must be increasing iterations, got {self.lr_steps}")

    @classmethod
    def shapes_cpu(cls, **overrides: Any) -> TrainConfig:
        """The small model on synthetic shapes, sized to train on a laptop CPU in a few minutes.

        The paper's optimiser (SGD, momentum 0.9, weight decay 5e-4) with a larger learning rate,
        smaller batches and a short schedule: the small network has batch normalisation and starts
        from scratch (no ImageNet backbone), and every image of the unlimited synthetic data is
        new, so it needs many cheap steps rather than few large ones. Reaches a held-out VOC07
        mAP above 0.9 with :func:`shapes_datasets` and ``ssd_small(5, width=SMALL_WIDTH)``.
        Where the CPU computes bf16 natively it trains in bf16 autocast, channels_last: the
        training step in 0.39x the CPU time of fp32 NCHW (0.5x with the data generation), mAP
        0.910 against fp32's 0.921 over these 1,200 iterations (issue 18); ``amp="none"`` is
        fp32.
        """
        base = cls(
            model="ssd_small",
            batch_size=16,
            max_iters=1200,
            lr=0.03,
            lr_steps=(960, 1140),
            warmup_iters=60,
            warmup_factor=0.1,
            num_workers=0,
            amp="bf16",
            channels_last=True,
            eval_every=0,
            checkpoint_every=600,
            log_every=20,
            eval_batch_size=64,
            out_dir="runs/shapes",
        )
        return replace(base, **overrides)

    @classmethod
    def small_data_cpu(cls, **overrides: Any) -> TrainConfig:
        """The small model on one's own dataset folder (a few thousand images) on a CPU.

        :meth:`shapes_cpu`'s optimiser with batches of 32 and ``SMALL_DATA_ITERS`` iterations,
        the rate divided by 10 at 80% and 95% of the run, wherever ``max_iters`` puts its end
        (a given ``lr_steps`` is kept). ``python -m ssd_edu.train --model small`` uses it on
        ``--voc-root`` / ``--coco-json`` data, starting from the shapes-trained weights with
        flips only (``ssd_edu.cli.datasets``); the measurements behind each number are in
        ``tools/recipe_results.md``.
        """
        iters = overrides.get("max_iters", SMALL_DATA_ITERS)
        steps = (int(iters * 0.8), int(iters * 0.95))
        base = cls.shapes_cpu(batch_size=32, max_iters=iters, lr_steps=steps,
                              warmup_iters=min(60, iters // 10), checkpoint_every=500,
                              out_dir="runs/small_data")  # fmt: skip
        return replace(base, **overrides)


# small_data_cpu's schedule: on 1,600 images of real objects (icons in new poses), 1,000
# iterations of 32 reached held-out mAP 0.52 where 600 reached 0.43, in 9.5 minutes on 2 cores
# without bf16 (tools/recipe_results.md)
SMALL_DATA_ITERS = 1000

# The CPU preset's model and data: a 64-channel ssd_small (the 128-channel default costs twice as
# much for no gain on four shape classes) and shapes of at least 16 pixels (the smallest default
# box of SSD128_SHAPES is 12.8 pixels), at most three per image.
SMALL_WIDTH = 64
SHAPES_DATA: dict[str, Any] = {"min_size": 16.0, "max_objects": 3}


def shapes_datasets(n_train: int, n_val: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Training and held-out ``ShapesDataset`` of the CPU preset, from two different seeds.

    Args:
        n_train: training images (``max_iters * batch_size`` shows each image once).
        n_val: held-out images.
        seed: the training images' seed; the held-out ones use ``seed + 10_000``.

    Returns:
        ``(train_set, val_set)``; no image is in both.
    """
    from ssd_edu.data import ShapesDataset

    return (
        ShapesDataset(n_train, seed=seed, **SHAPES_DATA),
        ShapesDataset(n_val, seed=seed + 10_000, **SHAPES_DATA),
    )


def lr_factor(cfg: TrainConfig, iteration: int) -> float:
    """The multiplier of ``cfg.lr`` at ``iteration`` (0-based): warm-up, then step decay.

    Args:
        cfg: the schedule (``warmup_iters``, ``warmup_factor``, ``lr_steps``, ``lr_gamma``).
        iteration: how many SGD steps were taken before this one.

    Returns:
        ``warmup_factor`` rising linearly to 1 over the warm-up, times ``lr_gamma ** k`` where
        ``k`` is the number of ``lr_steps`` already passed.

    Paper: §3.1 (lr 1e-3, divided by 10 at each step); the warm-up is the re-implementations'.
    """
    decay = cfg.lr_gamma ** sum(iteration >= s for s in cfg.lr_steps)
    if iteration < cfg.warmup_iters:
        t = iteration / cfg.warmup_iters
        return (cfg.warmup_factor + (1.0 - cfg.warmup_factor) * t) * decay
    return decay


class Schedule:
    """``lr_factor`` as a picklable callable for ``LambdaLR`` (whose state then saves cleanly)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def __call__(self, iteration: int) -> float:
        return lr_factor(self.cfg, iteration)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need(name: str, value: Any, what: str, ok: Any) -> None:
    if not ok(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
