"""Checkpoints: everything needed to continue training exactly, never half written, never bad.

A long run (120k iterations of SSD300) will be interrupted, so the training loop saves its whole
state every few thousand iterations: the model's weights, the optimiser's momentum buffers, the
learning-rate schedule's position, the gradient scaler (fp16 only), the iteration, where the data
order stands, and the state of every random number generator (torch CPU and CUDA, numpy, Python).
Loading all of it back and running on gives, on the CPU, the very same weights as never stopping.

What makes that safe:

* the file is written to a temporary name in the same folder, flushed to disk, then renamed over
  the old one (``ssd_edu.atomic.atomic_write``): a crash, a full disk or an interrupt while
  writing leaves the previous checkpoint intact, and the next save removes what a killed write
  left behind;
* nothing non-finite is ever written: a state holding a NaN or infinite value is refused;
* the file says what it is (a format name and version) and carries a checksum of its tensors, so
  a truncated, corrupted or foreign file is refused at once with an error that names it, instead
  of loading garbage weights;
* it carries what is needed to rebuild the network without the training script (model name,
  number of classes, class names, the default-box ``PriorConfig``), so
  ``python -m ssd_edu.detect`` can use it on its own. Everything stored is a tensor or a plain
  Python value, so it loads with ``torch.load(..., weights_only=True)``.

Paper: not in the paper; this is the engineering that makes its 120k-iteration schedule practical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ssd_edu.atomic import atomic_write
from ssd_edu.priors import PriorConfig

FORMAT = {"name": "ssd_edu checkpoint", "version": 1}


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically, with its format and a checksum of its tensors.

    Args:
        path: where the checkpoint goes; its folder is created if missing.
        state: tensors and plain Python values (state dicts, numbers, strings, lists, dicts).

    Returns:
        The path written.

    Raises:
        ValueError: a floating tensor of ``state`` holds NaN or inf (nothing is written).
    """
    path = Path(path)
    for key, t in _tensors(state):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"refusing to write {path}: {key} holds NaN or infinite values")
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    body = {k: v for k, v in state.items() if k not in ("format", "checksum")}
    full = body | {"format": FORMAT, "checksum": _checksum(body)}
    return atomic_write(path, lambda f: torch.save(full, f))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated, corrupted, not a checkpoint of this package,
            or holds non-finite values; the message names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"checkpoint {str(path)!r} cannot be read: it is truncated, corrupted or not a "
            f"PyTorch checkpoint ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(state, dict) or state.get("format", {}).get("name") != FORMAT["name"]:
        raise ValueError(
            f"{str(path)!r} is not an ssd_edu checkpoint (no 'format' entry naming it); "
            f"checkpoints are written by python -m ssd_edu.train"
        )
    if state["format"].get("version") != FORMAT["version"]:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {state['format'].get('version')}, "
            f"this ssd_edu reads version {FORMAT['version']}"
        )
    body = {k: v for k, v in state.items() if k not in ("format", "checksum")}
    if state.get("checksum") != _checksum(body):
        raise ValueError(f"checkpoint {str(path)!r} is corrupted: its tensors fail the checksum")
    return body


def _tensors(value: Any, key: str = "") -> list[tuple[str, Tensor]]:
    """Every tensor inside nested dicts, lists and tuples, with a readable key."""
    if isinstance(value, Tensor):
        return [(key, value)]
    if isinstance(value, dict):
        return [kt for k, v in value.items() for kt in _tensors(v, f"{key}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [kt for i, v in enumerate(value) for kt in _tensors(v, f"{key}[{i}]")]
    return []


def _checksum(state: dict[str, Any]) -> str:
    """BLAKE2b of every tensor's key, dtype, shape and bytes, in a fixed order."""
    h = hashlib.blake2b(digest_size=16)
    for key, t in _tensors(state):
        h.update(f"{key}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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


def describe(spec: dict[str, Any]) -> str:
    """``"ssd300 with 21 classes (20 objects + background), 300 px"`` for error messages."""
    size = spec.get("prior_cfg", {}).get("image_size")
    width = f", width {spec['width']}" if spec.get("width") else ""
    return f"{spec.get('name')} with {spec.get('num_classes')} classes, {size} px{width}"


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A fresh (randomly initialised) network from a :func:`model_spec` dictionary."""
    from ssd_edu import model as models  # imported here: checkpoints are useful without a model

    prior_cfg = PriorConfig(**spec["prior_cfg"])
    name, num_classes = spec["name"], spec["num_classes"]
    if name == "ssd_small":
        return models.ssd_small(num_classes, cfg=prior_cfg, width=spec["width"])
    if name not in ("ssd300", "ssd512"):
        raise ValueError(f"model name must be 'ssd300', 'ssd512' or 'ssd_small', got {name!r}")
    # the default boxes may be fitted to the data (ssd_edu.fit_boxes); SSD checks that their
    # maps are the network's
    build = models.ssd300 if name == "ssd300" else models.ssd512
    return build(num_classes, cfg=prior_cfg)


def load_weights(model: nn.Module, state: dict[str, Any], path: str | os.PathLike) -> None:
    """Copy a checkpoint's weights into ``model``, or say plainly why they do not fit it."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items()}
    if ours != theirs:
        spec = state.get("model_spec", {})
        missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
        shapes = [k for k in ours if k in theirs and ours[k] != theirs[k]]
        detail = (f"{len(missing)} weights missing, {len(extra)} unexpected, {len(shapes)} of "
                  f"another shape (first: {(missing + extra + shapes)[0]})")  # fmt: skip
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {describe(spec)}; it does not fit this model "
            f"({detail})"
        )
    model.load_state_dict(state["model"])


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
    if "model_spec" not in state or "model" not in state:
        raise ValueError(f"checkpoint {str(path)!r} holds no model: was it written by train?")
    model = build_model(state["model_spec"])
    load_weights(model, state, path)
    return model.to(device).eval(), state["model_spec"]


def init_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Start ``model`` from a checkpoint's weights wherever names and shapes agree (transfer).

    Layers that differ (the class heads, for another number of classes) keep their fresh weights;
    no optimiser, schedule or data position is taken (that is ``--resume``). Returns one line
    saying how many tensors came from the file.
    """
    state = load_checkpoint(path)["model"]
    own = model.state_dict()
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not kept:
        raise ValueError(f"checkpoint {str(path)!r}: none of its tensors fits this model")
    model.load_state_dict(kept, strict=False)
    return f"weights from {path}: {len(kept)} of {len(own)} tensors (the rest start fresh)"
