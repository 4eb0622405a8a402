"""Output taps (`Model.with_outputs`, `ssnc compile --tap`): extra named outputs at scopes or
nodes of the IR, in both backends, with trained weights, and under drop-path and --column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SPECS, ort_output

DIGITS = SPECS / "fractalnet_digits.ssn"


def _ort_all(proto: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": x}), strict=True))


def test_taps_are_outputs_in_both_backends_with_trained_weights(tmp_path: Path) -> None:
    model = ssnc.load(DIGITS).model()
    trained = model.to_torch(seed=3).eval()
    weights = tmp_path / "w.pt"
    torch.save(trained.state_dict(), weights)
    tapped = model.with_outputs("stage1.fractal", feat="flatten")
    assert tapped.ir.output_names == ("logits", "stage1_fractal", "feat")
    assert tapped.total_params == model.total_params
    net = tapped.to_torch(weights=weights).eval()
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 1, 8, 8)).astype(np.float32)
        with torch.no_grad():
            out = net(torch.from_numpy(x))
            want = trained(torch.from_numpy(x))
        np.testing.assert_allclose(out.logits.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
        assert out.stage1_fractal.shape == (batch, 16, 8, 8) and out.feat.shape == (batch, 128)
        # the tap is what the scope gives the rest of the model: pooled, it feeds stage 2
        pooled = F.max_pool2d(out.stage1_fractal, 2)
        first = tapped.with_outputs(pooled="stage1.maxpool").to_torch(weights=weights).eval()
        with torch.no_grad():
            np.testing.assert_allclose(first(torch.from_numpy(x)).pooled.numpy(),
                                       pooled.numpy(), rtol=1e-6, atol=1e-6)
        for flat in (True, False):
            got = _ort_all(tapped.to_onnx(weights=weights, flat=flat), x)
            assert list(got) == ["logits", "stage1_fractal", "feat"]
            for name in got:
                np.testing.assert_allclose(got[name], getattr(out, name).numpy(),
                                           rtol=1e-4, atol=1e-5)


def test_a_tapped_column_is_computed_even_when_drop_path_drops_it() -> None:
    """Eager training skips a column that every join drops; a tapped value inside it is
    still computed, every step, and equals the column's op on the input."""
    model = ssnc.loads("model m : tensor[2, 5, 5] =\n"
                       "    fractal(2, conv(3, 3), drop_path = 0.9) >> flatten >> linear(4)\n"
                       ).model().with_outputs(col1="fractal.col1")
    net = model.to_torch(drop_mode="batch").train()
    weight = dict(net.named_parameters())
    key = next(k for k in weight if k.startswith("fractal.col1") and k.endswith("weight"))
    bias = weight[key.replace("weight", "bias")]
    x = torch.randn(4, 2, 5, 5)
    for _ in range(20):
        out = net(x)
        assert isinstance(out.col1, torch.Tensor)
        torch.testing.assert_close(out.col1, F.conv2d(x, weight[key], bias, padding=1))
        (out.logits.sum() + out.col1.sum()).backward()


def test_taps_with_a_column_read_that_column() -> None:
    """Under --column 3 a fractal's join is its column 3 input, so a tap on the block is the
    deepest column's value."""
    model = ssnc.load(DIGITS).model()
    tapped = model.with_outputs(block="stage1.fractal", deep="stage1.fractal.col3")
    column = tapped.column(3)
    node = dict(zip(column.ir.output_names, column.ir.outputs, strict=True))
    assert node["block"] == node["deep"] == "stage1.fractal.col3.unit4.dropout"
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    got = _ort_all(tapped.to_onnx(column=3), x)
    np.testing.assert_array_equal(got["block"], got["deep"])
    assert ort_output(model.to_onnx(column=3), x).shape == got["logits"].shape


def test_the_cli_writes_the_taps(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["compile", str(DIGITS), "-o", str(out), "--tap",
                                      "feat=flatten", "--tap", "stage2.fractal"])
    assert result.exit_code == 0, result.output
    assert [o.name for o in onnx.load(str(out)).graph.output] == [  # in the options' order
        "logits", "feat", "stage2_fractal"]


@pytest.mark.parametrize(("tap", "message", "at"), [
    ("stage1.fractl", "is no node or scope of model", "did you mean `stage1.fractal`?"),
    ("logits=flatten", "two outputs are named `logits`", "--tap other_name=flatten"),
    ("a.b=flatten", "`a.b` cannot name an output", "letters, digits and underscores"),
    ("flatten=linear", "`flatten` is already the name of a node", "<--tap>:1:1"),
    ("x=linear.weight", "is a parameter, not a value", "tap the op that reads it"),
    ("x=stage9", "is no node or scope", "<--tap>:1:3")])
def test_bad_taps_are_diagnostics(tmp_path: Path, tap: str, message: str, at: str) -> None:
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["compile", str(DIGITS), "-o", str(out), "--tap", tap])
    assert result.exit_code == 1 and not out.exists(), result.output
    assert message in result.stderr and at in result.stderr
    assert "Traceback" not in result.output


def test_a_loop_is_tapped_by_its_items() -> None:
    model = ssnc.loads("model m : sequence[3] = (x) => lstm(4, final = true)(x)[1]\n").model()
    loop = next(n.name for n in model.ir if n.op == "scan")
    with pytest.raises(ssnc.SsnError, match="a loop with several outputs"):
        model.with_outputs(loop)
    item = next(n.name for n in model.ir if n.op == "item" and n.attrs["index"] == 0)
    steps = model.with_outputs(steps=item)
    out = steps.to_torch().eval()(torch.randn(2, 5, 3))
    assert out.steps.shape == (2, 5, 4) and out.logits.shape == (2, 4)


def test_two_outputs_of_one_name_are_refused_in_the_spec_too(tmp_path: Path) -> None:
    from tests.conftest import compile_refused

    err = compile_refused(tmp_path, "model m : tensor[4] = (x) => outputs(y = x, y = relu(x))\n")
    assert "error[E0102]" in err and "keyword argument `y` is given twice" in err
    assert "m.ssn:1:45:" in err and "first given here" in err
