"""Training: the loop that turns matching, the MultiBox loss and SGD into a detector (section 3).

One iteration takes a batch of images with their ground-truth boxes, assigns every default box a
target (matching, on the model's device), runs the network, and takes one SGD step on the loss

    L(x, c, l, g) = (L_conf(x, c) + alpha * L_loc(x, l, g)) / N                    (paper eq. 1)

The loop counts iterations, not epochs, as the paper's schedule does (SSD300 on VOC07+12: SGD with
momentum 0.9 and weight decay 5e-4, batch 32, lr 1e-3 divided by 10 at 80k and 100k, stop at 120k),
and cycles the data loader across epochs. Around that core it does what long runs need:

* a short linear warm-up of the learning rate (not in the paper: many re-implementations add it
  because a freshly initialised SSD300 sometimes diverges in its first iterations at lr 1e-3);
* mixed precision on CUDA (bf16 autocast, or fp16 with a gradient scaler), channels_last memory
  layout, optionally ``torch.compile``;
* a guard that stops at the first non-finite loss, naming the iteration and the images of the
  batch, before the bad step can reach the weights or a checkpoint;
* atomic checkpoints with every random state (:mod:`ssd_edu.checkpoint`) so a resumed run
  continues exactly; the data order is a pure function of ``(seed, epoch)`` and each image's
  augmentation a pure function of ``(seed, epoch, index)``, whatever the number of workers;
* periodic VOC07 mAP on a held-out set (:mod:`ssd_edu.evaluate`), a tqdm progress bar, and a CSV log
  of losses, learning rate and mAP (plotted by :func:`ssd_edu.viz.plot_training_log`);
* several GPUs through ``DistributedDataParallel`` when started by ``torchrun`` (rank 0 writes).

Images are ``[B, 3, S, S]`` normalised floats; ground truth per image is ``boxes [N, 4]`` xyxy
fractions and ``labels [N]`` in ``1..C`` (0 is background).

Command line (``python -m ssd_edu.train --help``): the small model on synthetic shapes by default,
SSD300 on VOC07+12 with ``--voc-root``, and ``--demo`` for ``make demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ssd_edu.checkpoint import (
    load_checkpoint,
    model_spec,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ssd_edu.fast.photometric import finish_batch


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
        amp: ``"bf16"``, ``"fp16"`` or ``"none"``; mixed precision is used on CUDA only.
        channels_last: NHWC memory layout on CUDA (faster convolutions on tensor cores).
        compile: wrap the model with ``torch.compile``.
        eval_every: evaluate on the held-out set every this many iterations (0: only at the end).
        checkpoint_every: save a checkpoint every this many iterations (0: only at the end).
        log_every: write a row of the CSV log every this many iterations.
        eval_batch_size: images per batch when evaluating.
        out_dir: folder of ``checkpoint.pt`` and ``log.csv``.

    Paper: §3 "Experimental Results" (training settings) and §3.1 for the VOC schedule
    (the 80k/100k/120k schedule is the one of the released models trained with data augmentation).
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
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_iters", "eval_every", "checkpoint_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.amp not in ("bf16", "fp16", "none"):
            raise ValueError(f"amp must be 'bf16', 'fp16' or 'none', got {self.amp!r}")
        if list(self.lr_steps) != sorted(self.lr_steps):
            raise ValueError(f"lr_steps must be increasing, got {self.lr_steps}")

    @classmethod
    def shapes_cpu(cls, **overrides: Any) -> TrainConfig:
        """The small model on synthetic shapes, sized to train on a laptop CPU in a few minutes.

        The paper's optimiser (SGD, momentum 0.9, weight decay 5e-4) with a larger learning rate,
        smaller batches and a short schedule: the small network has batch normalisation and starts
        from scratch (no ImageNet backbone), and every image of the unlimited synthetic data is
        new, so it needs many cheap steps rather than few large ones. Reaches a held-out VOC07
        mAP above 0.9 with :func:`shapes_datasets` and ``ssd_small(5, width=SMALL_WIDTH)``.
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
            amp="none",
            channels_last=False,
            eval_every=0,
            checkpoint_every=600,
            log_every=20,
            eval_batch_size=64,
            out_dir="runs/shapes",
        )
        return replace(base, **overrides)


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


class _Schedule:
    """``lr_factor`` as a picklable callable for ``LambdaLR`` (whose state then saves cleanly)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def __call__(self, iteration: int) -> float:
        return lr_factor(self.cfg, iteration)


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss was NaN or infinite; the message says where."""


# ----------------------------------------------------------------------------------------------
# Data: an order that depends only on (seed, epoch), augmentation only on (seed, epoch, index)
# ----------------------------------------------------------------------------------------------


class _SeededItems(Dataset):
    """Wraps a dataset so item ``(epoch, index)`` is drawn with its own fixed random seed.

    Random augmentation then no longer depends on which worker loads an image or on how many
    images came before it, which is what makes resuming (and any ``num_workers``) reproducible.
    The global generators are restored afterwards, so the caller's random state is untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        # datasets that draw their augmentation from (seed, epoch, index) learn the epoch here,
        # in whichever process loads the item (a DataLoader worker holds its own copy)
        _set_epoch(self.dataset, epoch)
        s = ((self.seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also queue a seed for every
            # accelerator, which costs a stack trace per item in a DataLoader worker
            torch.default_generator.manual_seed(s)
            random.seed(s)
            np.random.seed(s % 2**32)
            try:
                item = self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return item, index


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    """Call ``set_epoch`` on a dataset, or on every part of a ``ConcatDataset``/``Subset``."""
    if hasattr(dataset, "set_epoch"):
        if getattr(dataset, "epoch", None) != epoch:
            dataset.set_epoch(epoch)
    for part in getattr(dataset, "datasets", ()):  # ConcatDataset
        _set_epoch(part, epoch)
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # Subset
        _set_epoch(dataset.dataset, epoch)


class _EpochBatches:
    """Batches of ``(epoch, index)`` keys, epoch after epoch without end.

    Epoch ``e`` is shuffled by ``DistributedSampler``, with a generator seeded by ``seed + e``,
    which also gives each rank its share; with one process it is simply a seeded shuffle.
    Iteration starts at batch ``start`` of epoch ``epoch`` (a resume skips the batches already
    trained on, without loading them). One endless stream, rather than one DataLoader pass per
    epoch, keeps the workers' prefetching going across epoch boundaries: a new pass would start
    with every worker idle and the GPU waiting for a whole batch to be made.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int, world: int) -> None:
        self.sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.per_epoch = len(self.sampler) // batch_size  # full batches only: fixed shapes
        if self.per_epoch == 0:
            raise ValueError(
                f"the training set has {len(dataset)} images, fewer than one batch of "
                f"{batch_size} per process ({world} processes): use a smaller batch_size"
            )
        self.epoch = 0
        self.start = 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, start = self.epoch, self.start
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for b in range(start, self.per_epoch):
                batch = order[b * self.batch_size : (b + 1) * self.batch_size]
                yield [(epoch, i) for i in batch]
            epoch, start = epoch + 1, 0


def _collate(items: list) -> tuple[Tensor, list[Tensor], list[Tensor], list[int], Tensor | None]:
    """Batch ``(item, index)`` pairs; the last element is the deferred pixel work, if any."""
    from ssd_edu.data import collate_detections

    samples = [item for item, _ in items]
    indices = [index for _, index in items]
    images, boxes, labels, _difficult, *params = collate_detections(samples)
    return images, boxes, labels, indices, (params[0] if params else None)


# ----------------------------------------------------------------------------------------------
# Devices and processes
# ----------------------------------------------------------------------------------------------


def _distributed(device: torch.device | str | None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; starts the process group when torchrun launched us.

    NCCL for CUDA training, gloo for the CPU (also on a machine that has a GPU, when the caller
    asked for the CPU).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain SSD inside DDP and/or torch.compile wrappers (whose state dict is portable)."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module,
    images: Tensor,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Detections for a batch of images: the network, then decoding and per-class NMS.

    Args:
        model: an SSD (its ``priors`` buffer gives the default boxes).
        images: ``[B, 3, S, S]`` normalised, on the model's device.
        score_threshold: class scores below this are dropped before NMS.
        iou_threshold: NMS overlap threshold.
        top_k: detections kept per image.

    Returns:
        One ``(boxes [K, 4] xyxy fractions, scores [K], labels [K] in 1..C)`` per image.

    Paper: §3 (inference: 0.01 confidence threshold, NMS at 0.45, top 200 per image).
    """
    from ssd_edu.nms import detect

    was_training = model.training
    model.eval()
    loc, logits = model(images)  # [B, P, 4], [B, P, C + 1]
    model.train(was_training)
    priors = _unwrap(model).priors
    return detect(
        loc.float(),
        logits.float(),
        priors,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        top_k=top_k,
    )


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str],
    batch_size: int = 32,
    num_workers: int = 0,
    use_07_metric: bool = True,
) -> dict[str, Any]:
    """VOC average precision of a model on a dataset (boxes compared at IoU 0.5).

    Args:
        model: an SSD; evaluated on its own device, in eval mode.
        dataset: items ``(image, boxes, labels, difficult)`` (e.g. ``ShapesDataset``,
            ``VOCDetection`` with ``EvalTransform``).
        class_names: the ``C`` object class names.
        batch_size: images per forward pass.
        num_workers: data-loading processes.
        use_07_metric: VOC2007's 11-point AP (True, the paper's) or the area under the curve.

    Returns:
        What :func:`ssd_edu.evaluate.evaluate_detections` returns (per-class AP and mAP).

    Paper: §3.1 (mAP on VOC2007 test).
    """
    from ssd_edu.data import collate_detections
    from ssd_edu.evaluate import evaluate_detections

    device = next(model.parameters()).device
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_detections,
        pin_memory=device.type == "cuda",
    )
    detections, ground_truths = [], []
    for images, boxes, labels, difficult, *pixel_work in loader:
        images = images.to(device, non_blocking=True)
        if pixel_work:  # items of TrainTransform(defer_photometric=True)
            images = finish_batch(images, pixel_work[0].to(device, non_blocking=True))
        for b, s, l in predict(model, images):
            detections.append((b.cpu(), s.cpu(), l.cpu()))
        ground_truths.extend(zip(boxes, labels, difficult))
    return evaluate_detections(
        detections, ground_truths, list(class_names), use_07_metric=use_07_metric
    )


def _map_of(result: Any) -> float:
    return float(result.mean_ap)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------

LOG_FIELDS = ("iteration", "loss", "loc_loss", "conf_loss", "lr", "images_per_s", "mAP")


@dataclass
class TrainResult:
    """What :func:`train` hands back.

    Args:
        model: the trained network (unwrapped: no DDP or compile wrapper).
        log: the CSV rows written (dicts with ``LOG_FIELDS``; ``mAP`` is ``None`` between evals).
        evaluation: the last evaluation result (``None`` if there was no held-out set).
        checkpoint: the last checkpoint written (``None`` on ranks other than 0).
        iteration: iterations done in total.
    """

    model: nn.Module
    log: list[dict[str, Any]] = field(default_factory=list)
    evaluation: Any = None
    checkpoint: Path | None = None
    iteration: int = 0


def train(
    cfg: TrainConfig,
    model: nn.Module,
    train_set: Dataset,
    class_names: Sequence[str],
    val_set: Dataset | None = None,
    device: torch.device | str | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``train_set`` for ``cfg.max_iters`` iterations (SGD, paper's loss).

    Writes ``cfg.out_dir/checkpoint.pt`` every ``cfg.checkpoint_every`` iterations and at the end,
    and appends to ``cfg.out_dir/log.csv``. When started by ``torchrun`` with several processes it
    wraps the model in ``DistributedDataParallel``; each rank sees its share of every epoch and
    only rank 0 writes files and evaluates.

    Args:
        cfg: the run's settings.
        model: an SSD (``ssd300``, ``ssd512`` or ``ssd_small``), freshly built or pre-trained.
        train_set: items ``(image [3, S, S], boxes [N, 4] xyxy, labels [N], difficult [N])``.
        class_names: the ``C`` object class names (stored in the checkpoint).
        val_set: held-out items, evaluated every ``cfg.eval_every`` iterations and at the end.
        device: default: CUDA (this rank's GPU) when available, else the CPU.
        resume: a checkpoint to continue from (weights, optimiser, schedule, random states).
        progress: show a tqdm progress bar (rank 0 only).

    Returns:
        A :class:`TrainResult`.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite; the message names the iteration and
            the dataset indices of the batch, and the last checkpoint on disk is the last good one.

    Paper: §2.2 (training objective, matching, hard negative mining), §3 (training settings).
    """
    from ssd_edu.loss import MultiBoxLoss

    rank, world, local_rank = _distributed(device)
    if device is None:
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if cfg.batch_size % world != 0:
        raise ValueError(f"batch_size {cfg.batch_size} must divide evenly over {world} processes")
    out_dir = Path(cfg.out_dir)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.csv"
    is_main = rank == 0
    cuda = device.type == "cuda"
    net = _unwrap(model)
    spec = model_spec(cfg.model, net, list(class_names))

    if cuda:
        # every batch has the same shape: let cuDNN time its convolution algorithms once and keep
        # the fastest (a process-wide switch, as in any training script)
        torch.backends.cudnn.benchmark = True
    model = model.to(device)
    channels_last = cuda and cfg.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # on CUDA one fused kernel updates every weight (instead of a few launches per tensor), and it
    # can skip a step on the device when told to (``found_inf``), which the deferred guard uses
    fused = True if cuda else None
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        fused=fused,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _Schedule(cfg))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp == "fp16")
    # the loop checks an SSD's labels on the CPU (below), so the loss need not read them back
    num_classes: int | None = getattr(net, "num_classes", None)
    criterion = MultiBoxLoss(
        neg_pos_ratio=cfg.neg_pos_ratio, alpha=cfg.alpha, check_targets=num_classes is None
    )

    start_iter = 0
    if resume is not None:
        state = load_checkpoint(resume, map_location="cpu")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the saved run may have used another device
            group["fused"], group["foreach"] = fused, None
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_iter = int(state["iteration"])

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)

    batches = _EpochBatches(train_set, cfg.batch_size // world, cfg.seed, rank, world)
    loader = DataLoader(
        _SeededItems(train_set, cfg.seed),
        batch_sampler=batches,
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        pin_memory=cuda,
        persistent_workers=cfg.num_workers > 0,
        prefetch_factor=4 if cfg.num_workers > 0 else None,
    )
    priors = net.priors.to(device)  # [P, 4] cxcywh

    def checkpoint(iteration: int) -> Path:
        return save_checkpoint(
            ckpt_path,
            {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                # the schedule's function is rebuilt from cfg on resume: store only its position
                "scheduler": scheduler.state_dict() | {"lr_lambdas": [None]},
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "iteration": iteration,
                "data_position": {
                    "seed": cfg.seed,
                    "epoch": iteration // batches.per_epoch,
                    "batch": iteration % batches.per_epoch,
                },
                "train_config": asdict(cfg),
                "model_spec": spec,
            },
        )

    def evaluate() -> Any:
        return evaluate_model(
            net, val_set, class_names, cfg.eval_batch_size, num_workers=cfg.num_workers
        )

    log_rows: list[dict[str, Any]] = []
    log_file = None
    writer = None
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        new_log = resume is None or not log_path.exists()
        log_file = open(log_path, "w" if new_log else "a", newline="")  # noqa: SIM115
        writer = csv.DictWriter(log_file, fieldnames=LOG_FIELDS)
        if new_log:
            writer.writeheader()

    def write_row(row: dict[str, Any]) -> None:
        log_rows.append(row)
        if writer is not None:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
            log_file.flush()

    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.max_iters,
        initial=start_iter,
        disable=not (progress and is_main),
        desc="train",
        dynamic_ncols=True,
    )
    last_ckpt: Path | None = ckpt_path if resume is not None and is_main else None
    last_ckpt_iter = start_iter
    evaluation = None
    # summed total, loc, conf losses of the logging window, kept on the device (no extra sync)
    window = torch.zeros(3, dtype=torch.float64, device=device)
    window_n, window_start = 0, time.perf_counter()
    # The non-finite guard. Reading a flag from the GPU waits for all queued work, so checking
    # every loss at once would stop the CPU from queueing the next iteration while the GPU works.
    # On CUDA (bf16 or fp32) the guard is deferred instead: a bad loss raises ``halt`` on the
    # device, the fused SGD step skips itself while ``halt`` is up (this step and every later
    # one), and the flag is read one iteration later, or before any log row, evaluation or
    # checkpoint. The weights never see the bad step, and the error names the right iteration.
    # fp16's grad scaler drives the fused step's skip flag itself: there we check at once.
    defer = _deferred_guard(device, cfg)
    halt = torch.zeros((), dtype=torch.float32, device=device)
    if defer:
        for group in optimizer.param_groups:
            group["fused"], group["foreach"] = True, None
        optimizer.found_inf = halt  # read by the fused SGD step: skip when 1
    pending: _PendingCheck | None = None
    match_stream = _match_stream(device)

    def check(flag: _PendingCheck | None) -> None:
        if flag is not None and flag.is_bad():
            raise NonFiniteLossError(
                _non_finite_message(
                    flag.iteration, flag.losses, flag.indices, train_set, last_ckpt, last_ckpt_iter
                )
            )

    iteration = start_iter
    model.train()
    try:
        while iteration < cfg.max_iters:
            # every epoch re-shuffles by (seed, epoch); a resume starts mid-epoch at its batch.
            # The batches never run out: the inner loop ends at max_iters
            batches.epoch, batches.start = divmod(iteration, batches.per_epoch)
            for images, boxes, labels, indices, pixel_work in loader:
                images = images.to(device, non_blocking=True)  # [B, 3, S, S]
                if pixel_work is not None:
                    # TrainTransform(defer_photometric=True): uint8 images, whose photometric
                    # distortion and normalisation run here, on the device, for the whole batch
                    images = finish_batch(images, pixel_work.to(device, non_blocking=True))
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                # ground truth stays on the CPU: matching pads and checks it there and sends it
                # over in one copy, with no GPU round trip
                _check_label_range(labels, num_classes, indices)
                with torch.no_grad():
                    loc_t, cls_t = _assign_targets(  # [B, P, 4], [B, P]
                        boxes, labels, priors, cfg.iou_threshold, match_stream
                    )
                with _autocast(device, cfg.amp):
                    loc, logits = train_model(images)  # [B, P, 4], [B, P, C + 1]
                # the loss in float32: softmax and log over 8732 boxes are fragile in half precision
                total, loc_loss, conf_loss = criterion(loc.float(), logits.float(), loc_t, cls_t)

                losses = torch.stack((total, loc_loss, conf_loss)).detach()  # [3]
                bad = (~torch.isfinite(losses).all()).to(torch.float32)
                if world > 1:
                    dist.all_reduce(bad)  # every rank stops together, or the others would hang
                flag = _PendingCheck(iteration + 1, losses, bad, indices)
                if not defer:
                    check(flag)  # before the step: a bad step never reaches the weights

                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if defer:
                    torch.maximum(halt, bad, out=halt)  # once up, it stays up
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if defer:
                    # the previous iteration's flag: the GPU is past it by now, so no waiting
                    check(pending)
                    pending = flag
                iteration += 1
                bar.update(1)

                window += losses.double()
                window_n += 1
                do_log = iteration % cfg.log_every == 0 or iteration == cfg.max_iters
                do_eval = val_set is not None and (
                    (cfg.eval_every > 0 and iteration % cfg.eval_every == 0)
                    or iteration == cfg.max_iters
                )
                do_ckpt = is_main and (
                    (cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0)
                    or iteration == cfg.max_iters
                )
                if do_log or do_eval or do_ckpt or iteration >= cfg.max_iters:
                    check(pending)  # nothing is logged or saved after a bad step
                    pending = None
                if do_log or do_eval:
                    row = dict.fromkeys(LOG_FIELDS) | {
                        "iteration": iteration,
                        "lr": optimizer.param_groups[0]["lr"],
                    }
                    if do_log:
                        elapsed = time.perf_counter() - window_start
                        mean = (window / window_n).tolist()  # one sync per log row
                        row["loss"], row["loc_loss"], row["conf_loss"] = (round(v, 6) for v in mean)
                        row["images_per_s"] = round(window_n * cfg.batch_size / elapsed, 2)
                        bar.set_postfix(loss=f"{mean[0]:.3f}", lr=f"{row['lr']:.2g}")
                        window.zero_()
                        window_n, window_start = 0, time.perf_counter()
                    if do_eval and is_main:
                        eval_start = time.perf_counter()
                        evaluation = evaluate()
                        row["mAP"] = round(_map_of(evaluation), 6)
                        model.train()
                        # evaluation time is not training time: keep it out of images/s
                        window_start += time.perf_counter() - eval_start
                    if is_main:
                        write_row(row)

                if do_ckpt:
                    last_ckpt, last_ckpt_iter = checkpoint(iteration), iteration
                if iteration >= cfg.max_iters:
                    break
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
        if defer:
            del optimizer.found_inf
    if world > 1:
        dist.barrier()
    return TrainResult(
        model=net, log=log_rows, evaluation=evaluation, checkpoint=last_ckpt, iteration=iteration
    )


def _match_stream(device: torch.device) -> torch.cuda.Stream | None:
    """A CUDA stream of its own for matching (``None`` on the CPU)."""
    # high priority: its few small kernels go ahead of the queued convolutions
    return torch.cuda.Stream(device, priority=-1) if device.type == "cuda" else None


def _assign_targets(
    boxes: list[Tensor],
    labels: list[Tensor],
    priors: Tensor,
    iou_threshold: float,
    stream: torch.cuda.Stream | None,
) -> tuple[Tensor, Tensor]:
    """``assign_targets_batch``, on a side stream on CUDA.

    Matching reads one flag back per call (has the forced step paired every object yet?), and a
    read-back waits for everything queued on its stream. On the training stream that would be the
    whole previous SGD step; on a stream of its own it waits only for the matching kernels, which
    run beside the previous step's backward pass.
    """
    from ssd_edu.matching import assign_targets_batch

    if stream is None:
        return assign_targets_batch(boxes, labels, priors, iou_threshold=iou_threshold)
    main = torch.cuda.current_stream(priors.device)
    with torch.cuda.stream(stream):
        loc_t, cls_t = assign_targets_batch(boxes, labels, priors, iou_threshold=iou_threshold)
    main.wait_stream(stream)
    # made on the side stream, used on the main one: keep their memory until the main one is done
    loc_t.record_stream(main)
    cls_t.record_stream(main)
    return loc_t, cls_t


def _deferred_guard(device: torch.device, cfg: TrainConfig) -> bool:
    """Whether the non-finite guard reads its flag one iteration late (CUDA without fp16)."""
    return device.type == "cuda" and cfg.amp != "fp16"


class _PendingCheck:
    """One iteration's non-finite flag, copied to the CPU without waiting for the GPU.

    ``is_bad`` waits only until the GPU has computed that iteration's loss (a CUDA event), not
    for everything queued after it.
    """

    def __init__(self, iteration: int, losses: Tensor, bad: Tensor, indices: list[int]) -> None:
        self.iteration, self.losses, self.indices = iteration, losses, indices
        self.flag = bad.to("cpu", non_blocking=True)  # pinned and asynchronous on CUDA
        self.event = None
        if bad.is_cuda:
            self.event = torch.cuda.Event()
            self.event.record()

    def is_bad(self) -> bool:
        if self.event is not None:
            self.event.synchronize()
        return bool(self.flag)


def _check_label_range(labels: list[Tensor], num_classes: int | None, indices: list[int]) -> None:
    """Object labels must be in ``1..num_classes - 1``; checked on the CPU, before matching."""
    if not labels or num_classes is None:  # unknown: the loss checks them instead
        return
    flat = torch.cat([lab.reshape(-1) for lab in labels])  # [sum N_i], on the CPU
    if flat.numel() and int(flat.max()) >= num_classes:
        raise ValueError(
            f"a label of the batch (dataset indices {indices}) is {int(flat.max())}, but the "
            f"model has {num_classes} classes (labels 1..{num_classes - 1}, 0 is background)"
        )


def _non_finite_message(
    iteration: int,
    losses: Tensor,
    indices: list[int],
    dataset: Dataset,
    last_ckpt: Path | None,
    last_ckpt_iter: int,
) -> str:
    total, loc, conf = losses.tolist()
    ids = getattr(dataset, "image_ids", getattr(dataset, "ids", None))
    names = ""
    if ids is not None:
        names = f" (image ids {[ids[i] for i in indices]})"
    kept = (
        f"the last good checkpoint is {last_ckpt} (iteration {last_ckpt_iter})"
        if last_ckpt is not None
        else "no checkpoint had been written yet"
    )
    return (
        f"non-finite loss in iteration {iteration} (total={total}, loc={loc}, conf={conf}); "
        f"the batch held dataset indices {indices}{names}. Training stopped before this step "
        f"reached the weights; {kept}. Check those images' boxes (zero-size or outside [0, 1]) "
        f"or lower the learning rate."
    )


def read_log(path: str | os.PathLike) -> list[dict[str, float | None]]:
    """Rows of a ``log.csv`` written by :func:`train`, numbers parsed, blanks as ``None``."""
    with open(path, newline="") as f:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssd_edu.train",
        description="Train SSD. Default: the small model on synthetic shapes on the CPU (no data "
        "needed). With --voc-root: SSD300 on VOC07+12 trainval, evaluated on VOC2007 test.",
    )
    p.add_argument("--demo", action="store_true", help="train on shapes, print mAP, draw a figure")
    p.add_argument("--voc-root", help="the VOCdevkit folder (holding VOC2007/ and VOC2012/)")
    p.add_argument("--vgg-weights", help="torchvision-format VGG16 ImageNet state dict (.pth)")
    p.add_argument("--model", choices=("ssd300", "ssd512"), default="ssd300", help="with VOC")
    p.add_argument("--iters", type=int, help="iterations (default: the preset's)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--workers", type=int, help="data-loading processes per GPU/process")
    p.add_argument("--train-size", type=int, help="shapes: training images (default iters x batch)")
    p.add_argument("--val-size", type=int, default=300, help="shapes: held-out images")
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--out-dir", help="where checkpoint.pt and log.csv go")
    p.add_argument("--resume", help="a checkpoint.pt to continue from")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is best on a busy CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ssd_edu.train`` and ``ssd-edu-train``."""
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {
        k: v
        for k, v in {
            "max_iters": args.iters,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "num_workers": args.workers,
            "eval_every": args.eval_every,
            "checkpoint_every": args.checkpoint_every,
            "out_dir": args.out_dir,
            "amp": args.amp,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    if args.compile:
        overrides["compile"] = True
    if args.voc_root:
        return _main_voc(args, overrides)
    return _main_shapes(args, overrides)


def _main_shapes(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from ssd_edu.data import SHAPE_CLASSES
    from ssd_edu.model import ssd_small

    cfg = TrainConfig.shapes_cpu(**overrides)
    torch.manual_seed(cfg.seed)
    model = ssd_small(len(SHAPE_CLASSES) + 1, width=SMALL_WIDTH)
    n_train = args.train_size or cfg.max_iters * cfg.batch_size  # every image seen once
    train_set, val_set = shapes_datasets(n_train, args.val_size, seed=cfg.seed)
    device = args.device or ("cpu" if args.demo else None)
    print(f"training {cfg.model} on {len(train_set)} shapes for {cfg.max_iters} iterations")
    result = train(
        cfg,
        model,
        train_set,
        SHAPE_CLASSES,
        val_set=val_set,
        device=device,
        resume=args.resume,
        progress=not args.no_progress,
    )
    if result.evaluation is not None:
        _print_evaluation(result.evaluation, len(val_set))
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}")
    if args.demo:
        path = _demo_figure(result.model, val_set, SHAPE_CLASSES)
        if path is not None:
            print(f"figure: {path}")
    return 0


def _main_voc(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from ssd_edu.data import VOC_CLASSES, EvalTransform, VOCDetection
    from ssd_edu.fast.augment import FastTrainTransform
    from ssd_edu.model import load_vgg16_backbone, ssd300, ssd512

    root = Path(args.voc_root)
    if not root.is_dir():
        print(f"--voc-root {str(root)!r} is not a folder", file=sys.stderr)
        return 2
    cfg = replace(TrainConfig(model=args.model, out_dir=f"runs/{args.model}_voc"), **overrides)
    torch.manual_seed(cfg.seed)
    model = (ssd300 if cfg.model == "ssd300" else ssd512)(num_classes=len(VOC_CLASSES) + 1)
    if args.vgg_weights:
        print(load_vgg16_backbone(model, args.vgg_weights))
    elif args.resume is None:
        print(
            "warning: no --vgg-weights: the VGG16 base starts from random weights", file=sys.stderr
        )
    size = model.cfg.image_size
    # on a GPU the augmentation workers set the pace: leave the photometric distortion to the
    # device, one batched step per iteration (on the CPU the workers do it faster)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    transform = FastTrainTransform(size, defer_photometric=device.type == "cuda")
    # the paper's 07+12: VOC2007 trainval + VOC2012 trainval (whichever of the two is present)
    years = tuple(y for y in ("2007", "2012") if (root / f"VOC{y}").is_dir())
    train_set = VOCDetection(
        root, years=years, image_set="trainval", transform=transform, seed=cfg.seed
    )
    val_set = VOCDetection(root, years=("2007",), image_set="test", transform=EvalTransform(size))
    print(f"training {cfg.model} on VOC{'+'.join(years)} trainval ({len(train_set)} images)")
    result = train(
        cfg,
        model,
        train_set,
        VOC_CLASSES,
        val_set=val_set,
        device=args.device,
        resume=args.resume,
        progress=not args.no_progress,
    )
    if result.evaluation is not None:
        _print_evaluation(result.evaluation, len(val_set))
    return 0


def _print_evaluation(evaluation: Any, n_images: int) -> None:
    print(f"VOC07 mAP on {n_images} held-out images: {evaluation.mean_ap:.4f}")
    print(evaluation.table())


def _demo_figure(model: nn.Module, dataset: Dataset, class_names: Sequence[str]) -> Path | None:
    """Detections (score >= 0.5) on eight held-out images, ground truth dashed."""
    import matplotlib

    matplotlib.use("Agg")  # a file, no window: works on servers and in CI
    from ssd_edu.viz import plot_detections_above, save_figure

    items = [dataset[i] for i in range(min(8, len(dataset)))]
    images = torch.stack([item[0] for item in items])  # [8, 3, S, S]
    dets = predict(model, images.to(next(model.parameters()).device), score_threshold=0.01)
    dets = [(b.cpu(), s.cpu(), l.cpu()) for b, s, l in dets]
    truth = [item[1:] for item in items]
    fig = plot_detections_above(images, dets, list(class_names), 0.5, ground_truths=truth)
    return save_figure(fig, "demo_detections.png")


if __name__ == "__main__":
    sys.exit(main())
