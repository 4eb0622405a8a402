"""The project's promises about itself: README and CI agree, docs match the grammar and the
codes, and a non-editable wheel carries the grammar and the standard library."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from ssnc.base.diagnostics import ALL_CODES
from ssnc.compiler.ops import OPS
from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    install_and_run, install_and_test = readme_commands()[:2]
    assert install_and_run == ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                               ".venv/bin/ssnc compile specs/fractalnet.ssn --to onnx -o "
                               "fractalnet.onnx")  # no torch (tests/test_install.py)
    assert "pip install torch==2.13.0" in install_and_test and "[torch,dev]" in install_and_test
    assert install_and_test.endswith("-m pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci


def test_ci_leaves_out_the_slow_tests_and_the_readme_says_how_to_run_them() -> None:
    """The `slow` marker is registered, the test command (CI's) deselects it, and the README
    gives the command that runs those tests, so none is run by nobody."""
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]
    assert any(m.startswith("slow:") for m in pytest_options["markers"])
    assert "-m 'not slow'" in pytest_options["addopts"]
    assert ".venv/bin/python -m pytest -m slow" in (ROOT / "README.md").read_text()
    slow = [p.name for p in (ROOT / "tests").glob("test_*.py")
            if "pytest.mark.slow" in p.read_text(encoding="utf-8")]
    assert "test_full_size.py" in slow


def test_torch_is_an_extra_and_the_core_is_small() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~\[ ]", d)[0] for d in project["dependencies"]}
    assert core == {"lark", "networkx", "pydantic", "numpy", "onnx", "typer", "rich",
                    "safetensors"}
    assert project["optional-dependencies"]["torch"] == ["torch>=2.13,<2.14"]


def test_docs_carry_the_grammar_and_every_code_and_op() -> None:
    doc = (ROOT / "docs" / "language.md").read_text()
    assert (ROOT / "grammar" / "ssn.lark").read_text() in doc
    for code in ALL_CODES:
        assert f"| {code.id} |" in doc
    for name in OPS:
        if not OPS[name].source and OPS[name].origin is None:  # not a plugin's
            assert f"`{name}`" in doc, name


def test_wheel_includes_package_data(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("ssnc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ssnc/grammar/ssn.lark" in names
    assert {"ssnc/compiler/stdlib/fractal.ssn", "ssnc/compiler/stdlib/nin.ssn"} <= names
    assert "ssnc/cli.py" in names and "ssnc/compiler/passes/tag_columns.py" in names
    assert not any(n.startswith("ssnc/tests/") or n.startswith("ssnc/specs") for n in names)


def test_readme_set_examples_work_as_printed() -> None:
    runs = [c for c in readme_commands() if "--set" in c]
    assert runs
    for command in runs:
        args = shlex.split(command)
        assert args[0] == ".venv/bin/ssnc"
        done = subprocess.run([sys.executable, "-m", "ssnc.cli", *args[1:]], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, (command, done.stderr)
