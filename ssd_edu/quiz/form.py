"""The quiz as a student meets it: an ipywidgets form with instant feedback, or plain text.

:func:`quiz` shows a notebook's questions one below the other. Each has an answer box (a text field,
or buttons for multiple choice) and a "Check" button; the feedback appears under it at once: right
or not yet, and the question's short explanation. Where ipywidgets cannot be shown (no notebook
front end, ``widgets=False``, or ipywidgets missing) the same questions are printed with how to
check an answer in code: ``question("05-2").check("0.01")``.

Paper: each explanation cites the section its question checks.
"""

from __future__ import annotations

import html

from ssd_edu.quiz.judge import Question, questions


def quiz(notebook: str | int, widgets: bool | None = None):
    """Show notebook ``notebook``'s questions; returns the form (or ``None`` when printed as text).

    Args:
        notebook: the notebook's number, ``"05"`` or ``5``.
        widgets: ``True`` the ipywidgets form, ``False`` plain text, ``None`` the form when
            ipywidgets can be imported.
    """
    qs = questions(notebook)
    if widgets is None:
        widgets = _have_widgets()
    if not widgets:
        print(as_text(qs))
        return None
    return form(qs)


def as_text(qs: list[Question]) -> str:
    """The questions as plain text, with the way to check each answer in code."""
    lines = []
    for q in qs:
        lines.append(f"[{q.id}] {q.prompt}")
        for letter, option in zip("abcdefgh", q.options):
            lines.append(f"    {letter}) {option}")
        lines.append(f'    check: question("{q.id}").check(your_answer)')
    lines.append("(from ssd_edu.quiz import question)")
    return "\n".join(lines)


def form(qs: list[Question]):
    """An ipywidgets ``VBox``: per question its prompt, an answer box, Check, and feedback."""
    import ipywidgets as w

    rows = [w.HTML(f"<b>Check your understanding</b> ({len(qs)} questions)")]
    for q in qs:
        rows.append(_row(q, w))
    return w.VBox(rows)


def _row(q: Question, w):
    prompt = w.HTML(f"<p><b>{q.id}.</b> {html.escape(q.prompt)}</p>")
    if q.kind == "choice":
        box = w.RadioButtons(options=list(q.options), value=None, layout=w.Layout(width="auto"))
    else:
        box = w.Text(placeholder="your answer", layout=w.Layout(width="24em"))
    button = w.Button(description="Check", layout=w.Layout(width="7em"))
    feedback = w.HTML()

    def check(_=None) -> None:
        answer = box.value
        if answer in (None, ""):
            feedback.value = "<i>Type or pick an answer first.</i>"
            return
        verdict = "&#10003; Right." if q.check(answer) else "&#10007; Not yet: try again."
        feedback.value = f"<p>{verdict} {html.escape(q.explanation)}</p>"

    button.on_click(check)
    row = w.VBox([prompt, w.HBox([box, button]), feedback])
    row.check, row.answer_box, row.feedback = check, box, feedback  # for tests and scripts
    return row


def _have_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
