"""The stored notebooks as JupyterLab opens them: metadata it would not rewrite, explorers that say
how to use them, and one figure per explorer.

nbval (``make test``) runs every notebook; these tests read the files as stored, the state a
student finds before running anything. The browser test (``make test-browser``) checks the same
things live in JupyterLab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from ssd_edu.widgets import NOT_RUN_TEXT

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))
# the lessons 01-09 each have an explorer; 00 (the overview), 10 (the GPU run) and 11 (your own
# dataset) have none
LESSONS = [p for p in NOTEBOOKS if "01" <= p.name[:2] <= "09"]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# a call of an explorer (explorer(...), default_box_explorer(...)), not of a drawing function
EXPLORER_CALL = re.compile(r"(?<![\w.])(?!draw_)(\w+_)?explorer\(")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def explorer_cells(nb: dict) -> list[int]:
    return [
        n
        for n, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and EXPLORER_CALL.search("".join(cell["source"]))
    ]


def test_the_notebook_list_and_the_explorer_pattern():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{n:02d}" for n in range(0, 12)]
    assert [p.name[:2] for p in LESSONS] == [f"{n:02d}" for n in range(1, 10)]
    assert not [p.name for p in NOTEBOOKS if p not in LESSONS and explorer_cells(load(p))]
    assert EXPLORER_CALL.search("explorer(show, k=k)")
    assert EXPLORER_CALL.search("box = default_box_explorer()")
    assert not EXPLORER_CALL.search("fig = draw_default_box_explorer(k=0, i=19, j=19)")
    assert not EXPLORER_CALL.search("from ssd_edu.widgets import explorer")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_kernelspec_is_the_one_the_kernel_reports(path):
    # JupyterLab writes the running kernel's spec into the notebook when it opens it: any other
    # value marks the notebook modified before the student has done anything
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert load(path)["metadata"]["kernelspec"] == {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": "python3",
    }


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_each_lesson_has_one_explorer_built_by_ssd_edu_widgets(path):
    nb = load(path)
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    # ipywidgets.interact shows a returned figure twice and redraws at every pixel of a drag
    assert not [s for s in sources if "interact(" in s]
    (n,) = explorer_cells(nb)
    before = nb["cells"][n - 1]
    text = "".join(before["source"])
    assert before["cell_type"] == "markdown" and "Run the notebook" in text, (
        f"cell {n - 1} must say to run the notebook to use the explorer (issue 17)"
    )
    assert "Run All Cells" in text and "default" in text and len(text.splitlines()) == 1
    (output,) = nb["cells"][n]["outputs"]
    assert WIDGET_VIEW in output["data"], "the explorer's cell stores its widget: re-run it"
    # what JupyterLab shows until the kernel has built the widget
    assert "".join(output["data"]["text/plain"]) == NOT_RUN_TEXT  # stored as a list of lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_stored_explorers_hold_one_figure(path):
    state = load(path)["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model_id, model in state.items():
        if model["model_name"] == "OutputModel":
            figures = [o for o in model["state"]["outputs"] if "image/png" in o.get("data", {})]
            assert len(figures) <= 1, f"{path.name}: output {model_id} stores {len(figures)}"
            errors = [o for o in model["state"]["outputs"] if o["output_type"] == "error"]
            assert not errors, f"{path.name}: output {model_id} stores an error"
