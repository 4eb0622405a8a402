"""The default ONNX form runs in the runtimes users deploy with: every shipped spec, flat,
equal to ONNX Runtime in OpenVINO and tract (CI installs both; elsewhere a missing one is
skipped), each asked for float32 as bench/compat.py asks (OpenVINO would pick bf16 on a CPU
that has it). The function form stays available with `--functions`; opset conversion works on
the flat form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import version_converter
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SMALL, SPECS, compat, runner_for, small_args

COMPAT: dict[str, Any] = compat()
runner = CliRunner()


@pytest.mark.parametrize("runtime", ["OpenVINO", "tract"])
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_every_shipped_spec_runs_in_other_runtimes(runtime: str, spec: Path,
                                                   tmp_path: Path) -> None:
    run, reference = runner_for(runtime), runner_for("ONNX Runtime")
    m = ssnc.load(spec).model(**SMALL.get(spec.stem, {}))
    path = tmp_path / "m.onnx"
    result = runner.invoke(app, ["compile", str(spec), "-o", str(path),  # the default form
                                 *small_args(spec)])
    assert result.exit_code == 0, result.output
    for batch, steps in ((1, 1), (3, 7)):
        x = COMPAT["feed"](m.ir, batch=batch, steps=steps)
        want = reference(str(path), x)
        got = run(str(path), x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def _nin_onnx(tmp_path: Path) -> tuple[str, np.ndarray]:
    path = tmp_path / "nin.onnx"
    path.write_bytes(ssnc.load(SPECS / "nin_cifar10.ssn").model().to_onnx().SerializeToString())
    return str(path), np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)


def test_openvino_is_asked_for_float32_on_every_cpu(tmp_path: Path) -> None:
    """The runner the tests and bench/compat.py share compiles for float32 whatever the CPU
    offers, so a comparison with ONNX Runtime means the same on every machine."""
    runner_for("OpenVINO")  # skips where OpenVINO is missing (fails under CI)
    import openvino as ov
    from openvino.properties import hint

    path, _ = _nin_onnx(tmp_path)
    assert COMPAT["openvino_compile"](path).get_property(hint.inference_precision) == ov.Type.f32


def test_openvino_defaults_to_bf16_where_the_cpu_has_it(tmp_path: Path) -> None:
    """What docs/onnx.md tells users: on a CPU with bf16 (AVX512-BF16 or AMX), OpenVINO's
    default precision is bf16, which moves NiN's logits by ~1e-3 of the largest; asking for
    f32 gives ONNX Runtime's within 1e-5. Only such a CPU can show it."""
    runner_for("OpenVINO")
    import openvino as ov
    from openvino.properties import device, hint

    core = ov.Core()
    capabilities = core.get_property("CPU", device.capabilities)
    if "BF16" not in capabilities:
        pytest.skip(f"this CPU has no bf16 (OpenVINO sees {', '.join(capabilities)}): "
                    "OpenVINO computes in f32 by default here")
    path, x = _nin_onnx(tmp_path)
    default = core.compile_model(core.read_model(path), "CPU")
    assert default.get_property(hint.inference_precision) == ov.Type.bf16
    want = runner_for("ONNX Runtime")(path, x)
    scale = float(np.abs(want).max())
    loose = float(np.abs(default([x])[default.output(0)] - want).max()) / scale
    exact = float(np.abs(runner_for("OpenVINO")(path, x) - want).max()) / scale
    assert loose > 1e-4 and exact < 1e-5, (loose, exact)


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
    computes the same. (Down from 17 the converter itself stops: it has no adapter for
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


def _dims(info: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("runtime", ["ONNX Runtime", "OpenVINO", "tract"])
def test_a_fully_convolutional_model_takes_any_image_size(runtime: str,
                                                          tmp_path: Path) -> None:
    """NiN without its final pooling, exported with symbolic H and W, runs at sizes other
    than the spec's and equals the PyTorch module (which takes any size) at each."""
    import torch

    run = runner_for(runtime)
    out = tmp_path / "nin.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "nin_cifar10.ssn"), "-o", str(out),
                                 "--set", "pool=false", "--set", "classes=4", "--symbolic-hw"])
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(out))
    assert _dims(proto.graph.input[0]) == ["N", 3, "H", "W"]
    assert _dims(proto.graph.output[0]) == ["N", 4, "H_out", "W_out"]
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    module = ssnc.load(SPECS / "nin_cifar10.ssn").model(pool=False, classes=4).to_torch().eval()
    rng = np.random.default_rng(0)
    for batch, h, w in ((1, 32, 32), (2, 48, 40), (1, 37, 29)):
        x = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
        got = run(str(out), x)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (batch, 4, _pooled(_pooled(h)), _pooled(_pooled(w)))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))


def _pooled(n: int) -> int:
    """A size after NiN's max-pool (3, stride 2, ceil mode)."""
    return -(-(n - 3) // 2) + 1


def test_symbolic_hw_names_the_axes_that_follow_the_image() -> None:
    """An output axis of the input's size is `H`; one of fixed size stays fixed (a slice of
    fixed bounds, a global pool); batch and channels keep theirs."""
    same = ssnc.loads("model m : tensor[3, 16, 12] = conv(5, 3) >> relu\n", "m.ssn").model()
    proto = same.to_onnx(symbolic_hw=True, batch=2)
    assert _dims(proto.graph.output[0]) == [2, 5, "H", "W"]
    fixed = ssnc.loads("model m : tensor[3, 16, 12] = conv(5, 3) >> slice(axis = 2, start = 1, "
                       "stop = 4)\n", "m.ssn").model()
    assert _dims(fixed.to_onnx(symbolic_hw=True).graph.output[0]) == ["N", 5, 3, "W"]
    pooled = ssnc.load(SPECS / "nin_cifar10.ssn").model().to_onnx(symbolic_hw=True)
    assert _dims(pooled.graph.input[0]) == ["N", 3, "H", "W"]
    assert _dims(pooled.graph.output[0]) == ["N", 10]


@pytest.mark.parametrize(("source", "code", "needle", "column"), [
    ("model m : tensor[3, 8, 8] = conv(4, 3) >> flatten >> linear(2)\n", "E0301",
     "`linear`'s weight is [2,256] and [2,512] at height 8 and 16", 54),
    ("model m : tensor[3, 8, 8] = conv(4, 3) >> reshape([4, -1])\n", "E0301",
     "`reshape` writes sizes that follow the image's", 43),
    ("model m : tensor[3, 8, 8] = conv(4, 3) >> slice(axis = 3, start = -2)\n", "E0301",
     "so the model cannot have symbolic W", 43),
    ("model m : tensor[3, 8, 8] = conv(4, 3) >> (slice(axis = 2, start = 0, stop = 8) + "
     "identity)\n", "E0301", "at height 16 (twice the spec's 8): sum inputs do not match", 44),
    ("model m : sequence[4] = lstm(3)\n", "E0601",
     "need an image input `tensor[C, H, W]`, not `sequence[4]`", 11),
])
def test_symbolic_hw_refuses_models_that_are_not_fully_convolutional(
        source: str, code: str, needle: str, column: int, tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text(source)
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["compile", str(spec), "-o", str(out), "--symbolic-hw"])
    assert result.exit_code == 1 and not out.exists()
    assert f"error[{code}]" in result.stderr and needle in result.stderr, result.stderr
    if column:
        assert f"m.ssn:1:{column}:" in result.stderr
    assert "Traceback" not in result.output
    plain = runner.invoke(app, ["compile", str(spec), "-o", str(out)])
    assert plain.exit_code == 0, plain.output  # each model compiles with fixed sizes
    torch_target = runner.invoke(app, ["compile", str(spec), "--to", "torch", "-o",
                                       str(tmp_path / "m.pt"), "--symbolic-hw"])
    assert torch_target.exit_code == 1
    assert "--symbolic-hw does not apply to --to torch" in torch_target.stderr
