"""Check your understanding: a few questions per notebook, judged by the library.

    from ssd_edu.quiz import quiz, question, questions
    quiz("05")                          # the form of notebook 05 (plain text without widgets)
    question("05-2").check("0.01")      # True
    [q.prompt for q in questions("01")]

The questions are data, one JSON file per notebook in ``ssd_edu/quiz/bank/``;
:mod:`ssd_edu.quiz.judge` judges answers, :mod:`ssd_edu.quiz.answers` computes the figures
the library can compute, :mod:`ssd_edu.quiz.form` shows them, and :mod:`ssd_edu.quiz.nbgrader`
turns them into graded nbgrader cells.
"""

from ssd_edu.quiz.form import quiz
from ssd_edu.quiz.judge import Question, question, questions

__all__ = ["Question", "question", "questions", "quiz"]
