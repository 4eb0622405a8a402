"""Shared fixtures. `pytest --update-goldens` rewrites golden files; review the diff."""

from __future__ import annotations

import os
import runpy
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"

SMALL: dict[str, dict[str, float]] = {"unet": {"size": 64, "width": 16},
                                      "inception_v3": {"width": 0.125},
                                      "resnet18": {"size": 64, "classes": 10},
                                      "vit": {"size": 32, "patch": 8, "dim": 16, "depth": 2,
                                              "heads": 2, "mlp": 32},
                                      "seq2seq_transformer": {"vocab": 30, "dim": 16,
                                                              "heads": 2, "layers": 2,
                                                              "ff": 32}}
"""Model parameters that keep a shipped spec's runs short where the tests loop over every
spec (U-Net at 64 x 64, narrow; Inception-v3 at an eighth of its width; ResNet-18 on 64 x 64
images; a two-block ViT on 32 x 32; a two-layer, 16-wide sequence-to-sequence Transformer);
their published counts are asserted at full size elsewhere."""


def small_args(spec: Path) -> list[str]:
    """``SMALL``'s settings for ``spec`` as `--set` options."""
    return [a for k, v in SMALL.get(spec.stem, {}).items() for a in ("--set", f"{k}={v}")]


def drawn_positions(dot: str) -> tuple[dict[str, tuple[float, float]], str]:
    """Node centres (inches, y up) as `ssnc graph` draws them (laid out by dot, adjusted,
    then drawn by `neato -n2`), from Graphviz's plain output, with its warnings."""
    import subprocess

    from ssnc.backends.dot import layout

    out = subprocess.run(["neato", "-n2", "-Tplain"], input=layout(dot), capture_output=True,
                         text=True, check=True, timeout=120)
    pos = {}
    for line in out.stdout.splitlines():
        part = line.split()
        if part[0] == "node":
            pos[part[1].strip('"')] = (float(part[2]), float(part[3]))
    return pos, out.stderr


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite golden files instead of comparing with them")


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Compare text with a golden file, or rewrite it under --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(path: Path, actual: str) -> None:
        if update or not path.exists():
            if not update:
                pytest.fail(f"missing golden {path.name}; run pytest --update-goldens")
            path.write_text(actual, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"{path.name} differs; rerun with --update-goldens if intended"

    return check


def compile_refused(tmp_path: Path, source: str, *options: str) -> str:
    """`ssnc compile` of the spec ``source`` (with ``options``) as a user runs it: it must
    stop with a diagnostic (exit 1, no traceback, no internal error) and write nothing; its
    stderr."""
    from typer.testing import CliRunner

    from ssnc.cli import app

    spec = tmp_path / "m.ssn"
    spec.write_text(source)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["compile", str(spec), "-o", str(out), *options])
    assert result.exit_code == 1 and not out.exists(), result.output
    assert "Traceback" not in result.output and "E9001" not in result.output, result.output
    stderr: str = result.stderr
    return stderr


def ort_output(proto: Any, x: np.ndarray) -> np.ndarray:
    """The first output of ONNX model ``proto`` on ``x`` in ONNX Runtime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {"input": x})[0]
    return out


def equals_hand_written(model: Any, hand: Any, x: np.ndarray) -> None:
    """A compiled model against a hand-written PyTorch one with the same layers in the same
    order: the compiled weights copied across (shapes checked pairwise; batch norms given
    random statistics and affines first, so where each sits matters), then the outputs on
    ``x`` in eval mode, and ONNX Runtime's on the same weights in both forms, equal."""
    import tempfile

    import torch

    net = model.to_torch().eval()
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            for t, low, high in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0),
                                 (m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5)):
                t.data.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)
    hand.eval()
    theirs = [(k, v) for k, v in hand.state_dict().items() if "num_batches" not in k]
    ours = [(k, v) for k, v in net.state_dict().items() if "num_batches" not in k]
    assert [v.shape for _, v in ours] == [v.shape for _, v in theirs]
    hand.load_state_dict({k: v for (k, _), (_, v) in zip(theirs, ours, strict=True)},
                         strict=False)
    with torch.no_grad():
        want = hand(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), want, rtol=1e-4,
                                   atol=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.save(net.state_dict(), weights)
        for flat in (True, False):
            np.testing.assert_allclose(ort_output(model.to_onnx(flat=flat, weights=weights), x),
                                       want, rtol=1e-4, atol=1e-4)


@cache
def compat() -> dict[str, Any]:
    """`bench/compat.py`'s namespace: its runtimes (each asked for float32) and inputs."""
    return runpy.run_path(str(ROOT / "bench" / "compat.py"))


def runner_for(name: str) -> Any:
    """A runner ``run(path, x) -> first output`` for runtime ``name``, from bench/compat.py,
    so tests and the compatibility table run each runtime in the same (float32) precision.
    CI installs every runtime the tests use: there a missing one fails; elsewhere it skips."""
    entry = compat()["RUNTIMES"][name]
    try:
        return entry.make()
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{name} is not installed ({entry.how}): {exc}")
