"""``--fit-default-boxes`` and ``--diagnose`` for ``python -m ssd_edu.train``.

Two pieces a training command line calls around its training run:

- before it builds the model, :func:`prior_config` measures how the default boxes cover the
  training boxes and, with ``--fit-default-boxes``, fits ``s_min``, ``s_max`` and the aspect
  ratios to them (:func:`ssd_edu.fit_boxes.fit_default_boxes`), printing the coverage before and
  after; the model is then built with the configuration it returns (same maps, same heads);
- after training, :func:`report` prints, with ``--diagnose``, the diagnosis of the data and of
  the trained model on the held-out images (:func:`ssd_edu.diagnose.diagnose`).

Paper: §2.2 (default boxes, eq. 4; matching), §3 (mAP).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

from torch import nn
from torch.utils.data import Dataset

from ssd_edu.checkpoint import load_model
from ssd_edu.coverage import coverage
from ssd_edu.diagnose import Diagnosis, diagnose
from ssd_edu.diagnose_data import targets_of
from ssd_edu.fit_boxes import fit_default_boxes
from ssd_edu.priors import PriorConfig

MAX_IMAGES = 2000  # training images read for coverage, fitting and the data findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--fit-default-boxes`` and ``--diagnose`` to a training command line."""
    group = parser.add_argument_group("default boxes and diagnosis")
    group.add_argument(
        "--fit-default-boxes",
        action="store_true",
        help="fit s_min, s_max and the aspect ratios of the default boxes to the training boxes "
        "(same maps and heads); prints their coverage before and after",
    )
    group.add_argument(
        "--diagnose",
        action="store_true",
        help="after training, report class balance, default-box coverage, positives per image, "
        "class confusion, AP by size and false-positive sources, with suggestions",
    )


def prior_config(
    args: argparse.Namespace,
    train_set: Dataset | Sequence,
    base: PriorConfig,
    out: Callable[[str], None] = print,
) -> PriorConfig:
    """The default boxes to build the model with: ``base``, or fitted with ``--fit-default-boxes``.

    Prints the coverage of the training boxes (before and after fitting) when either flag is set.

    Args:
        args: parsed arguments (``fit_default_boxes``, ``diagnose``).
        train_set: the training dataset (its boxes are read without augmentation), or targets.
        base: the preset's default boxes (e.g. ``SSD128_SHAPES``).
        out: where the lines go.
    """
    if not (args.fit_default_boxes or args.diagnose):
        return base
    boxes = [b[~d] for b, _, d in targets_of(train_set, MAX_IMAGES)]
    if not args.fit_default_boxes:
        out(coverage(boxes, base).table())
        return base
    fit = fit_default_boxes(boxes, base)
    out(fit.summary())
    out(fit.after.table())
    return fit.config


def report(
    args: argparse.Namespace,
    train_set: Dataset | Sequence,
    val_set: Dataset | None,
    class_names: Sequence[str],
    prior_cfg: PriorConfig | None,
    model: nn.Module | str | os.PathLike | None,
    out: Callable[[str], None] = print,
) -> Diagnosis | None:
    """With ``--diagnose``: print and return the diagnosis of the data and the trained model.

    Args:
        args: parsed arguments (``diagnose``).
        train_set: the training dataset, or per-image targets.
        val_set: held-out items with the model's eval transform (None: the data findings only).
        class_names: the C object class names.
        prior_cfg: the default boxes the model was built with (None: the model's own).
        model: the trained model, a checkpoint path, or None (the data findings only).
        out: where the report goes.
    """
    if not args.diagnose:
        return None
    if isinstance(model, (str, os.PathLike)):
        model, _ = load_model(model)
    if val_set is None:
        model = None  # a model is only diagnosed on held-out images
    result = diagnose(train_set, class_names, prior_cfg, model=model, val_set=val_set,
                      max_images=MAX_IMAGES)  # fmt: skip
    out("diagnosis:")
    out(result.report())
    return result
