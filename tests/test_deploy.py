"""ONNX for runtimes without loops or computed kernels: `--steps T --unroll` writes each time
loop out as T steps, and `--fold-weights` stores what depends on weights alone (a static
hypernetwork's kernels) as weights. Both give the Scan form's / the hypernetwork's outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.backends.onnx.deploy import UNROLL_NODE_LIMIT
from ssnc.cli import app
from tests.conftest import SPECS, compat, compile_refused, ort_output, runner_for

COMPAT: dict[str, Any] = compat()
runner = CliRunner()

RECURRENT = {"hmrnn_charlm": {}, "hornn_lm": {"hidden": 32}, "hyperlstm_charlm": {}}
BIDIRECTIONAL = """
model m : sequence[3] =
    lstm(4) >> scan((x, h) => (x + h, h * 0.5 + x), state = [4], reverse = true) >> rnn(2)
"""


def ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize("name", RECURRENT)
def test_an_unrolled_loop_gives_the_scan_form_outputs(name: str) -> None:
    m = ssnc.load(SPECS / f"{name}.ssn").model(**RECURRENT[name])
    x = COMPAT["feed"](m.ir, batch=3, steps=6)
    scan = m.to_onnx(seed=1)
    unrolled = m.to_onnx(seed=1, steps=6, unroll=True)
    assert "Scan" in ops(scan) and "Scan" not in ops(unrolled)
    onnx.checker.check_model(unrolled, full_check=True)
    onnx.shape_inference.infer_shapes(unrolled, check_type=True, strict_mode=True)
    dims = [d.dim_value or d.dim_param for d in unrolled.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 6]
    np.testing.assert_allclose(ort_output(unrolled, x), ort_output(scan, x), rtol=0, atol=1e-6)


def test_unrolled_steps_keep_the_hierarchy_and_the_source() -> None:
    m = ssnc.load(SPECS / "hornn_lm.ssn").model(hidden=8)
    (scan,) = [n for n in m.to_onnx().graph.node if n.op_type == "Scan"]
    body = [n.name for n in scan.attribute[0].g.node]
    proto = m.to_onnx(steps=3, unroll=True)
    names = {n.name for n in proto.graph.node}
    for k in range(3):  # every body node once per step, under its own name
        assert {f"{b}@t{k}" for b in body} <= names
    copied = [n for n in proto.graph.node if n.name.endswith("@t2")]
    assert len(copied) >= len(body)
    assert all([(p.key, ".ssn:" in p.value) for p in n.metadata_props] == [("ssnc.source", True)]
               for n in copied)


def test_reversed_and_stacked_loops_unroll_in_their_direction() -> None:
    m = ssnc.loads(BIDIRECTIONAL, "b.ssn").model()
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    want = ort_output(m.to_onnx(seed=3), x)
    proto = m.to_onnx(seed=3, steps=5, unroll=True)
    assert "Scan" not in ops(proto)
    np.testing.assert_allclose(ort_output(proto, x), want, rtol=0, atol=1e-6)


def test_the_function_form_unrolls_inside_its_functions() -> None:
    m = ssnc.load(SPECS / "hornn_lm.ssn").model(hidden=8)
    x = COMPAT["feed"](m.ir, batch=2, steps=4)
    proto = m.to_onnx(seed=2, flat=False, steps=4, unroll=True)
    assert not [n for f in proto.functions for n in f.node if n.op_type == "Scan"]
    assert proto.functions
    np.testing.assert_allclose(ort_output(proto, x), ort_output(m.to_onnx(seed=2), x),
                               rtol=0, atol=1e-6)


def test_an_unrolled_model_converts_to_half_precision() -> None:
    m = ssnc.load(SPECS / "hornn_lm.ssn").model(hidden=16)
    x = COMPAT["feed"](m.ir, batch=4, steps=5)
    half = m.to_onnx(seed=0, steps=5, unroll=True, precision="fp16")
    onnx.checker.check_model(half, full_check=True)
    want = ort_output(m.to_onnx(seed=0), x)
    assert np.abs(ort_output(half, x) - want).max() <= 1e-2 * np.abs(want).max()


def test_folding_stores_the_generated_kernels_as_weights() -> None:
    m = ssnc.load(SPECS / "hyper_wrn.ssn").model(depth=10, k=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain, folded = m.to_onnx(seed=4), m.to_onnx(seed=4, fold_weights=True)
    onnx.checker.check_model(folded, full_check=True)
    weights = {t.name for t in folded.graph.initializer}
    convs = [n for n in folded.graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[1] in weights for n in convs)  # every kernel a weight
    before = {t.name for t in plain.graph.initializer}
    computed = [n.input[1] for n in plain.graph.node
                if n.op_type == "Conv" and n.input[1] not in before]
    assert computed and set(computed) <= weights  # stored under the names they had
    docs = {t.name: t.doc_string for t in folded.graph.initializer}
    assert all(docs[w].startswith("computed at compile time (--fold-weights) by ")
               for w in computed)
    gone = before - weights  # the embeddings z and the generator that made the kernels
    assert any(w.endswith(".param") for w in gone) and any(".hyper_generator." in w
                                                            for w in gone)
    want = ort_output(plain, x)
    np.testing.assert_allclose(ort_output(folded, x), want, rtol=1e-5,
                               atol=1e-5 * float(np.abs(want).max()))


def test_folding_leaves_a_model_without_such_values_unchanged() -> None:
    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    assert (m.to_onnx(seed=0, fold_weights=True).SerializeToString()
            == m.to_onnx(seed=0).SerializeToString())


@pytest.mark.parametrize(("name", "options"), [
    ("hornn_lm", {"hidden": 16}), ("hyper_wrn", {"depth": 10, "k": 1})])
def test_the_loopless_form_runs_in_openvino(name: str, options: dict[str, int],
                                            tmp_path: Path) -> None:
    run = runner_for("OpenVINO")
    m = ssnc.load(SPECS / f"{name}.ssn").model(**options)
    timed = m.ir.input_type.startswith("tokens")
    path = tmp_path / "m.onnx"
    proto = m.to_onnx(fold_weights=True, **({"steps": 7, "unroll": True} if timed else {}))
    path.write_bytes(proto.SerializeToString())
    x = COMPAT["feed"](m.ir, batch=2, steps=7)
    want = ort_output(m.to_onnx(), x)
    np.testing.assert_allclose(run(str(path), x), want, rtol=1e-4,
                               atol=1e-4 * float(np.abs(want).max()))


def test_the_cli_unrolls_and_folds(tmp_path: Path) -> None:
    out = tmp_path / "lm.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "hornn_lm.ssn"), "-o", str(out),
                                 "--set", "hidden=8", "--steps", "5", "--unroll"])
    assert result.exit_code == 0, result.output
    assert "Scan" not in ops(onnx.load(str(out)))
    out = tmp_path / "hyper.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "hyper_wrn.ssn"), "-o", str(out),
                                 "--set", "depth=10", "--set", "k=1", "--fold-weights"])
    assert result.exit_code == 0, result.output
    stored = sum(int(np.prod(t.dims)) for t in onnx.load(str(out)).graph.initializer)
    params = ssnc.load(SPECS / "hyper_wrn.ssn").model(depth=10, k=1).total_params
    assert f": {params:,} parameters; {stored:,} stored after --fold-weights)" in result.output


LOOP = "model m : tokens[20] = embedding(20, 4) >> lstm(4) >> linear(20)\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--unroll"], "--unroll needs a fixed sequence length"),
    (["--steps", str(UNROLL_NODE_LIMIT), "--unroll"], "ONNX nodes, more than the limit"),
    (["--fold-weights", "--functions"], "--fold-weights works on the flat form"),
])
def test_bad_deployment_options_are_refused(tmp_path: Path, args: list[str],
                                            message: str) -> None:
    stderr = compile_refused(tmp_path, LOOP, *args)
    assert message in stderr
