"""The core install: a fresh virtual environment with the package and its required
dependencies only (no torch, no ONNX Runtime) compiles to ONNX, never imports torch, and
says which extra to install for what needs PyTorch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", "build", "*.egg-info", ".git", "__pycache__",
                              ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding `pip install SRC` (the README's first command, not editable: the
    source tree stays untouched) and nothing else."""
    base = tmp_path_factory.mktemp("core")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], base)
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "pip"), "install", "-q", str(src)], base)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr:
        pytest.skip("no package index reachable: " + pip.stderr.strip().splitlines()[-1])
    assert pip.returncode == 0, pip.stderr
    return venv


def test_the_core_install_has_no_torch_and_compiles_to_onnx(core_venv: Path,
                                                             tmp_path: Path) -> None:
    listed = _run([str(core_venv / "bin" / "pip"), "list", "--format=freeze"], tmp_path)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "ssnc" in names and not names & {"torch", "onnxruntime"}, sorted(names)
    out = tmp_path / "fractalnet.onnx"
    done = _run([str(core_venv / "bin" / "ssnc"), "compile", str(ROOT / "specs" /
                                                                  "fractalnet.ssn"),
                 "--to", "onnx", "-o", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    onnx.checker.check_model(onnx.load(str(out)))
    api = _run([str(core_venv / "bin" / "python"), "-c",
                "import sys, ssnc\n"
                f"m = ssnc.load({str(ROOT / 'specs' / 'hmrnn_charlm.ssn')!r}).model()\n"
                "m.to_onnx(); print(m.total_params, 'torch' in sys.modules)\n"
                "try:\n    m.to_torch()\nexcept ssnc.SsnError as e:\n    print(e.code)\n"],
               tmp_path)
    assert api.stdout.split() == ["8449460", "False", "E0604"], api.stdout + api.stderr
    for command in (["fmt", "--check"], ["info"], ["ir"]):
        done = _run([str(core_venv / "bin" / "ssnc"), *command,
                     str(ROOT / "specs" / "nin_cifar10.ssn")], tmp_path)
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize("target", ["torch", "python"])
def test_what_needs_torch_names_the_extra(core_venv: Path, tmp_path: Path,
                                          target: str) -> None:
    out = tmp_path / f"m.{target}"
    done = _run([str(core_venv / "bin" / "ssnc"), "compile", str(ROOT / "specs" /
                                                                  "nin_cifar10.ssn"),
                 "--to", target, "-o", str(out)], tmp_path)
    assert done.returncode == 1
    assert "error[E0604]: PyTorch is not installed" in done.stderr
    assert "pip install 'ssnc[torch]'" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_torch_weights_name_the_extra(core_venv: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not read: torch is needed first")
    out = tmp_path / "m.onnx"
    done = _run([str(core_venv / "bin" / "ssnc"), "compile", str(ROOT / "specs" /
                                                                  "nin_cifar10.ssn"),
                 "-o", str(out), "--weights", str(weights)], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "w.pt (a torch checkpoint): error[E0604]: PyTorch is not installed" in done.stderr
    assert "pip install 'ssnc[torch]'" in done.stderr and not out.exists()
