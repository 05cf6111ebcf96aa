"""Training: the loop that turns matching, the MultiBox loss and SGD into a detector (§3).

The recipe is a :class:`~ssd_edu.config.TrainConfig` (the paper's SSD300 settings by default, or the
small CPU preset). One iteration is :func:`ssd_edu.step.train_step`: match, forward, loss,
backward, SGD step. The loop around it, read top to bottom in :func:`train`:

1. batches come from an endless, seeded stream (:mod:`ssd_edu.data.loader`): the data order is a
   pure function of ``(seed, epoch)`` and each image's augmentation of ``(seed, epoch, index)``,
   whatever the number of workers, so a resumed run sees exactly the images it would have seen;
2. the engine (:class:`ssd_edu.fast.engine.TrainEngine`) takes the step: bf16 autocast and
   channels_last where the CPU or GPU computes bf16 (else the reference step in fp32); a NaN or
   infinite value stops training before it reaches the weights or a checkpoint;
3. every few iterations: a row of the CSV log (:mod:`ssd_edu.runlog`), the held-out VOC07 mAP
   (:func:`ssd_edu.predict.evaluate_model`), an atomic checkpoint with every random state
   (:mod:`ssd_edu.checkpoint`).

Several GPUs work through ``DistributedDataParallel`` when ``torchrun`` starts the processes (rank 0
writes). Images are ``[B, 3, S, S]``; ground truth per image ``boxes [N, 4]`` xyxy fractions and
``labels [N]`` in ``1..C``. The command line is :mod:`ssd_edu.cli.train`.

Paper: §2.2 (training objective, matching, hard negative mining), §3 (training settings).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from ssd_edu.checkpoint import (
    load_checkpoint,
    load_weights,
    model_spec,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ssd_edu.config import SHAPES_DATA, SMALL_WIDTH, TrainConfig, lr_factor, shapes_datasets
from ssd_edu.data.loader import training_loader
from ssd_edu.fast.engine import TrainEngine, uses_channels_last
from ssd_edu.matching import BadGroundTruth
from ssd_edu.model.ssd import unwrap
from ssd_edu.predict import evaluate_model, predict
from ssd_edu.runlog import LOG_FIELDS, RunLog, read_log
from ssd_edu.step import NonFiniteLossError, train_step

# names the notebooks and exercises import from here (docs/design.md)
__all__ = [
    "LOG_FIELDS", "SHAPES_DATA", "SMALL_WIDTH", "NonFiniteLossError", "TrainConfig",
    "TrainResult", "evaluate_model", "lr_factor", "predict", "read_log", "shapes_datasets",
    "train", "train_step",
]  # fmt: skip


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
    """Train ``model`` on ``train_set`` for ``cfg.max_iters`` iterations (SGD, the paper's loss).

    Writes ``cfg.out_dir/checkpoint.pt`` every ``cfg.checkpoint_every`` iterations and at the end,
    and ``cfg.out_dir/log.csv`` as it goes. Under ``torchrun`` with several processes each rank sees
    its share of every epoch and only rank 0 writes files and evaluates.

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
        NonFiniteLossError: a loss, gradient, weight or batch-norm statistic became NaN or inf;
            the message names it, the iteration and the images; the last checkpoint is good.

    Paper: §2.2 (training objective, matching, hard negative mining), §3 (training settings).
    """
    rank, world, device = _processes(device, cfg)
    net = unwrap(model).to(device)
    out_dir = Path(cfg.out_dir)
    spec = model_spec(cfg.model, net, list(class_names))
    engine = TrainEngine(*_wrapped(net, cfg, device, world), cfg, device, world)
    start, last_ckpt = (0, None) if resume is None else _resume(resume, engine, cfg, spec)
    loader, batches = training_loader(
        train_set, cfg.batch_size // world, cfg.seed, rank, world, cfg.num_workers, start,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    log = RunLog(out_dir / "log.csv", cfg.batch_size, device, start if resume else None, rank == 0)
    bar = _progress_bar(cfg, start, progress and rank == 0)
    evaluation, iteration, saved_at = None, start, start
    engine.model.train()
    try:
        for iteration, (images, boxes, labels, indices, pixel_work) in zip(
            range(start + 1, cfg.max_iters + 1), loader
        ):
            log.add(engine.step(images, boxes, labels, pixel_work, tag=(iteration, indices)))
            bar.update(1)
            log_now, eval_now, save_now = _due(cfg, iteration, val_set is not None, rank == 0)
            if not (log_now or eval_now or save_now):
                continue
            engine.flush()  # nothing is logged, evaluated or saved after a bad step
            if eval_now:
                began = time.perf_counter()
                evaluation = evaluate_model(net, val_set, class_names, cfg.eval_batch_size)
                log.exclude(time.perf_counter() - began)  # evaluation is not training time
            if log_now or eval_now:
                row = log.write(iteration, engine.lr, evaluation.mean_ap if eval_now else None)
                bar.set_postfix(loss=row["loss"], lr=f"{engine.lr:.2g}")
            if save_now:
                state = _training_state(net, engine, iteration, cfg, spec, batches.per_epoch)
                last_ckpt, saved_at = save_checkpoint(out_dir / "checkpoint.pt", state), iteration
        engine.flush()
    except NonFiniteLossError as bad:  # say where: the iteration, the images, what is kept
        raise _stopped(bad, iteration, train_set, last_ckpt, saved_at) from None
    except BadGroundTruth as bad:  # the batch slot it names, as a dataset index and image id
        raise BadGroundTruth(_in_dataset(bad, iteration, indices, train_set), None) from None
    finally:
        bar.close()
        log.close()
    net = _handed_back(net, world)
    return TrainResult(net, log.rows, evaluation, last_ckpt if rank == 0 else None, iteration)


def _processes(device, cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; starts the process group when torchrun launched us.

    NCCL for CUDA training, gloo for the CPU (also on a machine with a GPU, when the caller asked
    for the CPU).
    """
    rank, world, local = 0, int(os.environ.get("WORLD_SIZE", "1")), 0
    if world > 1:
        if not dist.is_initialized():
            cuda = (
                torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
            )
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        # every batch has the same shape: let cuDNN time its convolution algorithms once
        torch.backends.cudnn.benchmark = True
    if cfg.batch_size % world != 0:
        raise ValueError(f"batch_size {cfg.batch_size} must divide evenly over {world} processes")
    return rank, world, device


def _wrapped(net: nn.Module, cfg: TrainConfig, device: torch.device, world: int):
    """``(model, net)``: the module whose forward trains (DDP, compiled) and the plain SSD."""
    if uses_channels_last(device, cfg):
        net = net.to(memory_format=torch.channels_last)
    model: nn.Module = net
    if world > 1:
        index = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(net, device_ids=index)
    if cfg.compile:
        model = torch.compile(model)
    return model, net


def _handed_back(net: nn.Module, world: int) -> nn.Module:
    """After the last step, every process done; the model in the layout it came in (NCHW)."""
    if world > 1:
        dist.barrier()
    return net.to(memory_format=torch.contiguous_format)


def _due(cfg: TrainConfig, iteration: int, has_val: bool, main: bool) -> tuple[bool, bool, bool]:
    """Whether this iteration writes a log row, evaluates, saves a checkpoint."""
    last = iteration == cfg.max_iters
    log_now = iteration % cfg.log_every == 0 or last
    eval_now = main and has_val and ((cfg.eval_every and iteration % cfg.eval_every == 0) or last)
    save_now = main and ((cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0) or last)
    return log_now, bool(eval_now), bool(save_now)


def _training_state(net, engine, iteration: int, cfg, spec, per_epoch: int) -> dict[str, Any]:
    epoch, batch = divmod(iteration, per_epoch)
    return {
        "model": net.state_dict(),
        **engine.state_dict(),  # optimizer, scheduler, scaler
        "rng": rng_state(),
        "iteration": iteration,
        "data_position": {"seed": cfg.seed, "epoch": epoch, "batch": batch},
        "train_config": asdict(cfg),
        "model_spec": spec,
    }


def _resume(path, engine: TrainEngine, cfg: TrainConfig, spec: dict) -> tuple[int, Path]:
    """Load a checkpoint into the engine and random states; ``(iteration, path)``."""
    state = load_checkpoint(path)
    start = int(state["iteration"])
    if cfg.max_iters <= start:
        raise ValueError(
            f"the checkpoint {str(path)!r} is at iteration {start}, and max_iters is "
            f"{cfg.max_iters}: there is nothing left to train (ask for more iterations)"
        )
    saved = state.get("train_config", {})
    for name in ("batch_size", "seed"):  # they decide the data order: a change breaks it
        if name in saved and saved[name] != getattr(cfg, name):
            raise ValueError(
                f"the checkpoint {str(path)!r} was trained with {name} {saved[name]}, this run "
                f"asks for {getattr(cfg, name)}: resuming needs the same {name}"
            )
    if state["model_spec"].get("prior_cfg") != spec["prior_cfg"]:  # e.g. --fit-default-boxes
        raise ValueError(f"the checkpoint {str(path)!r} was trained on other default boxes than "
                         "this run's: resume with the options that made them")  # fmt: skip
    load_weights(engine.net, state, path)
    engine.load_state_dict(state)
    set_rng_state(state["rng"])
    return start, Path(path)


def _progress_bar(cfg: TrainConfig, start: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.max_iters, initial=start, disable=not show, desc="train", dynamic_ncols=True
    )


def _in_dataset(bad: BadGroundTruth, iteration: int, indices: list[int], dataset) -> str:
    ids = getattr(dataset, "image_ids", None)
    index = indices[bad.image] if bad.image is not None else None
    name = f", image id {ids[index]!r}" if ids is not None and index is not None else ""
    return f"{bad} (iteration {iteration}: dataset index {index}{name})"


def _stopped(bad, iteration, dataset, last_ckpt, saved_at) -> NonFiniteLossError:
    iteration, indices = bad.tag if bad.tag else (iteration, [])
    ids = getattr(dataset, "image_ids", getattr(dataset, "ids", None))
    names = f" (image ids {[ids[i] for i in indices]})" if ids is not None and indices else ""
    losses = ""
    if bad.losses is not None and not bad.what.startswith("the loss"):
        total, loc, conf = bad.losses.tolist()
        losses = f" (the loss was total={total}, loc={loc}, conf={conf})"
    kept = (
        f"the last good checkpoint is {last_ckpt} (iteration {saved_at})"
        if last_ckpt is not None
        else "no checkpoint had been written yet"
    )
    message = (
        f"non-finite values in iteration {iteration}: {bad.what} is not finite{losses}; the batch "
        f"held dataset indices {indices}{names}. Training stopped and saved nothing of that step; "
        f"{kept}. Check those images (boxes of zero size or outside [0, 1], extreme pixel values) "
        f"or lower the learning rate."
    )
    return NonFiniteLossError(message, bad.what, bad.losses, bad.tag)


if __name__ == "__main__":  # python -m ssd_edu.train: the command line lives in ssd_edu/cli/
    from ssd_edu.cli.train import main

    sys.exit(main())
