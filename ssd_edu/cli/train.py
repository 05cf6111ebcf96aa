"""``python -m ssd_edu.train`` (and ``ssd-edu-train``): train SSD from the command line.

    python -m ssd_edu.train                      # the small model on synthetic shapes, CPU
    python -m ssd_edu.train --demo               # the same, then mAP and a figure (make demo)
    python -m ssd_edu.train --voc-root data/VOCdevkit --vgg-weights vgg16.pth   # SSD300, 07+12
    torchrun --nproc_per_node 8 -m ssd_edu.train --voc-root data/VOCdevkit --vgg-weights vgg16.pth

Options override the preset's :class:`~ssd_edu.config.TrainConfig`; ``--resume`` continues from a
checkpoint. Errors in the settings are reported by name with exit status 2.

Paper: §3 (training settings), §3.1 (SSD300 on VOC07+12, evaluated on VOC2007 test).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ssd_edu.config import SMALL_WIDTH, TrainConfig, shapes_datasets
from ssd_edu.predict import predict
from ssd_edu.train import train


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
    if args.threads is not None:
        if args.threads < 1:
            print(f"--threads must be at least 1, got {args.threads}", file=sys.stderr)
            return 2
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
    try:
        return (_main_voc if args.voc_root else _main_shapes)(args, overrides)
    except ValueError as e:  # bad settings, a checkpoint that does not fit: say so, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main_shapes(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from ssd_edu.data import SHAPE_CLASSES
    from ssd_edu.model import ssd_small

    cfg = TrainConfig.shapes_cpu(**overrides)
    for name in ("train_size", "val_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    torch.manual_seed(cfg.seed)
    model = ssd_small(len(SHAPE_CLASSES) + 1, width=SMALL_WIDTH)
    n_train = args.train_size or cfg.max_iters * cfg.batch_size  # every image seen once
    train_set, val_set = shapes_datasets(n_train, args.val_size, seed=cfg.seed)
    device = args.device or ("cpu" if args.demo else None)
    print(f"training {cfg.model} on {len(train_set)} shapes for {cfg.max_iters} iterations")
    result = train(
        cfg, model, train_set, SHAPE_CLASSES, val_set=val_set, device=device,
        resume=args.resume, progress=not args.no_progress,
    )  # fmt: skip
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
        raise ValueError(f"--voc-root {str(root)!r} is not a folder")
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
        cfg, model, train_set, VOC_CLASSES, val_set=val_set, device=args.device,
        resume=args.resume, progress=not args.no_progress,
    )  # fmt: skip
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
