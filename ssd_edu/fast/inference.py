"""The network's forward pass made fast on the CPU: channels_last, and bf16 where the CPU has it.

:func:`ssd_edu.predict.predict` (and so ``evaluate_model``, the detect command line, ``make
demo``'s evaluation and the notebooks' inference) runs the network through :func:`forward`:

* the images go in **channels_last** (NHWC): oneDNN's convolutions read and write that layout
  directly, where NCHW makes them reorder every activation;
* on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX-BF16, detected once) the convolutions
  run under **bf16 autocast**; with AMX a bf16 convolution is several times faster than an fp32
  one. The weights are not converted: autocast hands oneDNN a bf16 copy of each, which it lays out
  as it likes, so the model's own layout does not matter here;
* on a CPU without native bf16 the network stays fp32, and the weights must be channels_last too
  for the gain, so :func:`fast_layout` converts them for the duration of the call and puts them
  back afterwards: the caller's model keeps the memory format it had.

``precision="fp32"`` switches all of this off: the plain ``model(images)``, bit for bit what the
reference gives (``predict(..., precision="fp32")``, ``python -m ssd_edu.detect --fp32``).

The head outputs come back as fp32, and everything after them (decoding, the score filter, NMS,
evaluation) runs in fp32 as before. What it trades: bf16 keeps 8 bits of mantissa, so offsets and
scores move by about 0.4% of their size; the detections of a trained model agree with fp32 to
about 1e-3 in box coordinates and its mAP to a few 1e-4 (``tests/test_fast_inference.py``).

Off the CPU nothing changes unless asked: ``"auto"`` means fp32 there, ``"bf16"`` autocasts.

``make bench`` (2 threads, a busy 2-core Xeon with AMX): ``predict`` on SSD300, 8 images, random
weights, NMS kept out by a 0.99 threshold, takes 0.16-0.37x the time of the same network run in
fp32 NCHW (our ssd300 in fp32 NCHW was measured at 0.88x torchvision's time in issue 18);
channels_last alone, in fp32, takes 0.64-0.69x.

Reference: the plain call ``model(images)`` in fp32 (what ``precision="fp32"`` runs).
Paper: §3.7 (inference time).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # the CPU features that compute bf16 natively


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags, as torch reports them (else as Linux lists them in ``cpuinfo``).

    Args:
        cpuinfo: the file read when torch cannot say (Linux's ``/proc/cpuinfo``).

    Returns:
        Flag names such as ``"avx512_bf16"``; empty when neither source is available.
    """
    try:  # torch's own detection: works on every OS torch runs on
        capability = torch._C._cpu._get_cpu_capability()
        return frozenset(name for name, on in capability.items() if on is True)
    except (AttributeError, RuntimeError):
        pass
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):  # "flags\t\t: fpu vme ... avx512_bf16 ..."
            flags.update(line.partition(":")[2].split())
    return frozenset(flags)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX-BF16); asked once."""
    return bool(cpu_flags() & BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on ``device``.

    Args:
        precision: ``"auto"`` (bf16 on a CPU with native bf16, fp32 anywhere else), ``"fp32"``
            or ``"bf16"`` (also where bf16 is emulated, and slow).
        device: where the network runs.

    Raises:
        ValueError: ``precision`` is none of the three.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cpu" and cpu_has_bf16() else "fp32"
    return precision


@contextlib.contextmanager
def fast_layout(model: nn.Module, device: torch.device | str, precision: str = "auto") -> Iterator:
    """For the ``with`` block, the layout :func:`forward` wants the model's weights in.

    Only ``"auto"`` on a CPU without native bf16 needs a change: fp32 convolutions gain from
    channels_last only when the weights are channels_last too, so the 4-d weights are converted
    and go back to the default layout afterwards (SSD300's 26M weights: about a tenth of a second
    each way, so ``evaluate_model`` holds this around its whole loop and the calls inside find
    the work done). Anywhere else, or when they already are channels_last, the model is left alone.

    Args:
        model: the network (its parameters and buffers may be converted, then restored).
        device: where it runs.
        precision: as :func:`resolve_precision` takes it.
    """
    convert = (
        precision == "auto"
        and torch.device(device).type == "cpu"
        and resolve_precision(precision, device) == "fp32"
        and any(
            not p.is_contiguous(memory_format=torch.channels_last)
            for p in model.parameters()
            if p.ndim == 4
        )
    )
    if not convert:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def forward(model: nn.Module, images: Tensor, precision: str = "auto") -> tuple[Tensor, Tensor]:
    """The network's outputs for ``images``, fast, and in fp32.

    Args:
        model: an SSD (any module returning ``loc`` and ``logits``); its mode is the caller's.
        images: ``[B, 3, S, S]`` normalised, on the model's device.
        precision: ``"auto"`` (the fast path: channels_last on the CPU, bf16 where the CPU has
            it), ``"bf16"`` (the same with bf16 wherever it runs) or ``"fp32"`` (the plain
            ``model(images)``, bit for bit the reference).

    Returns:
        ``loc [B, P, 4]`` and ``logits [B, P, C + 1]``, float32.

    Paper: §2.1 (the network), §3.7 (inference time).
    """
    mode = resolve_precision(precision, images.device)
    if precision == "fp32":
        loc, logits = model(images)  # [B, P, 4], [B, P, C + 1]
        return loc.float(), logits.float()
    if images.device.type == "cpu":  # oneDNN's convolutions work in NHWC
        images = images.contiguous(memory_format=torch.channels_last)
    with fast_layout(model, images.device, precision):
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            loc, logits = model(images)  # [B, P, 4], [B, P, C + 1]
    # the head outputs in fp32: decoding, the softmax and NMS never see bf16
    return loc.float(), logits.float()
