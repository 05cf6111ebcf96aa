"""Checkpoints: everything needed to continue training exactly, written so it is never half there.

A long run (120k iterations of SSD300) will be interrupted, so the training loop saves its whole
state every few thousand iterations: the model's weights, the optimiser's momentum buffers, the
learning-rate schedule's position, the gradient scaler (fp16 only), the iteration, where the data
order stands, and the state of every random number generator (torch CPU and CUDA, numpy, Python).
Loading all of it back and running on gives, on the CPU, the very same weights as never stopping.

Two details make that safe:

* the file is written to a temporary name in the same folder, flushed to disk, then renamed over
  the old one with ``os.replace`` (atomic on POSIX and Windows): a crash, a full disk or an
  interrupt while writing leaves the previous checkpoint intact;
* the checkpoint also carries what is needed to rebuild the network without the training script
  (model name, number of classes, class names, the default-box ``PriorConfig``), so
  ``python -m ssd_edu.detect`` can use it on its own. Everything stored is a tensor or a plain
  Python value, so it loads with ``torch.load(..., weights_only=True)``.

Paper: not in the paper; this is the engineering that makes its 120k-iteration schedule practical.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssd_edu.atomic import atomic_write
from ssd_edu.priors import PriorConfig


def rng_state() -> dict[str, Any]:
    """The state of every random number generator training may touch, as tensors and plain values.

    Returns:
        ``{"torch": ByteTensor, "cuda": [ByteTensor per GPU], "numpy": [...], "python": tuple}``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's state holds an ndarray; kept as a tensor so weights_only loading accepts it
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where GPUs are present)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    # pickle-free loading hands tuples back as lists; random.setstate wants the tuples it gave
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: the old file stays intact until the new one is whole.

    Args:
        path: where the checkpoint goes; its folder is created if missing.
        state: tensors and plain Python values (state dicts, numbers, strings, lists, dicts).

    Returns:
        The path written.
    """
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def model_spec(name: str, model: nn.Module, class_names: list[str]) -> dict[str, Any]:
    """What a checkpoint must carry to rebuild its network: see :func:`build_model`.

    Args:
        name: ``"ssd300"``, ``"ssd512"`` or ``"ssd_small"``.
        model: the SSD (its ``num_classes``, ``cfg`` and, for ``ssd_small``, its width are read).
        class_names: the ``C`` object class names (label ``l`` is ``class_names[l - 1]``).

    Returns:
        ``{"name", "num_classes", "class_names", "prior_cfg" (a dict), "width"}``.
    """
    if len(class_names) != model.num_classes - 1:
        raise ValueError(
            f"class_names must list the num_classes - 1 = {model.num_classes - 1} object classes "
            f"(background excluded), got {len(class_names)}"
        )
    return {
        "name": name,
        "num_classes": int(model.num_classes),
        "class_names": list(class_names),
        "prior_cfg": dataclasses.asdict(model.cfg),
        "width": int(model.backbone.out_channels[0]) if name == "ssd_small" else None,
    }


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A fresh (randomly initialised) network from a :func:`model_spec` dictionary."""
    from ssd_edu import model as models  # imported here: checkpoints are useful without a model

    prior_cfg = PriorConfig(**spec["prior_cfg"])
    name, num_classes = spec["name"], spec["num_classes"]
    if name == "ssd_small":
        return models.ssd_small(num_classes, cfg=prior_cfg, width=spec["width"])
    if name not in ("ssd300", "ssd512"):
        raise ValueError(f"model name must be 'ssd300', 'ssd512' or 'ssd_small', got {name!r}")
    model = models.ssd300(num_classes) if name == "ssd300" else models.ssd512(num_classes)
    if model.cfg != prior_cfg:
        raise ValueError(f"checkpoint's PriorConfig differs from {name}'s: {prior_cfg}")
    return model


def load_model(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint, with its trained weights, in eval mode.

    Args:
        path: a checkpoint written by the training loop.
        device: where to put the model.

    Returns:
        ``(model, spec)``; ``spec["class_names"]`` names the labels the model predicts.
    """
    state = load_checkpoint(path)
    if "model_spec" not in state:
        raise ValueError(f"checkpoint {str(path)!r} has no 'model_spec': was it written by train?")
    model = build_model(state["model_spec"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state["model_spec"]
