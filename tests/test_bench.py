"""The benchmarks still run (smoke mode, narrow widths; each checks that both sides compute
the same outputs before timing). Figures are not asserted here: they live in BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("script,section,rows", [
    ("bench_torch.py", "torch-quick", ("| eval forward |", "| training step, global")),
    ("bench_onnx.py", "onnx-quick", ("| ONNX Runtime latency, batch 1 |", "| compile time")),
    ("bench_rnn.py", "rnn-quick", ("| training step (forward, backward, SGD)",
                                   "| inference, ONNX Runtime vs torch eager",
                                   "| compile to ONNX")),
])
def test_benchmark_runs(script: str, section: str, rows: tuple[str, ...], tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick",
                           "--reps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert f"<!-- {section} -->" in text
    for row in rows:
        assert row in text
