"""The course kit end to end: nbgrader builds an assignment from two notebooks, and grades a right
and a wrong submission as docs/instructors.md describes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_default_boxes.ipynb", "05_nms.ipynb")  # three graded exercises in all

pytest.importorskip("nbgrader", reason="the course extra: pip install -e .[course]")


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs its helpers (alembic) by name: the environment's bin folder goes first
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    env = os.environ | {"SSD_EDU_SMOKE": "1", "MPLBACKEND": "Agg", "PATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--force"],
        cwd=course, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def solution_cell(nb: dict, grade_id: str) -> dict:
    return next(
        c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id
    )


def replace_solution(nb: dict, grade_id: str, body: str) -> None:
    cell = solution_cell(nb, grade_id)
    source = "".join(cell["source"])
    head = source.split("# YOUR CODE HERE")[0] if "# YOUR CODE HERE" in source else source
    cell["source"] = head + body


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'ssd'\n"
        "c.ExecutePreprocessor.timeout = 600\n"  # training cells need more than the default
    )
    source = course / "source" / "week1"
    source.mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, source / name)
    nbgrader(course, "generate_assignment", "week1")
    return course


def test_the_student_version_has_no_solutions(course):
    for name in NOTEBOOKS:
        text = (course / "release" / "week1" / name).read_text()
        assert "### BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text


def test_a_right_and_a_wrong_submission_get_their_scores(course):
    release = course / "release" / "week1"
    right = course / "submitted" / "alice" / "week1"
    wrong = course / "submitted" / "bob" / "week1"
    shutil.copytree(course / "source" / "week1", right)  # the instructor's solutions
    wrong.mkdir(parents=True)
    first = json.loads((release / NOTEBOOKS[0]).read_text())  # box_iou right, the rest not done
    right_nb = json.loads((course / "source" / "week1" / NOTEBOOKS[0]).read_text())
    solution_cell(first, "box_iou")["source"] = solution_cell(right_nb, "box_iou")["source"]
    (wrong / NOTEBOOKS[0]).write_text(json.dumps(first))
    second = json.loads((release / NOTEBOOKS[1]).read_text())  # nms with >= instead of >
    replace_solution(second, "nms", (
        "    order = torch.sort(scores, descending=True, stable=True).indices\n"
        "    overlaps = box_iou(boxes, boxes)\n"
        "    keep = []\n"
        "    for i in order.tolist():\n"
        "        if all(float(overlaps[k, i]) < iou_threshold for k in keep):\n"
        "            keep.append(i)\n"
        "    return torch.tensor(keep, dtype=torch.long)\n"
    ))  # fmt: skip
    (wrong / NOTEBOOKS[1]).write_text(json.dumps(second))

    nbgrader(course, "autograde", "week1")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("week1", s).score for s in ("alice", "bob")}
        total = gradebook.find_assignment("week1").max_score
    assert total == 3
    assert scores == {"alice": 3, "bob": 1}
