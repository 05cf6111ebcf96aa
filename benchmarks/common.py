"""What every benchmark script shares: a timer and one way to report a figure.

Each ``bench_*.py`` calls :func:`report` for every figure it measures. Run alone, a script prints
readable lines; under ``run_all.py`` (``make bench``) the same lines are gathered into one table.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, number: int = 1) -> float:
    """Median seconds of one call of ``fn`` (synchronising CUDA so GPU work is counted)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"cpu x{torch.get_num_threads()} threads"


def report(
    topic: str, case: str, value: float, unit: str, device: str = "cpu", note: str = ""
) -> None:
    """Print one measured figure as a tab-separated, machine-readable line."""
    row = {
        "topic": topic,
        "case": case,
        "value": value,
        "unit": unit,
        "device": device_name(device),
        "note": note,
    }
    print("BENCH\t" + json.dumps(row), flush=True)
