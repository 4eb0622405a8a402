"""The benchmarks still run (smoke mode, narrow widths): figures are not asserted here."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_torch_benchmark_runs_and_checks_equal_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_torch.py"), "--quick",
                           "--reps", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "<!-- torch-quick -->" in text
    assert text.count("| training step") == 3 and "| eval forward |" in text


def test_onnx_benchmark_runs_and_checks_equal_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_onnx.py"), "--quick",
                           "--reps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "<!-- onnx-quick -->" in text and text.count("| ONNX Runtime latency") == 2
