"""The benchmarks still run (smoke mode, narrow widths; each checks that both sides compute
the same outputs before timing). Figures are not asserted here: they live in BENCHMARKS.md."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("script,section,rows", [
    ("bench_torch.py", "torch-quick", ("| eval forward |", "| training step, global",
                                       "| eval forward, optimize_for_inference |",
                                       "| WRN-40-2 eval forward: optimize_for_inference")),
    ("bench_elaborate.py", "elaborate-quick", ("| 6 | ", "Seconds per node at C = 6 over C = 4")),
    ("bench_frontend.py", "frontend-quick", ("| seconds per byte |", "| peak memory added |")),
    ("bench_onnx.py", "onnx-quick", ("| ONNX Runtime latency, batch 1 |", "| compile time",
                                     "| compile time at C = 4, widths [16, 32, 32, 64, 64] |")),
    ("bench_rnn.py", "rnn-quick", ("| training step (forward, backward, SGD)",
                                   "| inference, ONNX Runtime vs torch eager",
                                   "| compile to ONNX")),
    ("bench_hyper.py", "hyper-quick", ("| training step (forward, backward, SGD), Hyper-WRN",)),
    ("bench_compile.py", "compile-quick", ("| hornn_lm | 5,858 |", "| treenet | 11,781 |")),
    ("bench_lsp.py", "lsp-quick", ("| fractalnet_digits |",)),
    ("bench_distributed.py", "distributed-quick", (
        "| per-rank parameters, gradients and optimizer state (Adam), 2 ranks: DDP vs FSDP2 |",
        "| training step with checkpointing: activation bytes kept for backward |")),
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


def test_the_gpu_script_rehearses_on_the_cpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`bench/gpu.py --dry-run`: every step of the GPU run, tiny, on the CPU; each row is in
    the file as soon as it is measured, and nothing fails."""
    out = tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--dry-run",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("## GPU: none (dry run on the CPU)") and "torch 2." in text
    for model in ("fractalnet", "nin_cifar10", "hmrnn_charlm"):
        for precision in ("fp32", "bf16", "fp16"):
            for kind in ("eager", "torch.compile"):
                assert f"| {model}, batch 64, {precision}, {kind} |" not in text  # tiny batch
                assert f"| {model}, batch 4, {precision}, {kind} | " in text
    for mode in ("global", "local", "50/50 mix"):
        assert f"bf16 autocast, {mode} drop-path |" in text
    assert "| FractalNet C=3 training step, every stage checkpointed / not, bytes kept for " \
        "backward | 0.0" in text  # one process; CUDA's peak memory on the GPU
    assert "ONNX Runtime CUDA fp16 | not available |" in text and "| total time |" in text
    assert "TensorRT speed-up over ORT CUDA (fp16) | not available | not measured: " in text
    assert "| failed |" not in text


def test_the_gpu_script_compares_what_it_measured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gpu = runpy.run_path(str(ROOT / "bench" / "gpu.py"))
    table = gpu["Table"](tmp_path / "gpu.md", ["## GPU: test"])
    table.row("a", "2.000 ms", "", 0.002)
    table.row("b", "8.000 ms", "", 0.008)
    gpu["compare"](table, "a over b", "a", "b")
    gpu["compare"](table, "a over c", "a", "c")
    text = (tmp_path / "gpu.md").read_text()
    assert "| a over b | 0.25 | a / b |" in text
    assert "| a over c | not available | not measured: c |" in text
