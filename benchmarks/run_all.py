"""Run every ``benchmarks/bench_*.py`` and print one table of the figures they report.

python benchmarks/run_all.py            # all of them
python benchmarks/run_all.py nms model  # those whose file name contains a word given
python benchmarks/run_all.py --markdown # the table as Markdown, for a note or the README
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    markdown = "--markdown" in argv
    words = [a for a in argv if not a.startswith("--")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if words:
        scripts = [s for s in scripts if any(w in s.stem for w in words)]
    rows, failed = [], []
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH\t"):
                rows.append(json.loads(line.split("\t", 1)[1]))
        if proc.returncode != 0:
            failed.append(script.name)
            print(proc.stderr[-2000:], file=sys.stderr)
    header = ["topic", "case", "value", "unit", "device", "note"]
    table = [
        [r["topic"], r["case"], f"{r['value']:.4g}", r["unit"], r["device"], r["note"]]
        for r in rows
    ]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        widths = [
            max(len(h), *(len(t[i]) for t in table)) if table else len(h)
            for i, h in enumerate(header)
        ]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for t in table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths)))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
