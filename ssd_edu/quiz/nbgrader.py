"""The quiz as graded nbgrader cells: one answer cell and one locked test cell per question.

:func:`graded_cells` turns a notebook's questions into cells an instructor can paste into (or
append to) an nbgrader source notebook: the student writes the answer into a variable, and a
locked, graded cell checks it with the same :meth:`~ssd_edu.quiz.judge.Question.check` the
interactive form uses. ``nbgrader generate_assignment`` then removes the solutions as usual.

Paper: each explanation cites the section its question checks.
"""

from __future__ import annotations

import os

import nbformat

from ssd_edu.atomic import atomic_write
from ssd_edu.quiz.judge import questions


def graded_cells(notebook: str | int, points: int = 1) -> list:
    """nbformat cells: a heading, then per question its prompt, an answer cell and a test cell."""
    v4 = nbformat.v4
    cells = [v4.new_markdown_cell("## Check your understanding (graded)")]
    for q in questions(notebook):
        var = "answer_" + q.id.replace("-", "_")
        options = "".join(f"\n- {chr(97 + i)}) {o}" for i, o in enumerate(q.options))
        cells.append(v4.new_markdown_cell(f"**{q.id}.** {q.prompt}{options}"))
        cells[-1].metadata["nbgrader"] = _meta(f"quiz-{q.id}-prompt", locked=True)
        answer = v4.new_code_cell(
            f"{var} = None  # your answer: text or a number\n"
            f"### BEGIN SOLUTION\n{var} = {q.answer!r}\n### END SOLUTION"
        )
        answer.metadata["nbgrader"] = _meta(f"quiz-{q.id}-answer", solution=True)
        cells.append(answer)
        test = v4.new_code_cell(
            "from ssd_edu.quiz import question\n\n"
            f'assert question("{q.id}").check({var}), "not yet: read the section again"'
        )
        test.metadata["nbgrader"] = _meta(f"quiz-{q.id}", grade=True, locked=True, points=points)
        cells.append(test)
    return cells


def write_graded_notebook(notebook: str | int, path: str | os.PathLike) -> None:
    """A notebook holding only the graded quiz of ``notebook``, written atomically to ``path``."""
    nb = nbformat.v4.new_notebook(cells=graded_cells(notebook))
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3",
    }  # fmt: skip
    atomic_write(path, lambda f: nbformat.write(nb, f), binary=False)


def _meta(grade_id: str, grade: bool = False, solution: bool = False, locked: bool = False,
          points: int = 0) -> dict:  # fmt: skip
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}  # fmt: skip
    if grade:
        meta["points"] = points
    return meta
