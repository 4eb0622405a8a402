"""Learning and distribution: the digits example reaches its accuracy, the HM-RNN example
beats the unigram entropy, the hypernetwork CNN keeps up with a quarter of the parameters, and
DDP on two CPU processes keeps ranks identical with agreeing
drop-path draws."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT


def _example(script: str, *args: str) -> dict[str, Any]:
    """Run ``examples/<script> --json`` as a user would; its JSON result (it exited 0)."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args, "--json"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_fractalnet_learns_digits_and_its_deepest_column_is_reported() -> None:
    result = _example("train_digits.py")
    print("digits:", result)  # shown with pytest -s: the figures a user would see
    assert result["test_accuracy"] >= 0.95
    assert result["deepest_column_accuracy"] >= 0.90
    assert set(result["column_accuracy"]) == {"1", "2", "3"}


def test_hmrnn_learns_characters_and_reports_its_boundaries() -> None:
    result = _example("train_charlm.py", "--steps", "120")
    print("charlm:", result)
    assert result["unigram_bits"] - result["held_out_bits"] >= 0.5  # the example asserts it too
    assert set(result["boundary_rate"]) == {"z1", "z2"}
    assert all(0.0 <= r <= 1.0 for r in result["boundary_rate"].values())


def test_ddp_two_processes_keep_identical_parameters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ddp.json"
    env_cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(ROOT / "tests" / "ddp_worker.py"), str(out)]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["draws"] == 6
    assert result["draws_equal"], result
    assert result["params_equal"], result
    assert result["changed"], result


def test_a_hypernetwork_cnn_learns_digits_with_a_quarter_of_the_parameters() -> None:
    """examples/train_hyper_digits.py asserts it (exit 0): within 3 points of the plain CNN
    with at most 25 % of its parameters."""
    result = _example("train_hyper_digits.py", "--epochs", "20")
    print("hyper digits:", result)
    assert result["parameter_share"] <= 0.25 and result["accuracy_gap_points"] <= 3
    assert result["plain"]["test_accuracy"] >= 0.95
    assert result["hyper"]["generated_values"] == 4 * 32 * 32 * 9  # four kernels, generated


def test_the_tied_resnet_learns_digits() -> None:
    """examples/train_resnet_rnn_digits.py: the weight-shared ResNet reaches 90 % (it
    asserts it) with fewer parameters than the untied one."""
    result = _example("train_resnet_rnn_digits.py", "--epochs", "5")
    print("resnet-rnn digits:", result)
    assert result["tied"]["parameters"] < result["untied"]["parameters"]
    assert result["tied"]["test_accuracy"] >= 0.9


def test_qualitative_projection_separates_unseen_digits() -> None:
    """examples/qualitative_projection.py: a net trained on digits 0-4 projects 5-9 onto its
    five outputs, read through taps in PyTorch and ONNX Runtime (which agree); a linear
    probe on those five qualities is at least twice chance (the example asserts it too)."""
    result = _example("qualitative_projection.py")
    print("qualitative projection:", result)
    assert result["known_accuracy"] >= 0.95
    assert result["probe_accuracy"] >= 2 * result["chance"] == 0.4
    assert result["onnx_max_diff"] < 1e-4
    assert set(result["qualities"]) == {"5", "6", "7", "8", "9"}
    assert all(len(q) == 5 for q in result["qualities"].values())
