"""Goldens: the printed IR of every shipped spec and the full rendered diagnostic of every
error code. Regenerate with `pytest --update-goldens` and review the diff."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.base.diagnostics import ALL_CODES
from ssnc.cli import app
from tests.conftest import GOLDEN, SPECS

SPEC_FILES = sorted(SPECS.glob("*.ssn"))
DIAG_DIR = GOLDEN / "diagnostics"
DIAG_CASES = sorted(DIAG_DIR.glob("[EW]*.ssn"))


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_printed_ir(spec: Path, golden) -> None:  # type: ignore[no-untyped-def]
    program = ssnc.load(spec)
    text = "\n".join(program.model(name).format_ir() for name in program.models)
    golden(GOLDEN / "ir" / f"{spec.stem}.txt", text)


@pytest.mark.parametrize("case", DIAG_CASES, ids=lambda p: p.stem)
def test_rendered_diagnostic(case: Path, golden, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(DIAG_DIR)
    header = [ln[len("# ssnc: "):] for ln in case.read_text(errors="replace").splitlines()
              if ln.startswith("# ssnc: ")]
    command, *extra = shlex.split(header[0]) if header else ["check"]
    for line in case.read_text(errors="replace").splitlines():
        if line.startswith("# ssnc-without: "):  # as if that package were not installed
            monkeypatch.setitem(sys.modules, line.split(": ", 1)[1], None)
    import ssnc.output

    clock = iter(range(0, 10**6))  # progress lines come after a second of work: never here,
    monkeypatch.setattr(ssnc.output.time, "monotonic", lambda: next(clock) * 1e-6)  # however busy
    result = CliRunner().invoke(app, [command, case.name, *extra])
    code = case.stem.split("_")[0]
    is_warning = code.startswith("W")  # reported, and the command goes on
    assert result.exit_code == (0 if is_warning else 1), result.output
    assert "Traceback" not in result.output
    assert f"{'warning' if is_warning else 'error'}[{code}]" in result.stderr
    golden(case.with_suffix(".txt"), result.stderr)


def test_every_user_facing_code_has_a_golden() -> None:
    covered = {c.stem.split("_")[0] for c in DIAG_CASES}
    user_codes = {c.id for c in ALL_CODES if c.kind.value != "internal"}
    assert user_codes <= covered, sorted(user_codes - covered)
