"""The shapes-trained small model, the starting point of ``--model small`` on one's own data.

A dataset folder of a course project holds a few thousand images: too few, in the minutes a CPU
has, to teach a network from scratch both what edges and corners look like and where to put a
box. The small model trained on synthetic shapes (``python -m ssd_edu.train``) has learned the
second and some of the first. Starting from its weights (backbone, extra layers and box
regressors; the class layers start fresh when the number of classes differs, as
:func:`~ssd_edu.checkpoint.init_weights` does) lifted the held-out mAP on icons of real objects
from 0.29 to 0.46 at the same cost (``tools/recipe_results.md``).

:func:`shapes_start` makes that checkpoint once, with the demo's recipe (``START_ITERS``
iterations of :meth:`~ssd_edu.config.TrainConfig.shapes_cpu`, seed 0, no evaluation), and later
runs reuse it. It is the default ``--init-from shapes`` of ``--model small`` on ``--voc-root`` /
``--coco-json`` data; ``--init-from none`` starts from random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ssd_edu.checkpoint import load_checkpoint
from ssd_edu.config import SMALL_WIDTH, TrainConfig, shapes_datasets

START_DIR = Path("runs") / "shapes_start"  # relative: next to the run's own runs/ folder
START_ITERS = 800  # the demo's schedule (ssd_edu.cli.train.DEMO_ITERS): held-out mAP about 0.91


def shapes_start(out_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The path of the shapes-trained small model's checkpoint, trained now if not there yet.

    Args:
        out_dir: where it lives (default ``START_DIR``, ``runs/shapes_start``).
        progress: show the progress bar while it trains.

    Returns:
        ``out_dir/checkpoint.pt``, a finished run of ``START_ITERS`` iterations.

    Raises:
        ValueError: a checkpoint is there but unreadable, or is not a finished shapes run of the
            small model at ``SMALL_WIDTH`` channels; the message names the file (delete it and
            it is trained again).
    """
    from ssd_edu.data import SHAPE_CLASSES
    from ssd_edu.model import ssd_small
    from ssd_edu.train import train

    path = Path(START_DIR if out_dir is None else out_dir) / "checkpoint.pt"
    if path.is_file():
        _check(path)
        return path
    print(f"making the starting weights: the small model on shapes, {START_ITERS} iterations, "
          f"once (kept in {path})")  # fmt: skip
    cfg = TrainConfig.shapes_cpu(
        max_iters=START_ITERS, seed=0, eval_every=0, checkpoint_every=START_ITERS,
        out_dir=str(path.parent),
    )  # fmt: skip
    train_set, _ = shapes_datasets(cfg.max_iters * cfg.batch_size, 1, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = ssd_small(len(SHAPE_CLASSES) + 1, width=SMALL_WIDTH)
    result = train(cfg, model, train_set, SHAPE_CLASSES, device="cpu", progress=progress)
    return Path(result.checkpoint)


def _check(path: Path) -> None:
    """A finished shapes run of the CPU preset's model, else an error naming the file."""
    try:
        state = load_checkpoint(path)
    except ValueError as e:
        raise ValueError(f"{e}; delete it and it is trained again") from None
    planned = state.get("train_config", {}).get("max_iters")
    width = state.get("model_spec", {}).get("width")
    if state.get("iteration") != planned or width != SMALL_WIDTH:
        raise ValueError(
            f"{str(path)!r} is not a finished shapes run of the small model (iteration "
            f"{state.get('iteration')} of {planned}, width {width}, expected {SMALL_WIDTH}); "
            "delete it and it is trained again, or give --init-from another checkpoint"
        )
