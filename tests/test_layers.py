"""The package's shape, from its own imports: two layers, no circles, small modules.

docs/design.md draws the layout: the references at the bottom, the fast layer above them, the
loop, the command lines and the pictures on top. These tests read every module's imports (those
inside functions too) and hold the code to that drawing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ssd_edu"

# lower floors never import higher ones (docs/design.md, "Layout")
FLOORS = [
    ("boxes", "priors", "imagenet", "atomic"),
    (
        "matching", "mining", "loss", "nms", "evaluate", "eval_result", "coco_eval", "coco_json",
        "data", "model", "config", "coverage", "fit_boxes",
        "detection_errors", "diagnose_data",
    ),  # fmt: skip
    ("step",),
    ("fast",),
    ("predict", "runlog", "checkpoint"),
    ("diagnose",),
    ("train",),
    ("cli", "detect", "viz", "widgets", "exercises", "quiz"),
]


def modules() -> dict[str, Path]:
    """``ssd_edu.x.y`` -> its file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in the file (function bodies included),
    except under ``if __name__ == "__main__":`` (an entry point, not a dependency of the library:
    ``python -m ssd_edu.train`` hands over to ``ssd_edu.cli.train`` there)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not _is_main_block(n)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base])
            subs = [f"{base}.{a.name}" for a in node.names]
            # "from pkg import submodule" depends on the submodule, not on the package's face
            targets = subs + ([] if all(t in known for t in subs) else [base])
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name imported from a module
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("ssd_edu."):
                out.add(target)
    return out


def _is_main_block(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def floor(name: str) -> int:
    first = name.split(".")[1] if "." in name else ""
    for level, members in enumerate(FLOORS):
        if first in members:
            return level
    raise AssertionError(f"{name} is on no floor of FLOORS: add it (and to docs/design.md)")


GRAPH = {n: imports_of(n, p, set(modules())) for n, p in modules().items()}


def test_every_module_has_a_floor():
    for name in GRAPH:
        if name != "ssd_edu":  # the package's face imports nothing
            floor(name)


def test_no_import_runs_from_a_lower_floor_to_a_higher_one():
    wrong = [
        f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, targets in GRAPH.items()
        if a != "ssd_edu"
        for b in targets
        if b != "ssd_edu"
        if floor(b) > floor(a)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_references_never_import_the_fast_layer():
    fast = [n for n in GRAPH if n.startswith("ssd_edu.fast")]
    for name, targets in GRAPH.items():
        if name != "ssd_edu" and floor(name) < floor("ssd_edu.fast"):
            assert not targets & set(fast), f"{name} imports {targets & set(fast)}"


def test_no_import_circle():
    # depth-first search for a back edge; the path printed is the circle
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                circle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_every_fast_module_has_equality_tests_against_its_reference():
    tests = Path(__file__).resolve().parent
    for name in GRAPH:
        if name.startswith("ssd_edu.fast.") and not name.endswith("__init__"):
            test = tests / f"test_fast_{name.rsplit('.', 1)[1]}.py"
            assert test.is_file(), f"{name} has no {test.name}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_modules_and_functions_are_short(path):
    text = path.read_text()
    lines = text.count("\n") + 1
    assert lines <= 300, f"{path} has {lines} lines (at most 300)"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, (
                f"{path}:{node.lineno} {node.name}() is {length} lines (at most 80)"
            )
