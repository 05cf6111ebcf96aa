"""``python -m ssd_edu.exercises make-assignments SRC OUT``: write the student notebooks."""

from __future__ import annotations

import argparse
import sys

from ssd_edu.exercises.assignments import AssignmentError, make_assignments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssd_edu.exercises")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser(
        "make-assignments",
        help="write student versions of the notebooks: solutions replaced, outputs cleared",
    )
    make.add_argument("src", help="folder of instructor notebooks, e.g. notebooks")
    make.add_argument("out", help="folder for the student versions, e.g. assignments")
    args = parser.parse_args(argv)
    try:
        make_assignments(args.src, args.out)
    except (AssignmentError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
