"""``python -m ssd_edu.quiz``: print a notebook's questions, or write them as graded nbgrader cells.

    python -m ssd_edu.quiz show 05
    python -m ssd_edu.quiz nbgrader 05 source/week3/quiz_05.ipynb
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssd_edu.quiz.form import as_text
from ssd_edu.quiz.judge import questions
from ssd_edu.quiz.nbgrader import write_graded_notebook


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssd_edu.quiz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a notebook's questions")
    show.add_argument("notebook", help="the notebook's number, e.g. 05")
    graded = sub.add_parser("nbgrader", help="write the questions as a graded nbgrader notebook")
    graded.add_argument("notebook")
    graded.add_argument("path", help="the .ipynb to write (e.g. into an nbgrader source folder)")
    args = p.parse_args(argv)
    try:
        if args.command == "show":
            print(as_text(questions(args.notebook)))
        else:
            write_graded_notebook(args.notebook, args.path)
            print(f"wrote {len(questions(args.notebook))} graded questions to {args.path}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
