"""The run log: one CSV row of losses, learning rate, speed and mAP every few iterations.

``log.csv`` is what :func:`ssd_edu.viz.plot_training_log` draws and what a person reads while a
long run goes on: the file is flushed after every row. The losses of the iterations between two
rows are summed on the training device and read back once per row (one synchronisation per row,
not per iteration). A resumed run keeps the rows up to its checkpoint's iteration and drops any
written after it (by a run that crashed past its last checkpoint), so no iteration is logged twice.

Paper: §2.2, eq. 1 (the logged losses: total, localisation, confidence).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ssd_edu.atomic import atomic_write

LOG_FIELDS = ("iteration", "loss", "loc_loss", "conf_loss", "lr", "images_per_s", "mAP")


class RunLog:
    """``log.csv`` of a training run, and the running means between its rows.

    Args:
        path: the CSV file.
        batch_size: images per iteration (for the images/s column).
        device: where the losses live (they are summed there).
        resume_at: the iteration a resumed run continues from: rows up to it are kept, later ones
            dropped; ``None`` starts a new log.
        write: write the file (False on DDP ranks other than 0: they keep the rows in memory).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int,
        device: torch.device,
        resume_at: int | None = None,
        write: bool = True,
    ) -> None:
        self.path, self.batch_size = Path(path), batch_size
        self.rows: list[dict[str, Any]] = []
        self._sum = torch.zeros(3, dtype=torch.float64, device=device)  # total, loc, conf
        self._count, self._start = 0, time.perf_counter()
        self._file = None
        if write:
            kept = _rows_up_to(self.path, resume_at) if resume_at is not None else []
            # rewritten whole (atomically), then appended to: a crash never leaves half a header
            atomic_write(self.path, lambda f: _write_rows(f, kept), binary=False)
            self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
            self._writer = csv.DictWriter(self._file, fieldnames=LOG_FIELDS)

    def add(self, losses: Tensor) -> None:
        """Count one iteration's ``[3]`` losses into the current window (no synchronisation)."""
        self._sum += losses.double()
        self._count += 1

    def exclude(self, seconds: float) -> None:
        """Leave time spent on something else (an evaluation) out of the images/s figure."""
        self._start += seconds

    def write(self, iteration: int, lr: float, mean_ap: float | None = None) -> dict[str, Any]:
        """Write a row: the window's mean losses (if any iteration was counted) and ``mean_ap``."""
        row: dict[str, Any] = dict.fromkeys(LOG_FIELDS) | {"iteration": iteration, "lr": lr}
        if self._count:
            mean = (self._sum / self._count).tolist()  # one read-back per row
            row["loss"], row["loc_loss"], row["conf_loss"] = (round(v, 6) for v in mean)
            elapsed = time.perf_counter() - self._start
            row["images_per_s"] = round(self._count * self.batch_size / elapsed, 2)
            self._sum.zero_()
            self._count, self._start = 0, time.perf_counter()
        if mean_ap is not None:
            row["mAP"] = round(mean_ap, 6)
        self.rows.append(row)
        if self._file is not None:
            self._writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
            self._file.flush()
        return row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_log(path: str | os.PathLike) -> list[dict[str, float | None]]:
    """Rows of a ``log.csv`` written by :class:`RunLog`, numbers parsed, blanks as ``None``."""
    with open(path, newline="") as f:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def _rows_up_to(path: Path, iteration: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if float(row["iteration"]) <= iteration]


def _write_rows(f, rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
