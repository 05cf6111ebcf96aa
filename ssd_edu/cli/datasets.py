"""The data sources of ``python -m ssd_edu.train``: one short function each, the same result.

- :func:`shapes`: synthetic shapes made on the fly (the default; the small model, no files);
- :func:`voc`: a folder in the VOCdevkit layout (``--voc-root``): PASCAL VOC or one's own data;
- :func:`coco`: a COCO-format JSON and its images (``--coco-json``, ``--images``).

Each returns a :class:`Source`: the recipe, a freshly built model, the training and held-out
sets, and the class names (stored in the checkpoint, so ``python -m ssd_edu.detect`` names what
it finds). ``--model small`` is the 128-pixel CPU model with the small-data recipe
(:meth:`~ssd_edu.config.TrainConfig.small_data_cpu`: flips only, starting from the
shapes-trained weights of :mod:`ssd_edu.cli.shapes_start`, measured in
``tools/recipe_results.md``); ``ssd300``
and ``ssd512`` are the paper's, with its recipe (:class:`~ssd_edu.config.TrainConfig`) and VOC's
default boxes on any dataset. Errors in the options or the data are ``ValueError`` /
``FileNotFoundError`` naming what was wrong.

Paper: §3 (training settings), §3.1 (VOC: 07+12 trainval, VOC2007 test), §3.4 (COCO).
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ssd_edu.checkpoint import init_weights
from ssd_edu.config import SMALL_WIDTH, TrainConfig, shapes_datasets

# --augment: which steps of the paper's augmentation (§2.2) training on a dataset folder takes.
# On toy VOC (20 colour x shape classes) the small model reached 0.67 without zoom out, 0.38 with
# it; on icons of real objects on textures, flip alone did better (0.29 vs 0.10 at 500
# iterations), 0.50 when started from the shapes model (tools/recipe_results.md)
AUGMENTATIONS = {
    "paper": {},
    "no-zoom-out": {"expand": False},
    "flip": {"expand": False, "crop": False, "distort": False},
}


@dataclass
class Source:
    """What a training run needs from its data source.

    Args:
        cfg: the recipe, with the command line's overrides.
        model: the network, freshly initialised (seeded by ``cfg.seed``).
        train_set, val_set: training items (augmented) and held-out items (resized only).
        class_names: the ``C`` object classes; label ``l`` is ``class_names[l - 1]``.
        what: one line saying what is trained on what, for the log.
    """

    cfg: TrainConfig
    model: nn.Module
    train_set: Dataset
    val_set: Dataset
    class_names: tuple[str, ...]
    what: str


def shapes(args: argparse.Namespace, overrides: dict[str, Any]) -> Source:
    """The small model on :class:`~ssd_edu.data.ShapesDataset` (no files needed)."""
    from ssd_edu.data import SHAPE_CLASSES

    if args.model not in (None, "small"):
        raise ValueError(f"--model {args.model} needs data (--voc-root or --coco-json)")
    if args.augment is not None:
        raise ValueError("--augment is for --voc-root / --coco-json (shapes draw their own)")
    for name in ("train_size", "val_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    cfg = TrainConfig.shapes_cpu(**overrides)
    model = _model("small", len(SHAPE_CLASSES), cfg, args, own_data=False)
    n_train = args.train_size or cfg.max_iters * cfg.batch_size  # every image seen once
    train_set, val_set = shapes_datasets(n_train, args.val_size or 300, seed=cfg.seed)
    what = f"{cfg.model} on {len(train_set)} shapes"
    return Source(cfg, model, train_set, val_set, SHAPE_CLASSES, what)


def voc(args: argparse.Namespace, overrides: dict[str, Any]) -> Source:
    """A VOCdevkit-layout folder: every ``VOC<year>/`` trainval list, tested on VOC2007 test.

    Training uses each year's ``trainval.txt`` (the paper's 07+12 when both are there); the test
    list is ``VOC2007/ImageSets/Main/test.txt``, or, in a folder with one ``VOC<year>``, its
    ``test.txt``. Class names are ``--classes`` or the sorted names of the training objects;
    an object of another class, in either list, is an error naming its file.
    """
    from ssd_edu.data import VOCDetection, voc_object_names

    root = Path(args.voc_root)
    if not root.is_dir():
        raise ValueError(f"--voc-root {str(root)!r} is not a folder")
    years = sorted(p.name[3:] for p in root.glob("VOC*") if (p / "ImageSets" / "Main").is_dir())
    train_years = [y for y in years if (root / f"VOC{y}/ImageSets/Main/trainval.txt").is_file()]
    if not train_years:
        hint = (
            f" (did you mean {str(root / 'VOCdevkit')!r}?)" if (root / "VOCdevkit").is_dir() else ""
        )
        raise ValueError(
            f"--voc-root {str(root)!r} has no VOC<year>/ImageSets/Main/trainval.txt: it must be a "
            f"VOCdevkit folder (VOC2007/, VOC2012/ or VOC<year>/ of your own){hint}"
        )
    test_year = "2007" if "2007" in years else years[0] if len(years) == 1 else None
    if test_year is None or not (root / f"VOC{test_year}/ImageSets/Main/test.txt").is_file():
        raise ValueError(
            f"--voc-root {str(root)!r} has no test list to evaluate on: VOC2007/ImageSets/Main/"
            f"test.txt, or the test.txt of its one VOC<year> (found {['VOC' + y for y in years]})"
        )
    seen = voc_object_names(root, train_years, "trainval")
    class_names = _classes(args.classes, sorted(seen), seen, "the training list")
    _check_known(voc_object_names(root, [test_year], "test"), class_names, args.classes)
    name = args.model or "ssd300"
    cfg = _config(name, overrides, f"runs/{name}_voc")
    model = _model(name, len(class_names), cfg, args)
    train_t, eval_t = _transforms(model, args)
    train_set = VOCDetection(root, train_years, "trainval", transform=train_t,
                             class_names=class_names, seed=cfg.seed)  # fmt: skip
    val_set = VOCDetection(root, [test_year], "test", transform=eval_t, class_names=class_names)
    what = (f"{cfg.model} on VOC{'+'.join(train_years)} trainval ({len(train_set)} images), "
            f"tested on VOC{test_year} test ({len(val_set)} images)")  # fmt: skip
    return Source(cfg, model, train_set, val_set, class_names, what)


def coco(args: argparse.Namespace, overrides: dict[str, Any]) -> Source:
    """A COCO-format JSON and its images; held out: ``--val-json`` or ``--val-fraction``.

    With ``--val-json`` its images are read from ``--val-images`` (default ``--images``) and its
    categories must be the training file's; otherwise ``--val-fraction`` (default 0.2) of the
    images is held out by :func:`~ssd_edu.data.split_image_ids`, seeded by ``--seed``.
    """
    from ssd_edu.data import COCODetection, split_image_ids

    if args.images is None:
        raise ValueError("--coco-json needs --images, the folder its file_name entries are in")
    if args.val_json and args.val_fraction is not None:
        raise ValueError("give --val-json or --val-fraction, not both")
    fraction = 0.2 if args.val_fraction is None else args.val_fraction
    if not args.val_json and not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction must lie in (0, 1), got {fraction}")
    name = args.model or "ssd300"
    cfg = _config(name, overrides, f"runs/{name}_coco")
    full = COCODetection(args.images, args.coco_json, seed=cfg.seed)
    class_names = full.class_names
    if args.val_json:
        val_set = COCODetection(args.val_images or args.images, args.val_json)
        if val_set.class_names != class_names:
            raise ValueError(
                f"--val-json {args.val_json} has the classes {list(val_set.class_names)}, "
                f"--coco-json {args.coco_json} has {list(class_names)}: the held-out file must "
                "have the same categories (names, in id order)"
            )
        train_set, held = full, f"{args.val_json} ({len(val_set)} images)"
    else:
        kept, out = split_image_ids(full.image_ids, fraction, seed=cfg.seed)
        train_set, val_set = _subset(full, kept), _subset(full, out)
        held = f"{fraction:g} of the images ({len(val_set)}), seed {cfg.seed}"
    model = _model(name, len(class_names), cfg, args)
    train_set.transform, val_set.transform = _transforms(model, args)
    what = f"{cfg.model} on {args.coco_json} ({len(train_set)} images), held out: {held}"
    return Source(cfg, model, train_set, val_set, class_names, what)


def _subset(full, image_ids: list[int]):
    """The same COCO file, these images only (the file is not read again: it may be large)."""
    part = copy.copy(full)
    part.image_ids = list(image_ids)  # ids from the file itself, sorted: nothing to check
    return part


def _classes(given: str | None, found: list[str], seen: dict[str, str], where: str) -> tuple:
    """``--classes a,b,c`` checked against the names found, or the names found."""
    if given is None:
        if not found:
            raise ValueError(f"no objects in {where}: no class names to train on")
        return tuple(found)
    names = [n.strip() for n in given.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"--classes must be distinct, non-empty names, got {given!r}")
    _check_known(seen, names, given)
    return tuple(names)


def _check_known(seen: dict[str, str], class_names, given: str | None) -> None:
    """Every name in ``seen`` (name -> where) must be a class, else an error naming the file."""
    for name, where in seen.items():
        if name not in class_names:
            fix = (
                "add it to --classes"
                if given is not None
                else ("it is in no training annotation; name every class with --classes")
            )
            raise ValueError(f"{where}: unknown class {name!r}: {fix}")


def _config(name: str, overrides: dict[str, Any], out_dir: str) -> TrainConfig:
    """The small model's recipe for a dataset folder, or the paper's for SSD300 / SSD512."""
    overrides = {"out_dir": out_dir, **overrides}
    if name == "small":
        return TrainConfig.small_data_cpu(**overrides)
    return replace(TrainConfig(model=name), **overrides)


def _model(
    name: str, n_classes: int, cfg: TrainConfig, args: argparse.Namespace, own_data: bool = True
) -> nn.Module:
    """A fresh network for ``n_classes`` objects (+ background), seeded by ``cfg.seed``.

    ``--init-from`` loads a checkpoint's weights wherever they fit; ``shapes`` is the
    shapes-trained small model (:func:`~ssd_edu.cli.shapes_start.shapes_start`, made once),
    the small model's default on one's own data; ``none`` keeps the random weights.
    """
    from ssd_edu.model import load_vgg16_backbone, ssd300, ssd512, ssd_small

    if args.init_from and args.resume:
        raise ValueError("give --init-from (new run, its weights) or --resume (same run), not both")
    init = args.init_from
    if init is None and name == "small" and own_data and args.resume is None:
        init = "shapes"
    if init == "shapes":
        if name != "small":  # refused now, not after minutes of training the start
            raise ValueError(f"--init-from shapes is the small model's start, not {name}'s")
        from ssd_edu.cli.shapes_start import shapes_start

        init = shapes_start(progress=not args.no_progress)
    torch.manual_seed(cfg.seed)
    if name == "small":
        if args.vgg_weights:
            raise ValueError("--vgg-weights is for ssd300 / ssd512: the small model has no VGG16")
        model = ssd_small(n_classes + 1, width=SMALL_WIDTH)
    else:
        model = (ssd300 if name == "ssd300" else ssd512)(num_classes=n_classes + 1)
    if init not in (None, "none"):
        print(init_weights(model, init))
    if name == "small":
        return model
    if args.vgg_weights:
        print(load_vgg16_backbone(model, args.vgg_weights))
    elif args.resume is None:
        print(
            "warning: no --vgg-weights: the VGG16 base starts from random weights", file=sys.stderr
        )
    return model


def _transforms(model: nn.Module, args: argparse.Namespace) -> tuple[Any, Any]:
    """The fast form of the paper's augmentation, and the test-time resize, at the model's size."""
    from ssd_edu.data import EvalTransform
    from ssd_edu.fast.augment import FastTrainTransform

    size = model.cfg.image_size
    # on a GPU the augmentation workers set the pace: leave the photometric distortion to the
    # device, one batched step per iteration (on the CPU the workers do it faster)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # the small model's short runs on a few thousand images: flips only (tools/recipe_results.md)
    steps = AUGMENTATIONS[args.augment or ("flip" if args.model == "small" else "paper")]
    train_t = FastTrainTransform(size, **steps, defer_photometric=device.type == "cuda")
    return train_t, EvalTransform(size)
