"""One run of the small model on a VOC folder, with the recipe knobs the CLI lacks (issue 20).

    python tools/recipe_run.py --voc-root /tmp/rr/colour --out runs/x [--iters 1000] [--batch 32]
        [--lr 0.03] [--aug flip|no-zoom-out|paper|none|flipcrop|colourflip] [--size 128]
        [--width 64] [--init CKPT] [--threads 1]

The recipe is :meth:`TrainConfig.small_data_cpu` (what ``python -m ssd_edu.train --model small``
uses on a dataset folder: the rate divided by 10 at 80 % and 95 % of ``--iters``) with the knobs
below changed. ``--aug``: ``flip`` a mirror only (the command line's default since issue 20);
``no-zoom-out`` the fast paper augmentation without zoom out, colours + crop + flip (its default
before); ``paper`` adds zoom out; ``none`` is a plain resize; ``flipcrop`` crop + flip (no
colours); ``colourflip`` colours + flip (no crop). ``--init`` loads a checkpoint's weights as
``--init-from`` does (the class layers only where their shapes match: shapes-trained weights for
another number of classes keep the backbone, the box regressors and nothing else); the command
line's default start is ``runs/shapes_start/checkpoint.pt`` (``ssd_edu.cli.shapes_start``).
Prints one ``RESULT`` line with the held-out VOC07 mAP.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from ssd_edu.checkpoint import init_weights
from ssd_edu.cli.datasets import AUGMENTATIONS
from ssd_edu.config import SMALL_DATA_ITERS, TrainConfig
from ssd_edu.data import EvalTransform, VOCDetection, voc_object_names
from ssd_edu.fast.augment import FastTrainTransform
from ssd_edu.model import ssd_small
from ssd_edu.priors import SSD128_SHAPES, PriorConfig
from ssd_edu.train import train

# the command line's --augment choices (flip, no-zoom-out, paper) and three more mixes of the steps
AUGS = {
    **AUGMENTATIONS,
    "none": {"distort": False, "expand": False, "crop": False, "flip": False},
    "flipcrop": {"distort": False, "expand": False},
    "colourflip": {"expand": False, "crop": False},
}


def priors_for(size: int) -> PriorConfig:
    """SSD128_SHAPES's structure at another input size (maps ceil-halved from size / 8)."""
    if size == 128:
        return SSD128_SHAPES
    maps, f = [], size // 8
    for _ in range(5):
        maps.append(f)
        f = (f + 1) // 2
    return PriorConfig.from_scales(size, tuple(maps), SSD128_SHAPES.aspect_ratios, 0.1, 0.9)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--voc-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=SMALL_DATA_ITERS)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--aug", choices=sorted(AUGS), default="flip")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--init")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.voc_root)
    names = tuple(sorted(voc_object_names(root, ["2007"], "trainval")))
    cfg = TrainConfig.small_data_cpu(
        max_iters=a.iters, batch_size=a.batch, lr=a.lr, seed=a.seed, out_dir=a.out,
        checkpoint_every=a.iters,
    )  # fmt: skip
    torch.manual_seed(a.seed)
    model = ssd_small(len(names) + 1, cfg=priors_for(a.size), width=a.width)
    if a.init:  # what --init-from does: every tensor whose name and shape fit
        print(init_weights(model, a.init))
    train_t = FastTrainTransform(a.size, **AUGS[a.aug])
    train_set = VOCDetection(root, ["2007"], "trainval", transform=train_t, class_names=names,
                             seed=cfg.seed)  # fmt: skip
    val_set = VOCDetection(root, ["2007"], "test", transform=EvalTransform(a.size),
                           class_names=names)  # fmt: skip
    t0, c0 = time.time(), time.process_time()
    result = train(cfg, model, train_set, names, val_set=val_set, device="cpu", progress=False)
    wall, cpu = time.time() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last = [r for r in result.log if r.get("loss") is not None]
    row = {
        "root": str(root), "aug": a.aug, "iters": a.iters, "batch": a.batch, "lr": a.lr,
        "size": a.size, "width": a.width, "init": a.init,
        "mAP": round(result.evaluation.mean_ap, 4),
        "wall_s": round(wall), "cpu_s": round(cpu), "rss_mb": round(rss),
        "final_loss": last[-1].get("loss") if last else None,
    }  # fmt: skip
    print(result.evaluation.table())
    print("RESULT " + json.dumps(row))


if __name__ == "__main__":
    main()
