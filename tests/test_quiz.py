"""The question bank: every question takes its answer, refuses the others', and agrees with the
library; the form gives feedback; the graded cells grade."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_edu.quiz import answers, question, questions, quiz
from ssd_edu.quiz.form import as_text, form
from ssd_edu.quiz.judge import normalise, parse_number
from ssd_edu.quiz.nbgrader import graded_cells

ALL = questions()


def same_answer(a, b) -> bool:
    """Whether ``b``'s right answer is also right for ``a`` (the same number within ``a``'s
    tolerance, or the same text): only then may ``a`` accept it."""
    if a.kind == "number" and b.kind == "number":
        tol = float(a.spec.get("tolerance", 1e-6))
        return math.isclose(a.value, float(b.answer), rel_tol=tol, abs_tol=tol)
    return normalise(a.answer) == normalise(b.answer)


def test_every_notebook_has_at_least_five_questions():
    for nb in (f"{n:02d}" for n in range(12)):
        assert len(questions(nb)) >= 5, nb
    assert len(ALL) >= 55
    assert len({q.id for q in ALL}) == len(ALL) and len({q.prompt for q in ALL}) == len(ALL)
    assert all(q.notebook == q.id[:2] and q.explanation for q in ALL)


@pytest.mark.parametrize("q", ALL, ids=lambda q: q.id)
def test_each_question_accepts_its_answer_and_refuses_the_others(q):
    assert q.check(q.answer)
    for other in ALL:
        if other is not q:
            assert q.check(other.answer) == same_answer(q, other), other.id


def test_answers_are_judged_tolerantly():
    assert question("01-1").check("7,760") and question("01-1").check(" 7 760 ")
    assert question("01-1").check(7760) and question("01-1").check("7.76e3")
    assert not question("01-1").check("7761") and not question("01-1").check("many")
    assert question("08-5").check("2/3") and question("08-5").check("0.667")
    assert question("05-2").check("1%") and question("09-2").check("5e-4")
    assert question("00-4").check("NMS") and question("00-4").check("Non-Maximum Suppression.")
    assert question("04-1").check("Smooth-L1") and not question("04-1").check("L2")
    assert question("05-6").check("b") and question("05-6").check("B)")
    assert question("05-6").check("It is kept") and not question("05-6").check("a")
    assert parse_number("abc") is None and parse_number("1/0") is None
    assert parse_number(True) is None


def test_computed_answers_are_the_librarys_figures():
    from ssd_edu.model import ssd300
    from ssd_edu.priors import SSD300_VOC, PriorConfig, default_boxes

    assert question("00-1").value == len(default_boxes(SSD300_VOC)) == 8732
    fours = PriorConfig(300, SSD300_VOC.feature_maps, SSD300_VOC.steps, SSD300_VOC.min_sizes,
                        SSD300_VOC.max_sizes, ((2,),) * 6)  # fmt: skip
    assert question("01-1").value == len(default_boxes(fours)) == 7760
    assert question("06-4").value == sum(p.numel() for p in ssd300(21).parameters())
    assert question("03-2").value == 21
    computed = {q.spec["compute"] for q in ALL if "compute" in q.spec}
    assert all(callable(getattr(answers, name, None)) for name in computed)
    assert len(computed) >= 15  # most figures come from the library, not from the text


def test_unknown_notebook_and_question():
    with pytest.raises(ValueError, match="notebook must be one of 00, 01"):
        questions("12")
    with pytest.raises(KeyError, match="no question '05-99'"):
        question("05-99")


def test_the_form_gives_feedback_and_the_text_fallback_says_how_to_check(capsys):
    box = form(questions("05"))
    rows = box.children[1:]
    assert len(rows) == len(questions("05"))
    rows[0].answer_box.value = "0.45"
    rows[0].check()
    assert "Right" in rows[0].feedback.value and "§3.7" in rows[0].feedback.value
    rows[0].answer_box.value = "0.5"
    rows[0].check()
    assert "Not yet" in rows[0].feedback.value
    choice = rows[4]  # multiple choice: radio buttons with nothing picked at first
    choice.check()
    assert "pick an answer" in choice.feedback.value
    assert quiz("05", widgets=False) is None
    printed = capsys.readouterr().out
    assert printed.strip() == as_text(questions("05")) and 'question("05-5")' in printed


def test_graded_cells_pass_with_the_answer_and_fail_without(tmp_path):
    cells = graded_cells("02")
    graded = [c for c in cells if c.metadata.get("nbgrader", {}).get("grade")]
    answers_ = [c for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(graded) == len(answers_) == len(questions("02"))
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))
    assert all(c.metadata["nbgrader"]["locked"] and c.metadata["nbgrader"]["points"] == 1
               for c in graded)  # fmt: skip
    scope: dict = {}
    for answer, test in zip(answers_, graded):
        exec(answer.source, scope)  # the solution as written: passes
        exec(test.source, scope)
        exec(answer.source.split("### BEGIN")[0], scope)  # the student's stub: None fails
        with pytest.raises(AssertionError):
            exec(test.source, scope)


def test_bank_rejects_a_broken_file(tmp_path, monkeypatch):
    import ssd_edu.quiz.judge as module

    class Files:
        def __truediv__(self, other):
            return tmp_path / other if other != "bank" else tmp_path

    (tmp_path / "03.json").write_text('[{"kind": "number", "prompt": "?"}]')
    monkeypatch.setattr(module.resources, "files", lambda _: Files())
    with pytest.raises(ValueError, match=r"03.json, question 1: needs kind"):
        questions("03")
    torch.manual_seed(0)  # (keeps the random state of later tests untouched by the bank)


def test_the_command_line_shows_and_writes(tmp_path, capsys):
    import nbformat

    from ssd_edu.quiz.__main__ import main

    assert main(["show", "03"]) == 0 and "[03-1]" in capsys.readouterr().out
    assert main(["nbgrader", "03", str(tmp_path / "q.ipynb")]) == 0
    nb = nbformat.read(tmp_path / "q.ipynb", as_version=4)
    assert sum(1 for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")) == 5
    assert main(["show", "99"]) == 2 and "notebook must be one of" in capsys.readouterr().err
