"""The assignments tool: student notebooks without solutions or outputs, and the real notebooks'
exercises wired to checkers that reject the student stub."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import ssd_edu.exercises
from ssd_edu.exercises import ExerciseFailure
from ssd_edu.exercises.__main__ import main
from ssd_edu.exercises.assignments import (
    BEGIN,
    END,
    AssignmentError,
    make_assignments,
    strip_solution,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def solution_meta(grade_id: str) -> dict:
    return {
        "nbgrader": {
            "grade": False,
            "grade_id": grade_id,
            "locked": False,
            "schema_version": 3,
            "solution": True,
            "task": False,
        }
    }


def check_meta(grade_id: str) -> dict:
    return {
        "nbgrader": {
            "grade": True,
            "grade_id": grade_id + "_check",
            "locked": True,
            "points": 1,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
    }


SOLUTION_SOURCE = f'''def double(x):
    """Twice x."""
    {BEGIN}
    secret_helper = x + x
    return secret_helper
    {END}'''


def small_notebook(solution_source: str = SOLUTION_SOURCE, meta: dict | None = None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    shown = nbformat.v4.new_code_cell("print('the answer is 42')", execution_count=1)
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text="the answer is 42\n")]
    shown.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    exercise = nbformat.v4.new_code_cell(solution_source, execution_count=2)
    exercise.metadata.update(solution_meta("double") if meta is None else meta)
    check = nbformat.v4.new_code_cell("assert double(2) == 4", execution_count=3)
    check.metadata.update(check_meta("double"))
    nb.cells = [nbformat.v4.new_markdown_cell("# Doubling"), shown, exercise, check]
    return nb


def write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------- small notebooks


def test_student_version_has_stub_no_solution_no_outputs(tmp_path, capsys):
    src = write(small_notebook(), tmp_path / "src" / "01_double.ipynb")
    before = src.read_text()
    report = make_assignments(tmp_path / "src", tmp_path / "out")
    assert report == {"01_double.ipynb": ["double"]}
    assert "01_double.ipynb  1: double" in capsys.readouterr().out
    assert src.read_text() == before  # the instructor's notebook is untouched

    student = nbformat.read(tmp_path / "out" / "01_double.ipynb", as_version=4)
    nbformat.validate(student)
    exercise = student.cells[2]
    assert exercise.source == 'def double(x):\n    """Twice x."""\n    raise NotImplementedError()'
    assert "secret_helper" not in (tmp_path / "out" / "01_double.ipynb").read_text()
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "execution" not in cell.metadata
    # grading metadata kept as nbgrader wants it
    assert exercise.metadata == solution_meta("double")
    assert student.cells[3].metadata == check_meta("double")
    assert student.metadata["kernelspec"]["name"] == "python3"


def test_stub_is_valid_python_that_raises_not_implemented(tmp_path):
    write(small_notebook(), tmp_path / "src" / "a.ipynb")
    make_assignments(tmp_path / "src", tmp_path / "out")
    stub = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4).cells[2].source
    namespace: dict = {}
    exec(compile(stub, "stub", "exec"), namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


def test_strip_solution_keeps_indentation_and_handles_several_regions():
    source = f"x = 1\n{BEGIN}\ny = 2\n{END}\nif x:\n        {BEGIN}\n        z = 3\n        {END}\n"
    want = "x = 1\nraise NotImplementedError()\nif x:\n        raise NotImplementedError()"
    assert strip_solution(source, "nb, cell 0") == want


def test_markdown_solution_cells_get_an_answer_placeholder(tmp_path):
    nb = small_notebook()
    answer = nbformat.v4.new_markdown_cell(f"Why?\n{BEGIN}\nBecause of eq. 4.\n{END}")
    answer.metadata.update(solution_meta("why"))
    nb.cells.append(answer)
    write(nb, tmp_path / "src" / "a.ipynb")
    make_assignments(tmp_path / "src", tmp_path / "out")
    cell = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4).cells[-1]
    assert cell.source == "Why?\nYOUR ANSWER HERE"


def test_notebook_without_exercises_is_copied_with_outputs_cleared(tmp_path, capsys):
    nb = small_notebook()
    nb.cells = nb.cells[:2]
    write(nb, tmp_path / "src" / "plain.ipynb")
    assert make_assignments(tmp_path / "src", tmp_path / "out") == {"plain.ipynb": []}
    assert "no exercises" in capsys.readouterr().out
    assert nbformat.read(tmp_path / "out" / "plain.ipynb", as_version=4).cells[1].outputs == []


@pytest.mark.parametrize(
    "source, meta, message",
    [
        (
            f"def f():\n    {END}\n    return 1",
            None,
            f"bad.ipynb, cell 2 \\(grade_id 'double'\\): line 2 has '{END}' without '{BEGIN}'",
        ),
        (
            f"def f():\n    {BEGIN}\n    return 1",
            None,
            f"bad.ipynb, cell 2 \\(grade_id 'double'\\): '{BEGIN}' on line 2 is never closed",
        ),
        (
            f"{BEGIN}\nx = 1\n{BEGIN}\n{END}",
            None,
            f"cell 2 .*: line 3 opens '{BEGIN}' again before the one on line 1 was closed",
        ),
        ("def f():\n    return 1", None, "cell 2 .*marked as a solution .* but has no"),
        (SOLUTION_SOURCE, {}, "bad.ipynb, cell 2: has solution markers but its metadata"),
    ],
    ids=["end_first", "never_closed", "begin_twice", "no_markers", "no_metadata"],
)
def test_unbalanced_markers_rejected_naming_notebook_and_cell(tmp_path, source, meta, message):
    write(small_notebook(), tmp_path / "src" / "a_good.ipynb")
    write(small_notebook(source, meta), tmp_path / "src" / "bad.ipynb")
    with pytest.raises(AssignmentError, match=message):
        make_assignments(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written when any notebook is bad


def test_missing_source_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="src_dir must be a folder of notebooks"):
        make_assignments(tmp_path / "nope", tmp_path / "out")


def test_command_line(tmp_path, capsys):
    write(small_notebook(), tmp_path / "src" / "a.ipynb")
    assert main(["make-assignments", str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a.ipynb").exists()
    write(small_notebook(f"{BEGIN}\n"), tmp_path / "bad" / "b.ipynb")
    assert main(["make-assignments", str(tmp_path / "bad"), str(tmp_path / "out2")]) == 1
    assert "error: b.ipynb, cell 2" in capsys.readouterr().err


def test_module_runs_as_make_assignments_calls_it(tmp_path):
    write(small_notebook(), tmp_path / "notebooks" / "a.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "ssd_edu.exercises", "make-assignments", "notebooks", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1 notebooks with 1 exercises" in proc.stdout
    assert (tmp_path / "out" / "a.ipynb").exists()


# ---------------------------------------------------------------- the real notebooks


def is_solution(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def solution_lines(source: str) -> set[str]:
    """Stripped, non-blank lines strictly inside the solution regions of a cell."""
    lines, inside = set(), False
    for line in source.splitlines():
        if line.strip().startswith(BEGIN):
            inside = True
        elif line.strip().startswith(END):
            inside = False
        elif inside and line.strip():
            lines.add(line.strip())
    return lines


def checker_call(source: str) -> tuple[str, str]:
    """``check_x(fn)`` in a check cell -> ``("check_x", "fn")``."""
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("check_")
    ]
    assert len(calls) == 1, f"a check cell calls one check_* function, got:\n{source}"
    (call,) = calls
    assert len(call.args) == 1 and isinstance(call.args[0], ast.Name), source
    return call.func.id, call.args[0].id


@pytest.fixture(scope="module")
def student_versions(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    if NOTEBOOKS:
        make_assignments(ROOT / "notebooks", out)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_exercises_are_followed_by_a_check_cell(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if not is_solution(cell) or cell.cell_type != "code":
            continue
        where = f"{path.name}, cell {index}"
        assert index + 1 < len(nb.cells), f"{where}: the exercise is the last cell"
        check = nb.cells[index + 1]
        meta = check.metadata.get("nbgrader", {})
        assert check.cell_type == "code", f"{where}: the next cell is not code"
        assert meta.get("grade") and meta.get("locked"), f"{where}: the next cell is no check cell"
        assert meta.get("grade_id") == cell.metadata["nbgrader"]["grade_id"] + "_check", where
        name, _ = checker_call(check.source)
        assert f"from ssd_edu.exercises import {name}" in check.source, where
        assert name in ssd_edu.exercises.__all__, f"{where}: {name} is not a registered checker"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_student_versions_hold_no_solution_line(path, student_versions):
    nb = nbformat.read(path, as_version=4)
    secret: set[str] = set()
    for cell in nb.cells:
        if is_solution(cell):
            secret |= solution_lines(cell.source)
    # a line that the lesson also shows outside any solution is not a leak (e.g. `import torch`)
    public = {
        line.strip()
        for cell in nb.cells
        for line in (cell.source if not is_solution(cell) else "").splitlines()
    }
    student = nbformat.read(student_versions / path.name, as_version=4)
    student_lines = {line.strip() for cell in student.cells for line in cell.source.splitlines()}
    leaked = (secret - public) & student_lines
    assert not leaked, f"{path.name}: solution lines left in the student version: {leaked}"
    for cell in student.cells:
        assert BEGIN not in cell.source and END not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_checkers_reject_the_student_stub(path, student_versions):
    student = nbformat.read(student_versions / path.name, as_version=4)
    for index, cell in enumerate(student.cells):
        if not is_solution(cell) or cell.cell_type != "code":
            continue
        namespace: dict = {}
        # the stub's signature may name torch types; the rest of the lesson is not needed
        exec("import math\nimport torch\nfrom torch import Tensor", namespace)
        exec(compile(cell.source, f"{path.name}, cell {index}", "exec"), namespace)
        name, fn_name = checker_call(student.cells[index + 1].source)
        checker = getattr(ssd_edu.exercises, name)
        with pytest.raises(ExerciseFailure, match="not implemented"):
            checker(namespace[fn_name])
