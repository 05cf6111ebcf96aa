"""Student versions of the notebooks: solutions cut out, outputs cleared, grading metadata kept.

The notebooks in ``notebooks/`` are the instructor's: every exercise cell holds a working
solution between two marker lines, and its cell metadata follows nbgrader's format
(``{"nbgrader": {"solution": true, "grade_id": ...}}``), followed by a locked check cell. This
module writes the version handed to students without needing nbgrader installed:

- in each solution cell, every region from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
  (both lines included) becomes ``raise NotImplementedError()`` at the marker's indentation
  (``YOUR ANSWER HERE`` in a Markdown cell), so the stub is still valid Python and the checker
  reports "not implemented yet";
- every output and execution count is cleared (outputs would show the solution's results);
- the nbgrader metadata stays, so ``nbgrader generate_assignment`` / ``autograde`` accept the
  instructor notebooks as sources, and the student copies carry the same grade ids.

Usage: ``make assignments``, i.e.
``python -m ssd_edu.exercises make-assignments notebooks assignments``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ssd_edu.atomic import atomic_write

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = "raise NotImplementedError()"
ANSWER_STUB = "YOUR ANSWER HERE"


class AssignmentError(ValueError):
    """A notebook cannot be turned into a student version; the message names notebook and cell."""


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_solution(source: str, where: str, stub: str = CODE_STUB) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region by one stub line.

    Args:
        source: the cell's text.
        where: how to name the cell in an error (notebook and cell index).
        stub: the line that replaces a region, indented as the region's BEGIN line.

    Returns:
        The student's text.

    Raises:
        AssignmentError: when the markers are unbalanced (END before BEGIN, BEGIN twice,
            BEGIN never closed) or the cell has none.
    """
    out: list[str] = []
    begin_line: int | None = None
    regions = 0
    for n, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if begin_line is not None:
                raise AssignmentError(
                    f"{where}: line {n} opens '{BEGIN}' again before the one on line "
                    f"{begin_line} was closed by '{END}'"
                )
            begin_line = n
            out.append(line[: len(line) - len(line.lstrip())] + stub)
        elif marker.startswith(END):
            if begin_line is None:
                raise AssignmentError(f"{where}: line {n} has '{END}' without '{BEGIN}' before it")
            begin_line = None
            regions += 1
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise AssignmentError(f"{where}: '{BEGIN}' on line {begin_line} is never closed by '{END}'")
    if regions == 0:
        raise AssignmentError(
            f"{where}: the cell is marked as a solution (nbgrader solution: true) but has no "
            f"'{BEGIN}' / '{END}' region"
        )
    return "\n".join(out)


def student_notebook(nb: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, list]:
    """The student version of one notebook (a new object) and the grade ids of its exercises.

    Args:
        nb: the instructor's notebook.
        name: its file name, for error messages.

    Returns:
        ``(student notebook, [grade_id of each solution cell])``.
    """
    nb = nbformat.from_dict(nb)  # deep copy: the instructor's notebook is never changed
    exercises = []
    for index, cell in enumerate(nb.cells):
        meta = _nbgrader(cell)
        grade_id = meta.get("grade_id", "?")
        where = f"{name}, cell {index} (grade_id '{grade_id}')" if meta else f"{name}, cell {index}"
        if meta.get("solution"):
            stub = CODE_STUB if cell.cell_type == "code" else ANSWER_STUB
            cell.source = strip_solution(cell.source, where, stub)
            exercises.append(grade_id)
        elif BEGIN in cell.source or END in cell.source:
            # markers outside a solution cell would be left in place, leaking the answer
            raise AssignmentError(
                f"{where}: has solution markers but its metadata does not say "
                f'{{"nbgrader": {{"solution": true, ...}}}}'
            )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # run timestamps written by nbclient
    return nb, exercises


def _write_atomic(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write through a temporary file so an interrupted run never leaves half a notebook."""
    atomic_write(path, lambda f: nbformat.write(nb, f), binary=False)


def make_assignments(src_dir: str | Path, out_dir: str | Path) -> dict[str, list[str]]:
    """Write the student version of every notebook in ``src_dir`` to ``out_dir``.

    Every notebook is converted before any is written, so one bad notebook leaves ``out_dir``
    as it was.

    Args:
        src_dir: folder of instructor notebooks (``*.ipynb``).
        out_dir: folder for the student versions (created if missing; same file names).

    Returns:
        ``{notebook file name: [grade ids of its exercises]}``, also printed as a report.

    Raises:
        AssignmentError: naming the notebook and cell whose markers are unbalanced.
        FileNotFoundError: when ``src_dir`` is not a folder.
    """
    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"src_dir must be a folder of notebooks, got {str(src)!r}")
    converted = []
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        converted.append((path.name, *student_notebook(nb, path.name)))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, list[str]] = {}
    for name, nb, exercises in converted:
        _write_atomic(nb, out / name)
        report[name] = exercises
    width = max((len(n) for n in report), default=0)
    for name, exercises in report.items():
        listed = ", ".join(exercises) if exercises else "no exercises (outputs cleared)"
        print(f"{name.ljust(width)}  {len(exercises)}: {listed}")
    total = sum(len(e) for e in report.values())
    print(f"wrote {len(report)} notebooks with {total} exercises to {out}/")
    return report
