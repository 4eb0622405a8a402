"""FractalNet's deep supervision (specs/fractalnet.ssn, `column_heads = true`): a classifier
on every column of the last block, read through the `join_inputs` built-in; what a head gives
under drop-path and under --column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SPECS

SMALL = {"classes": 10, "widths": [8, 8, 16, 16, 16]}


def _heads(column_heads: bool = True, **extra: object) -> ssnc.Model:
    return ssnc.load(SPECS / "fractalnet.ssn").model(column_heads=column_heads,
                                                     **{**SMALL, **extra})


def test_heads_add_one_classifier_per_column() -> None:
    plain, heads = _heads(False), _heads()
    assert plain.ir.output_names == () and heads.ir.output_names == ("logits", "column_logits")
    assert heads.ir[heads.ir.outputs[1]].shape == ("N", 3, 10)
    assert heads.total_params == plain.total_params + 3 * (16 * 10 + 10)
    full = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10, column_heads=True)
    assert full.total_params == 33_724_618 + 3 * (512 * 10 + 10)


def test_column_c_head_reads_column_c() -> None:
    """column_logits[:, c - 1] is a classifier on column c's value: the last unit of that
    column (tapped), pooled, flattened and through the head's own linear layer."""
    model = _heads()
    ir = model.ir
    heads = {}
    for node in ir:
        if node.op != "linear" or node.name == ir.outputs[0]:
            continue
        source = ir[ir[ir[node.inputs[0]].inputs[0]].inputs[0]]  # flatten <- maxpool <- column
        if source.column is not None:
            heads[source.column] = (node, source.name)
    assert sorted(heads) == [1, 2, 3]
    tapped = model.with_outputs(**{f"c{c}": name for c, (_, name) in heads.items()})
    net = tapped.to_torch(seed=1).eval()
    params = dict(net.named_parameters())
    with torch.no_grad():
        out = net(torch.randn(3, 3, 32, 32))
        for c, (node, _) in heads.items():
            w, b = (params[k] for k in node.weights)
            want = F.linear(F.max_pool2d(getattr(out, f"c{c}"), 2).flatten(1), w, b)
            torch.testing.assert_close(out.column_logits[:, c - 1], want)


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
def test_heads_in_onnx_runtime(flat: bool) -> None:
    import onnxruntime as ort

    model = _heads()
    net = model.to_torch().eval()
    session = ort.InferenceSession(model.to_onnx(flat=flat).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        logits, columns = session.run(["logits", "column_logits"], {"input": x})
        with torch.no_grad():
            want = net(torch.from_numpy(x))
        np.testing.assert_allclose(logits, want.logits.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(columns, want.column_logits.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_under_drop_path_every_head_reads_its_column(mode: str) -> None:
    """Drop-path acts on the joins: every column of the last block is computed and every
    head trained at every step, global draws included (a join the chosen column does not
    pass through keeps all its inputs)."""
    model = _heads()
    net = model.to_torch(drop_mode=mode, global_ratio=1.0 if mode == "batch" else 0.5).train()
    head_weights = [p for k, p in net.named_parameters() if k.startswith("supervised.classifier")
                    and k.endswith("weight")]
    assert len(head_weights) == 4  # the block's classifier and three column heads
    x = torch.randn(4, 3, 32, 32)
    for _ in range(8):
        net.zero_grad()
        out = net(x)
        assert bool(torch.isfinite(out.column_logits).all())
        (F.cross_entropy(out.logits, torch.zeros(4, dtype=torch.long))
         + out.column_logits.square().mean()).backward()
        assert all(w.grad is not None and bool(w.grad.abs().sum() > 0) for w in head_weights)


def test_a_column_network_leaves_the_heads_out(tmp_path: Path) -> None:
    model = _heads()
    for k in (1, 2, 3):
        column = model.column(k)
        assert column.ir.output_names == ("logits",)
        assert not any(n.column not in (None, k) for n in column.ir if n.fractal is not None)
    out = tmp_path / "c.onnx"
    result = CliRunner().invoke(app, [
        "compile", str(SPECS / "fractalnet.ssn"), "-o", str(out), "--column", "2",
        "--set", "column_heads=true", "--set", "classes=10",
        "--set", "widths=[8,8,16,16,16]"])
    assert result.exit_code == 0, result.output
    assert "column 2 leaves out column_logits: it reads other columns" in result.stderr


def test_join_inputs_needs_a_join(tmp_path: Path) -> None:
    from tests.conftest import compile_refused

    spec = (SPECS / "fractalnet.ssn").read_text().replace("column_heads = false",
                                                          "column_heads = true")
    err = compile_refused(tmp_path, spec.replace("C = 3,", "C = 1,"))
    assert "column heads need a fractal of two or more columns, not C = 1" in err
    assert "m.ssn:19:" in err  # the spec's own check

    err = compile_refused(tmp_path, "model m : tensor[2, 4, 4] = (x) => concat(join_inputs("
                                    "conv(2, 3)(x)))\n")
    assert "`join_inputs` reads the output of a join, not of `conv`" in err and "m.ssn:1:" in err
