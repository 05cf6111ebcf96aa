"""Check-your-understanding questions: the bank, and how an answer is judged.

Every notebook ends its lesson with a few questions, kept as data (``ssd_edu/quiz/bank/NN.json``,
one file per notebook) so an instructor can read, change or grade them without touching code.
Three kinds:

* ``blank``: a statement with a gap; the answer is a word or phrase, judged without regard to case,
  spacing, hyphens or a trailing full stop, with listed alternatives (``"NMS"`` for
  ``"non-maximum suppression"``);
* ``number``: a figure to predict before running a cell; judged numerically (``8732``, ``8,732``,
  ``8.732e3``, ``1/3``, ``33.3%`` are all numbers), within the question's tolerance. Where the
  library can compute the figure, the question names a function of :mod:`ssd_edu.quiz.answers`
  instead of writing the number down, so the answer cannot drift from the code;
* ``choice``: multiple choice on a common misconception; answered by letter or by the option's text.

Paper: each question cites the section it checks in its explanation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources

from ssd_edu.quiz import answers

NOTEBOOKS = tuple(f"{n:02d}" for n in range(12))  # 00 .. 11


@dataclass(frozen=True)
class Question:
    """One question of a notebook's quiz.

    Attributes:
        notebook: the notebook's two-digit number, e.g. ``"05"``.
        id: unique within the bank, e.g. ``"05-2"``.
        kind: ``"blank"``, ``"number"`` or ``"choice"``.
        prompt: the question as shown.
        explanation: a short explanation shown after an answer (right or wrong).
        options: the choices of a ``choice`` question (``answer`` is one of them).
    """

    notebook: str
    id: str
    kind: str
    prompt: str
    explanation: str
    spec: dict = field(repr=False, compare=False)
    options: tuple[str, ...] = ()

    @cached_property
    def value(self) -> float | str:
        """The right answer: a number for ``number`` questions, else the canonical text."""
        if self.kind == "number":
            name = self.spec.get("compute")
            return float(getattr(answers, name)()) if name else float(self.spec["answer"])
        return str(self.spec["answer"])

    @property
    def answer(self) -> str:
        """The right answer as text a student could type."""
        if self.kind == "number":
            v = self.value
            return str(int(v)) if float(v).is_integer() else f"{v:.6g}"
        return self.value

    def check(self, response: object) -> bool:
        """Whether ``response`` (text or a number) is a right answer to this question."""
        if self.kind == "number":
            got = parse_number(response)
            tol = float(self.spec.get("tolerance", 1e-6))
            return got is not None and math.isclose(got, self.value, rel_tol=tol, abs_tol=tol)
        text = normalise(str(response))
        if self.kind == "choice":
            letters = {chr(ord("a") + i): o for i, o in enumerate(self.options)}
            text = normalise(letters.get(text.rstrip(")"), text))
            return text == normalise(self.value)
        accepted = [self.value, *self.spec.get("also", [])]
        return text in {normalise(a) for a in accepted}


def normalise(text: str) -> str:
    """Lower case, one space between words, no hyphens, quotes or final full stop."""
    text = text.strip().lower().replace("-", " ").replace("_", " ")
    text = re.sub(r"[\"'`]", "", text).rstrip(".").strip()
    return re.sub(r"\s+", " ", text)


def parse_number(response: object) -> float | None:
    """A number from a response: ``8732``, ``8,732``, ``8 732``, ``1e-3``, ``1/3``, ``25%``."""
    if isinstance(response, bool):
        return None
    if isinstance(response, (int, float)):
        return float(response)
    text = str(response).strip().replace(",", "").replace("_", "").replace(" ", "")
    percent = text.endswith("%")
    text = text.rstrip("%")
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def questions(notebook: str | int | None = None) -> list[Question]:
    """The questions of one notebook (``"05"`` or ``5``), or of all notebooks, in bank order.

    Raises:
        ValueError: no such notebook, or a bank file that does not read as questions.
    """
    if notebook is None:
        return [q for nb in NOTEBOOKS for q in _load(nb)]
    key = f"{int(notebook):02d}" if str(notebook).isdigit() else str(notebook)
    if key not in NOTEBOOKS:
        raise ValueError(f"notebook must be one of {', '.join(NOTEBOOKS)}, got {notebook!r}")
    return _load(key)


def question(qid: str) -> Question:
    """The question with id ``qid`` (e.g. ``"05-2"``)."""
    for q in questions(qid.split("-")[0]):
        if q.id == qid:
            return q
    raise KeyError(f"no question {qid!r} in the bank")


def _load(notebook: str) -> list[Question]:
    bank = resources.files("ssd_edu.quiz") / "bank" / f"{notebook}.json"
    if not bank.is_file():
        return []
    try:
        entries = json.loads(bank.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"quiz bank {notebook}.json is not valid JSON: {e}") from None
    out = []
    for n, spec in enumerate(entries, start=1):
        where = f"quiz bank {notebook}.json, question {n}"
        missing = [k for k in ("kind", "prompt", "explanation") if k not in spec]
        if missing or spec["kind"] not in ("blank", "number", "choice"):
            raise ValueError(f"{where}: needs kind (blank/number/choice), prompt, explanation")
        if "answer" not in spec and "compute" not in spec:
            raise ValueError(f"{where}: needs an answer or a compute function")
        options = tuple(spec.get("options", ()))
        if spec["kind"] == "choice" and spec.get("answer") not in options:
            raise ValueError(f"{where}: the answer must be one of the options")
        q = Question(notebook, f"{notebook}-{n}", spec["kind"], spec["prompt"],
                     spec["explanation"], spec, options)  # fmt: skip
        out.append(q)
    return out
