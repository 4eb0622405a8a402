"""Values nothing reads (W0001): removed after they are checked, with their weights, each
place with a warning naming it; a tap keeps one; an unread `param` stays an error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import ort_output

DEAD = """\
def cbr(w, k = 1) = conv(w, k, bias = false) >> bn >> relu

model m : tensor[3, 8, 8] = (x) =>
  let a = conv(4)(x) in
  x >> cbr(6) >> gap >> flatten >> linear(5)
"""
LIVE_PARAMS = 3 * 6 + 2 * 6 + 6 * 5 + 5  # cbr's conv and bn, the linear head
A_PARAMS = 4 * 3 * 3 * 3 + 4


def _model(text: str, **params: object) -> tuple[ssnc.Model, list[ssnc.SsnWarning]]:
    """The model of ``text`` and the warnings compiling it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ssnc.SsnWarning)
        model = ssnc.loads(text, "unread.ssn").model(**params)
    found = [w.message for w in caught if isinstance(w.message, ssnc.SsnWarning)]
    return model, found


def test_an_unread_value_is_removed_with_its_weights_and_a_warning() -> None:
    model, found = _model(DEAD)
    (diag,) = model.warnings
    assert [w.diagnostic for w in found] == [diag]
    assert diag.code.id == "W0001" and diag.code.severity == "warning"
    assert diag.message == "`a` is computed but never read: it is removed"
    assert (diag.span.line, diag.span.col, diag.span.end_col) == (4, 11, 21)  # `conv(4)(x)`
    assert f"1 op and {A_PARAMS} parameters" in diag.notes[0].message
    assert "`with_outputs(a='conv')`" in (diag.hint or "")
    assert "warning[W0001]" in str(found[0])
    assert model.total_params == LIVE_PARAMS
    assert "conv" not in model.ir.nodes_by_name and "conv.weight" not in model.ir.nodes_by_name
    net = model.to_torch()
    assert not [k for k in net.state_dict() if k.startswith("conv.")]
    proto = model.to_onnx()
    assert not [i.name for i in proto.graph.initializer if i.name.startswith("conv.")]
    assert not [n for n in proto.graph.node if n.name.startswith("conv")]


def test_a_tap_keeps_an_unread_value_computed_and_with_its_weights() -> None:
    model, _ = _model(DEAD)
    tapped = model.with_outputs(a="conv")
    assert tapped.warnings == ()
    assert tapped.total_params == LIVE_PARAMS + A_PARAMS
    net = tapped.to_torch(seed=1).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(x))
        want = torch.nn.functional.conv2d(torch.from_numpy(x), net.state_dict()["conv.weight"],
                                          net.state_dict()["conv.bias"], padding=1)
    np.testing.assert_allclose(out.a.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    # the untapped model's weights are the tapped one's less the removed value's: they load
    small = model.to_torch()
    small.load_state_dict({k: v for k, v in net.state_dict().items()
                           if not k.startswith("conv.")})
    with torch.no_grad():
        np.testing.assert_allclose(small.eval()(torch.from_numpy(x)).numpy(),
                                   out.logits.numpy(), rtol=1e-6, atol=1e-6)
    assert ort_output(model.to_onnx(), x).shape == (2, 5)


def test_an_underscore_name_is_removed_silently() -> None:
    model, found = _model(DEAD.replace("let a =", "let _a ="))
    assert found == [] and model.warnings == ()
    assert model.total_params == LIVE_PARAMS


def test_each_place_gets_one_warning_with_the_calls_that_led_there() -> None:
    text = """\
def block(w) = (x) => let side = conv(w, 1)(x) in x >> conv(w, 3) >> relu

model m : tensor[4, 8, 8] = block(4) >> block(4) >> gap >> flatten >> linear(3)
"""
    model, _ = _model(text)
    (diag,) = model.warnings
    assert diag.message == "`side` is computed but never read in 2 places: it is removed"
    assert diag.span.line == 1
    assert "2 ops and 40 parameters" in diag.notes[0].message  # both instances' 1×1 convs
    calls = [n for n in diag.notes if n.message.startswith("in `block(w=4)`")]
    assert calls and calls[0].span is not None and calls[0].span.line == 3
    assert model.total_params == 2 * (4 * 4 * 9 + 4) + 4 * 3 + 3


def test_what_only_the_unread_value_reads_goes_too_and_shared_weights_stay() -> None:
    text = """\
model m : tensor[3, 8, 8] = (x) =>
  let k = param([4, 3, 3, 3]) in
  let t = relu(conv(4, 3, weight = k)(x)) in
  let u = conv(4, 3, weight = k)(x) in
  u >> gap >> flatten
"""
    model, _ = _model(text)
    (diag,) = model.warnings
    assert "`t`" in diag.message
    assert diag.notes[0].message.startswith("removed with it: 2 ops and 4 parameters")  # bias
    assert model.ir["param"].is_param  # the kernel `k`, still read by `u`
    assert model.total_params == 4 * 3 * 3 * 3 + 4  # the kernel, and `u`'s bias


def test_an_unread_value_still_has_its_shapes_checked() -> None:
    text = DEAD.replace("let a = conv(4)(x)", "let a = linear(4)(x)")
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(text, "unread.ssn").model()
    assert info.value.code == "E0301"


def test_an_unread_param_is_still_an_error() -> None:
    text = DEAD.replace("let a = conv(4)(x)", "let a = param([4])")
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(text, "unread.ssn").model()
    assert info.value.code == "E0202" and "never read" in str(info.value)


def test_an_unread_state_of_a_loop_that_stays_is_no_warning_and_a_loop_unread_is_one() -> None:
    text = """\
model enc : sequence[6] =
    (x) => let (y, h, c) = lstm(8, final = true)(x) in outputs(y = y, h = h)
"""
    model, found = _model(text)
    assert found == [] and model.warnings == ()  # `c` costs nothing: the loop computes it
    assert model.total_params == 4 * 8 * (6 + 8) + 4 * 8
    text = """\
model enc : sequence[6] =
    (x) => let (y, h, c) = lstm(8, final = true)(x) in linear(3)(x)
"""
    model, found = _model(text)
    (diag,) = model.warnings
    assert diag.message == "`(y, h, c)` is computed but never read: it is removed"
    assert f"ops and {4 * 8 * (6 + 8) + 4 * 8} parameters" in diag.notes[0].message  # the cell
    assert not [n for n in model.ir if n.op == "scan"]


def test_an_unread_value_inside_a_loop_cell_is_removed() -> None:
    text = """\
def cell(hidden) = (x, h) =>
    let gate = linear(hidden)(x) in
    let h2 = tanh(linear(hidden)(concat(x, h, axis = -1))) in
    (h2, h2)

model rnn : sequence[5] = scan(cell(7), state = [7])
"""
    model, _ = _model(text)
    (diag,) = model.warnings
    assert "`gate`" in diag.message and f"{5 * 7 + 7:,} parameters" in diag.notes[0].message
    assert model.total_params == (5 + 7) * 7 + 7
    x = np.random.default_rng(1).standard_normal((2, 4, 5)).astype(np.float32)
    net = model.to_torch().eval()
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ort_output(model.to_onnx(), x), want, rtol=1e-5, atol=1e-6)


def test_the_cli_shows_the_warning_and_succeeds_and_a_tap_keeps_the_value(
        tmp_path: Path) -> None:
    spec = tmp_path / "dead.ssn"
    spec.write_text(DEAD)
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 0, result.output
    assert "warning[W0001]: `a` is computed but never read" in result.stderr
    assert "--tap a=conv" in result.stderr
    assert f"{LIVE_PARAMS:,} parameters" in result.stdout
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["compile", str(spec), "--tap", "a=conv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "W0001" not in result.stderr
    assert f"{LIVE_PARAMS + A_PARAMS:,} parameters" in result.stderr
