"""The two install routes agree, and the documented command is the one CI runs.

pyproject.toml (pip) and environment.yml (conda) must list the same packages with the same lower
bounds. environment.yml is read with a small line parser so the test needs no YAML library.
"""

from __future__ import annotations

import os
import re
import subprocess
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


def test_ci_runs_make_test_then_the_browser_test():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    assert "make test" in commands and "make test-browser" in commands
    assert commands.index("make test") < commands.index("make browser-env")
    assert commands.index("make browser-env") < commands.index("make test-browser")


def make_lab_command(*args: str) -> str:
    """The command `make lab` would run (``make -n``: printed, not run)."""
    out = subprocess.run(
        ["make", "-n", "lab", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (line,) = [ln for ln in out.splitlines() if "jupyter lab" in ln]
    return line


@pytest.mark.parametrize("user_id, allowed", [("0", True), ("1000", False)])
def test_make_lab_passes_allow_root_only_as_root(user_id, allowed):
    # JupyterLab refuses root without the flag: what a student meets in a container
    assert ("--allow-root" in make_lab_command(f"USER_ID={user_id}").split()) is allowed


def test_make_lab_finds_out_who_runs_it():
    assert ("--allow-root" in make_lab_command().split()) is (os.geteuid() == 0)


def test_browser_test_is_marked_and_left_out_of_the_plain_run():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m 'not browser'" in options["addopts"]
    assert any(m.startswith("browser:") for m in options["markers"])
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test-browser:.*\n\t.*pytest .*-m browser .*tests/browser", makefile, re.M)


def test_readme_gives_make_test():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.M), "README.md must show `make test`"


def test_makefile_test_target_runs_notebooks_in_smoke_mode():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M)
    assert "SSD_EDU_SMOKE=1" in makefile and "--nbval-lax" in makefile
