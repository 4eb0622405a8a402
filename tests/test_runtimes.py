"""The default ONNX form runs in the runtimes users deploy with: every shipped spec, flat,
equal to ONNX Runtime in OpenVINO and tract (CI installs both; elsewhere a missing one is
skipped). The function form stays available with `--functions`; opset conversion works on
the flat form."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import version_converter
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import ROOT, SPECS

COMPAT: dict[str, Any] = runpy.run_path(str(ROOT / "bench" / "compat.py"))
runner = CliRunner()


def _runner(name: str) -> Any:
    make, how = COMPAT["RUNTIMES"][name]
    try:
        return make()
    except ImportError as exc:
        if os.environ.get("CI") == "true":  # CI installs them: missing is a failure there
            raise
        pytest.skip(f"{name} is not installed ({how}): {exc}")


@pytest.mark.parametrize("runtime", ["OpenVINO", "tract"])
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_every_shipped_spec_runs_in_other_runtimes(runtime: str, spec: Path,
                                                   tmp_path: Path) -> None:
    run, reference = _runner(runtime), _runner("ONNX Runtime")
    m = ssnc.load(spec).model()
    path = tmp_path / "m.onnx"
    result = runner.invoke(app, ["compile", str(spec), "-o", str(path)])  # the default form
    assert result.exit_code == 0, result.output
    for batch, steps in ((1, 1), (3, 7)):
        x = COMPAT["feed"](m.ir, batch=batch, steps=steps)
        want = reference(str(path), x)
        got = run(str(path), x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_the_default_is_flat_and_functions_are_a_flag(tmp_path: Path) -> None:
    spec = str(SPECS / "nin_cifar10.ssn")
    flat, functions = tmp_path / "flat.onnx", tmp_path / "functions.onnx"
    assert runner.invoke(app, ["compile", spec, "-o", str(flat)]).exit_code == 0
    assert runner.invoke(app, ["compile", spec, "-o", str(functions), "--functions"]
                         ).exit_code == 0
    plain, nested = onnx.load(str(flat)), onnx.load(str(functions))
    assert not plain.functions and {n.domain for n in plain.graph.node} == {""}
    assert nested.functions and nested.graph.node[0].domain == "ssnc.functions"
    assert plain.graph.node[0].name == "nin.stage1.mlpconv.conv1"  # the hierarchy, by name
    both = runner.invoke(app, ["compile", spec, "-o", str(tmp_path / "x.onnx"), "--flat",
                               "--functions"])
    assert both.exit_code == 1 and "opposite ONNX forms" in both.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("spec", ["nin_cifar10.ssn", "hmrnn_charlm.ssn"])
@pytest.mark.parametrize("start", [13, 17])
def test_an_older_opset_converts_up(spec: str, start: int) -> None:
    """`--opset N` output converts to every newer opset with onnx.version_converter, and
    computes the same. (Down from 18 the converter itself stops: it has no adapter for
    Identity below 16 nor for LayerNormalization below 17; compile with --opset instead.)"""
    import onnxruntime as ort

    m = ssnc.load(SPECS / spec).model()
    proto = m.to_onnx(opset=start)
    x = COMPAT["feed"](m.ir, batch=2, steps=5)

    def run(model: onnx.ModelProto) -> np.ndarray:
        s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(s.run(None, {"input": x})[0])

    want = run(proto)
    for opset in range(start + 1, 22):
        converted = version_converter.convert_version(proto, opset)
        onnx.checker.check_model(converted, full_check=True)
        np.testing.assert_allclose(run(converted), want, rtol=1e-5, atol=1e-6)


def test_graph_inputs_and_outputs_have_stable_names() -> None:
    """`input` and `logits` whatever op comes last; a spec's own names where it gives them;
    N (and T) symbolic."""
    nin = ssnc.load(SPECS / "nin_cifar10.ssn").model().to_onnx()
    assert [i.name for i in nin.graph.input] == ["input"]
    assert [o.name for o in nin.graph.output] == ["logits"]
    dims = [d.dim_param or d.dim_value for d in nin.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["N", 10]
    lm = ssnc.load(SPECS / "hmrnn_charlm.ssn").model().to_onnx()
    dims = [d.dim_param or d.dim_value for d in lm.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "T"] and [o.name for o in lm.graph.output] == ["logits"]
    named = ssnc.loads("model m : sequence[4] = (x) => let r = lstm(3, final = true)(x) in "
                       "outputs(y = r[0], h = r[1])\n", "m.ssn").model().to_onnx()
    assert [o.name for o in named.graph.output] == ["y", "h"]


def test_batch_and_steps_can_be_fixed(tmp_path: Path) -> None:
    import onnxruntime as ort

    out = tmp_path / "lm.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "hmrnn_charlm.ssn"), "-o", str(out),
                                 "--batch", "4", "--steps", "9"])
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(out))
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*proto.graph.input, *proto.graph.output]]
    assert dims == [[4, 9], [4, 9, 50]]
    onnx.checker.check_model(proto, full_check=True)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert s.run(None, {"input": np.zeros((4, 9), np.int64)})[0].shape == (4, 9, 50)
    for args, needle in [(["--batch", "0"], "--batch must be a positive integer, not 0"),
                         (["--steps", "-3"], "--steps must be a positive integer")]:
        bad = tmp_path / "bad.onnx"
        result = runner.invoke(app, ["compile", str(SPECS / "hmrnn_charlm.ssn"), "-o", str(bad),
                                     *args])
        assert result.exit_code == 1 and needle in result.stderr and not bad.exists()
    result = runner.invoke(app, ["compile", str(SPECS / "nin_cifar10.ssn"), "-o",
                                 str(tmp_path / "n.onnx"), "--steps", "5"])
    assert result.exit_code == 1 and "has no time axis" in result.stderr
