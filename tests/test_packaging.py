"""The two install routes agree, and the documented command is the one CI runs.

pyproject.toml (pip) and environment.yml (conda) must list the same packages with the same lower
bounds. environment.yml is read with a small line parser so the test needs no YAML library.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser under its backport's name
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent

# pip name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch"}

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(>=\s*[0-9][0-9.]*)?")


def parse_requirement(text: str) -> tuple[str, str | None]:
    """``"torch>=2.2"`` -> ``("torch", "2.2")``; no lower bound -> ``None``."""
    m = REQUIREMENT.match(text)
    assert m, f"cannot read requirement {text!r}"
    bound = m.group(2)
    return m.group(1).lower().replace("_", "-"), bound[2:].strip() if bound else None


def pyproject_requirements() -> dict[str, str | None]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        # "ssd_edu[notebooks]" pulls in another extra of this package, already listed
        reqs += [r for r in extra if not r.startswith(project["name"])]
    return dict(parse_requirement(r) for r in reqs)


def conda_dependencies() -> dict[str, str | None]:
    """The top-level ``dependencies:`` of environment.yml (the nested ``pip:`` list skipped)."""
    deps: dict[str, str | None] = {}
    in_deps = False
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line.startswith(" "):
            in_deps = line.startswith("dependencies:")
            continue
        item = re.match(r"^  - (\S.*)$", line)  # items of the top-level list only
        if in_deps and item and not item.group(1).endswith(":"):
            name, bound = parse_requirement(item.group(1))
            deps[name] = bound
    return deps


def test_line_parser_reads_the_environment():
    deps = conda_dependencies()
    assert deps["python"] == "3.10"
    assert "pip" in deps
    assert "-e" not in deps and "." not in deps  # the pip section is not a conda package


def test_environment_yml_agrees_with_pyproject():
    pip_reqs = pyproject_requirements()
    conda = conda_dependencies()
    assert pip_reqs, "no dependencies read from pyproject.toml"
    for name, bound in pip_reqs.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"{name} is in pyproject.toml but not environment.yml"
        assert conda[conda_name] == bound, (
            f"{name}: pyproject.toml says >={bound}, environment.yml says >={conda[conda_name]}"
        )
    pip_as_conda = {CONDA_NAMES.get(n, n) for n in pip_reqs}
    extra = set(conda) - pip_as_conda - {"python", "pip"}
    assert not extra, f"environment.yml lists packages pyproject.toml does not: {sorted(extra)}"


def test_python_lower_bound_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=" + conda_dependencies()["python"]


def test_torch_is_pytorch_in_conda():
    conda = conda_dependencies()
    assert "pytorch" in conda and "torch" not in conda


def test_environment_installs_the_package_itself():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- pip:\s*$", text, re.M)
    assert re.search(r"^\s+- -e \.\s*$", text, re.M)


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    assert "make test" in commands


def test_readme_gives_make_test():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.M), "README.md must show `make test`"


def test_makefile_test_target_runs_notebooks_in_smoke_mode():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M)
    assert "SSD_EDU_SMOKE=1" in makefile and "--nbval-lax" in makefile
