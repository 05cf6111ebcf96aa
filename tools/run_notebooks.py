"""Execute notebooks in place in full mode, storing their outputs (and the figures they save).

    python tools/run_notebooks.py                      # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/01_*.ipynb # some of them

The stored outputs are what readers see on GitHub; `make test` re-runs every notebook in smoke
mode under nbval. A notebook is written back only after it ran without error, through a temporary
file, so a failing or interrupted run never leaves a broken notebook behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ssd_edu.atomic import atomic_write

ROOT = Path(__file__).resolve().parent.parent


# nbclient sometimes receives the reply to a cell that builds ipywidgets only when its wait times
# out (jupyter/nbclient#312), however fast the cell ran: such cells get a short wait, so that the
# stall costs a minute rather than the full per-cell timeout. They only draw one figure each.
WIDGET_CELL_TIMEOUT = 60
WIDGET_MARKERS = ("interact(", "widgets.", "explorer(")  # ipywidgets, ssd_edu.widgets explorers


def _cell_timeout(timeout: int):
    def timeout_for(cell) -> int:
        builds_widgets = any(marker in cell.source for marker in WIDGET_MARKERS)
        return WIDGET_CELL_TIMEOUT if builds_widgets else timeout

    return timeout_for


def run(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(path, as_version=4)
    env_smoke = os.environ.pop("SSD_EDU_SMOKE", None)  # full mode: the stored outputs are real
    # under MPLBACKEND=Agg, plt.show() would store no figures in the notebook
    env_backend = os.environ.pop("MPLBACKEND", None)
    try:
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=timeout,
            timeout_func=_cell_timeout(timeout),
            kernel_name="python3",
            resources={"metadata": {"path": path.parent}},
        ).execute()
        elapsed = time.perf_counter() - start
    finally:
        if env_smoke is not None:
            os.environ["SSD_EDU_SMOKE"] = env_smoke
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    atomic_write(path, lambda f: nbformat.write(nb, f), binary=False)
    return elapsed


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for path in paths:
        print(f"{path}: running ...", flush=True)
        print(f"{path}: done in {run(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
