"""ONNX backend: checker, shape inference, parity with PyTorch through ONNX Runtime at batch
sizes other than the example's, determinism, weights and metadata."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import ssnc
from ssnc.backends.onnx.build import all_graphs
from ssnc.backends.onnx.lower import LOWERINGS
from ssnc.backends.torch import example_inputs
from ssnc.cli import app
from ssnc.compiler.axes import roles_of
from ssnc.compiler.ops import OPS
from tests.conftest import ROOT, SMALL, SPECS

runner = CliRunner()


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def torch_eval(m: ssnc.Model, x: torch.Tensor | tuple[torch.Tensor, ...],
               seed: int = 0) -> list[np.ndarray]:
    """Every output of the compiled module in eval mode, on one input or several."""
    net = m.to_torch(seed=seed).eval()
    with torch.no_grad():
        out = net(*x) if isinstance(x, tuple) else net(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def assert_parity(m: ssnc.Model, proto: onnx.ModelProto, batches: tuple[int, ...] = (1, 3),
                  seed: int = 0) -> None:
    sess = session(proto)
    names = [i.name for i in sess.get_inputs()]
    for batch in batches:
        xs = example_inputs(m.ir, batch=batch, steps=4 + batch)
        refs = torch_eval(m, xs, seed)
        gots = sess.run(None, {n: x.numpy() for n, x in zip(names, xs, strict=True)})
        assert len(gots) == len(refs)
        for got, ref in zip(gots, refs, strict=True):
            assert got.shape == ref.shape
            assert got.dtype == ref.dtype
            np.testing.assert_allclose(got, ref, rtol=1e-4,
                                       atol=1e-4 * max(np.abs(ref).max(), 1e-6))


def test_every_lowered_op_has_an_onnx_lowering() -> None:
    """Each of ssnc's own ops is lowered once: by the lowering declared with it (the
    activations, declared through the public op API) or by this backend's table."""
    wanted = {name for name, op in OPS.items()
              if not op.passthrough and not op.source and op.origin is None}
    declared = {name for name in wanted if "onnx" in OPS[name].lowerings}
    assert declared >= {"relu", "sigmoid", "tanh", "gelu", "clip", "leaky_relu"}
    table = wanted - declared
    assert table == set(LOWERINGS), sorted(table ^ set(LOWERINGS))  # no dead rows either


OP_CASES = {
    "conv": "model m : tensor[4, 9, 9] = conv(6, 3, 2, bias=false) >> conv(6, 5, groups=2, "
            "dilation=2) >> conv(none, 1, pad=1)",
    "bn": "model m : tensor[4, 5, 5] = bn >> bn(affine=false, eps=0.001) >> gap >> linear(6) "
          ">> bn",
    "elementwise": "model m : tensor[3, 4, 4] = (x) => concat(relu(x), sigmoid(x), tanh(x))",
    "softmax": "model m : tensor[7] = linear(5) >> softmax",
    "dropout": "model m : tensor[3, 4, 4] = dropout(0.5) >> relu",
    "maxpool": "model m : tensor[2, 9, 9] = maxpool(3, 2, ceil=true) >> maxpool(2, 1, 1)",
    "avgpool": "model m : tensor[2, 9, 9] = avgpool(3, 2, 1) >> avgpool(2, ceil=true) >> "
               "avgpool(3, 1, 1, count_pad = true)",
    "gap_flatten_linear": "model m : tensor[3, 4, 4] = conv(5) >> gap >> linear(3) >> "
                          "linear(2, bias=false)",
    "flatten": "model m : tensor[3, 4, 4] = flatten >> linear(4)",
    "sequence_linear": "model m : sequence[6] = linear(4) >> relu >> linear(3, bias=false)",
    "embedding": "model m : tokens[11] = embedding(11, 5) >> linear(3)",
    "joins": "model m : tensor[3, 4, 4] = (x) => let a = relu(x) in "
             "mean(sum(a, x, x), max(a, tanh(x)), mul(a, x))",
    "concat": "model m : tensor[3, 4, 4] = concat(conv(2), conv(3), identity) >> conv(4)",
    "broadcast": "model m : tensor[3, 4, 4] = (x) => mul(x, maxpool(4)(x)) >> flatten",
    "shared": "model m : tensor[4, 3, 3] = unrolled(conv(4) >> bn >> relu >> conv(4), 3)",
    "cell_ops": "model m : sequence[6] = (x) => let g = hard_sigmoid(slope = 2.0)(x) in "
                "concat(step(g), x - g, 1 - x * 0.5, -x / 4 + 1, slice(-1, 1, 4)(x), "
                "slice(2, -2)(x), axis = -1)",
    "slice_channels": "model m : tensor[5, 4, 4] = (x) => slice(1, 0, 2)(x) - slice(1, 3)(x)",
    "layernorm": "model m : sequence[6] = layernorm >> linear(4) >> "
                 "layernorm(affine = false, eps = 0.001)",
    "reshape": "model m : tensor[4, 6, 6] = (x) => concat(reshape([2, -1, 6])(x), "
               "(reshape([2, 3, 4, 6]) >> softmax(axis = -1) >> reshape([2, 12, 6]))(x), "
               "axis = -1) >> reshape([-1]) >> linear(3)",
    "resampling": "model m : tensor[8, 5, 5] = (x) => concat(conv_transpose(4, 3, 2, 1, 1)(x), "
                  "upsample(2)(x) >> conv(4, 1), upsample(mode = \"bilinear\")(x) >> conv(4, 1), "
                  "upsample(mode = \"bilinear\", align_corners = true)(x) >> conv(4, 1), "
                  "pixel_shuffle(2)(x) >> conv(4, 1) >> upsample(size = 10), "
                  "conv_transpose(4, groups = 2, bias = false)(x) >> upsample(size = 10))",
    "pad": "model m : tensor[4, 5, 5] = pad(2, 1) >> maxpool(1, 2) >> pad(1, 0, axis = -1, "
           "value = 0.5) >> conv(3) >> gap >> pad(0, 2, axis = -1)",
    "squeeze_excite": "model m : tensor[4, 5, 5] = (x) => x * (x >> gap >> linear(4) >> "
                      "sigmoid >> unsqueeze(-1) >> unsqueeze(3)) >> unsqueeze(1) >> squeeze(1) "
                      ">> gap >> unsqueeze(1) >> squeeze(-2)",
    "activations": "model m : tensor[3, 4, 4] = (x) => concat(gelu(x), gelu(tanh = true)(x), "
                   "clip(-0.5, 0.25)(x), leaky_relu(0.2)(x), relu6(x * 8), silu(x), "
                   "hardswish(x * 4)) >> softmax(axis = 1)",
    "attention": "model m : sequence[8] = (x) => let q = linear(8)(x) >> reshape([2, 4]) >> "
                 "permute([1, 0, 2]) in let w = causal_mask(matmul(q, q >> permute([0, 2, 1])) "
                 "/ param([2, 1, 1], init = uniform(1, 2))) >> softmax(axis = -1) in "
                 "matmul(w, q) >> permute([1, 0, 2]) >> reshape([-1]) >> linear(3)",
    "permute": "model m : tensor[6, 5] = permute([1, 0]) >> linear(3) >> permute([1, 0]) >> "
               "reshape([-1]) >> linear(2)",
    "generated": "model m : tensor[4, 5, 5] = (x) => let z = param([4, 2]) in "
                 "conv(6, 3, weight = z >> linear(54) >> reshape([6, 4, 3, 3]) >> "
                 "permute([0, 1, 3, 2]))(x) >> gap >> linear(2, weight = "
                 "param([2, 6], init = uniform(-0.5, 0.5)))",
    "reshape_sequence": "model m : sequence[12] = reshape([3, -1]) >> softmax >> "
                        "reshape([12]) >> linear(2)",
    "scan": "model m : sequence[3] = lstm(4) >> scan((x, h) => (x + h, h * 0.5 + x), "
            "state = [4], reverse = true) >> rnn(2)",
    # the convolution family in 1 and 3 dimensions, with per-axis, dilated, uneven and causal
    # windows; channels-last sequences; norms and linear maps over named axes
    "conv_1d": "model m : tensor[3, 11] = conv(4, 3, 2, bias = false) >> conv(6, 4, "
               "pad = \"same\", dilation = 2, groups = 2) >> conv(5, 2, pad = [[2, 0]]) >> bn >> "
               "maxpool(3, 1, 1, dilation = 2) >> avgpool(2) >> gap >> linear(3)",
    "conv_2d_rect": "model m : tensor[3, 9, 8] = conv(4, (1, 7), pad = (0, 3)) >> "
                    "conv(4, (3, 2), (2, 1), pad = [1, [1, 0]], dilation = (1, 2)) >> "
                    "conv(4, (2, 3), pad = \"same\") >> maxpool((3, 2), (2, 1), ceil = true) >> "
                    "avgpool((1, 3), 1, (0, 1), count_pad = true) >> conv(2, (3, 1), pad = "
                    "[\"causal\", \"valid\"])",
    "conv_3d": "model m : tensor[2, 5, 6, 7] = conv(4, (3, 1, 3), (1, 2, 1)) >> bn >> relu >> "
               "maxpool(2, ceil = true) >> conv_transpose(3, (2, 3, 2), (2, 1, 2), (0, 1, 0), "
               "(1, 0, 0), dilation = (1, 2, 1)) >> upsample((1, 2, 2), \"trilinear\") >> "
               "avgpool(2) >> upsample(size = (3, 4, 2)) >> gap >> linear(2)",
    "signal_causal": "model m : signal[3] = conv(5, 3, pad = \"causal\", dilation = 2) >> relu "
                     ">> conv(4, 2, pad = \"causal\") >> bn >> maxpool(3, 1, 1) >> "
                     "conv_transpose(4, 3, 1, 1) >> upsample(1, \"linear\") >> "
                     "pad(2, 0, axis = \"T\") >> conv(3, 3, pad = 0) >> linear(2, axis = \"C\")",
    "sequence_conv": "model m : sequence[4] = conv(6, 3, pad = \"causal\") >> bn >> relu >> "
                     "avgpool(3, 1, 1) >> conv(5, 1) >> layernorm",
    "fixed_sequence": "model m : sequence[4, 7] = conv(6, 3, 2) >> maxpool(2, ceil = true) >> "
                      "bn >> upsample(3, \"linear\", align_corners = true) >> gap >> linear(2)",
    "fixed_length_attention": "model m : sequence[8, 5] = transformer_block(8, 2, 16, drop = 0.0) "
                              ">> mha(2, 8, causal = true) >> gap >> linear(2)",
    "broadcast_concat": "model m : sequence[6] = (x) => let y = concat(param([1, 6]), x, "
                        "param([2, 1]) * param([6]), axis = \"T\") + param([6]) in "
                        "concat(param([1, 2]), y, axis = -1) >> linear(2)",
    "reductions": "model m : sequence[6] = (x) => concat(reduce_mean(\"T\")(x), "
                  "reduce_max(\"T\")(x), reduce_sum(-1, keep = true)(x) >> reduce_mean(1), "
                  "axis = -1) >> linear(2)",
    "stochastic_depth": "model m : tensor[3, 4, 4] = residual(conv(3), drop = 0.2) >> "
                        "stochastic_depth(0.1, mode = \"batch\") >> gap",
    "masks": "model m : tokens[9] = (t) => let x = embedding(9, 8)(t) in "
             "transformer_block(8, 2, 16, drop = 0.0)(x, pad_mask(0)(t)) >> "
             "((y) => cross_mha(2, 8)(y, x, pad_mask(3)(t)))",
    "named_axes": "model m : tensor[4, 5, 6] = layernorm(axis = \"C\") >> linear(6, axis = "
                  "\"C\") >> permute([1, 2, 0]) >> linear(3) >> layernorm >> "
                  "permute([2, 0, 1]) >> conv_transpose(2, (2, 1)) >> upsample(size = [7, 3], "
                  "mode = \"bilinear\") >> softmax(axis = \"C\") >> slice(\"H\", 1, 4) >> "
                  "concat(identity, identity, axis = \"W\") >> flatten >> linear(2)",
}


@pytest.mark.parametrize("opset", [13, 16, 17, 21])
def test_layernorm_before_and_after_its_onnx_op(opset: int) -> None:
    m = ssnc.loads(OP_CASES["layernorm"], "op.ssn").model()
    proto = m.to_onnx(seed=2, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert_parity(m, proto, seed=2)


@pytest.mark.parametrize("opset,flat,ir", [(13, True, 7), (13, False, 8), (17, False, 8),
                                           (18, True, 8), (21, False, 10)])
def test_the_ir_version_is_the_oldest_that_carries_the_opset(opset: int, flat: bool,
                                                            ir: int) -> None:
    """Older runtimes load the file: IR 7 for opset 13 (8 with functions, which need it)."""
    m = ssnc.loads("def block = conv(4) >> bn >> relu\nmodel m : tensor[3, 6, 6] = block >> "
                   "block >> gap >> (linear(6) >> layernorm)", "op.ssn").model()
    proto = m.to_onnx(seed=1, opset=opset, flat=flat)
    assert proto.ir_version == ir and bool(proto.functions) != flat
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == opset
    assert_parity(m, proto, seed=1)


def test_every_op_has_a_parity_case() -> None:
    """Each case runs in both backends and compares them: together they cover every op."""
    seen = {n.op for text in OP_CASES.values() for n in ssnc.loads(text, "op.ssn").model().ir}
    wanted = {name for name, op in OPS.items()
              if not op.passthrough and not op.source and op.origin is None}
    assert wanted <= seen, sorted(wanted - seen)


def test_the_convolution_family_has_a_parity_case_at_every_rank() -> None:
    """Each sliding op is run over 1, 2 and 3 axes, and over a sequence's time axis
    (channels last)."""
    seen = {(n.op, roles_of(m.ir[n.inputs[0]].shape or ())) for text in OP_CASES.values()
            for m in [ssnc.loads(text, "op.ssn").model()] for n in m.ir if n.inputs}
    family = ("conv", "conv_transpose", "maxpool", "avgpool", "gap", "upsample", "bn")
    for op in family:
        for layouts in (("NCL", "NCT"), ("NCHW",), ("NCDHW",), ("NTC",)):
            if op == "conv_transpose" and layouts == ("NTC",):
                continue
            assert any((op, r) in seen for r in layouts), (op, layouts)


@pytest.mark.parametrize("case", sorted(OP_CASES))
@pytest.mark.parametrize("flat", [False, True], ids=["functions", "flat"])
def test_op_parity(case: str, flat: bool) -> None:
    m = ssnc.loads(OP_CASES[case], "op.ssn").model()
    proto = m.to_onnx(seed=1, flat=flat)
    onnx.checker.check_model(proto, full_check=True)
    assert_parity(m, proto, seed=1)


SHIPPED = [(spec, name) for spec in sorted(SPECS.glob("*.ssn"))
           for name in ssnc.load(spec).models]


@pytest.mark.parametrize("spec,name", SHIPPED, ids=[f"{s.stem}" for s, _ in SHIPPED])
def test_shipped_spec_in_both_forms(spec: Path, name: str) -> None:
    m = ssnc.load(spec).model(name, **SMALL.get(spec.stem, {}))
    outs = {}
    for flat in (False, True):
        proto = m.to_onnx(flat=flat)
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in [*inferred.graph.value_info, *inferred.graph.output]}
        top = [n for n in m.ir if not n.is_source]
        present = [n for n in top if n.name in shapes]
        for node in present:  # ONNX cannot infer a ConstantOfShape's dims (`unk__`): skip those
            for got, want in zip(shapes[node.name], node.shape or (), strict=True):
                if not (isinstance(got, str) and got.startswith("unk__")):
                    assert got == want, node.name
        assert len(present) >= (len(top) if flat else len(m.ir.outputs))
        assert_parity(m, proto)
        xs = example_inputs(m.ir, batch=3)
        outs[flat] = session(proto).run(None, {n: x.numpy() for n, x in zip(m.ir.inputs, xs,
                                                                            strict=True)})[0]
    np.testing.assert_array_equal(outs[False], outs[True])


def test_hierarchy_one_function_per_depth_and_node_metadata() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10, C=4)
    proto = m.to_onnx(flat=False)
    names = [f.name for f in proto.functions]
    assert "stage" in names and "unit" in names
    fractal_docs = " ".join(f.doc_string for f in proto.functions if f.name.startswith("fractal"))
    for c in (1, 2, 3, 4):
        assert f"fractal(C={c}," in fractal_docs
    assert [n.op_type for n in proto.graph.node][:5] == ["stage"] * 5
    assert [n.name for n in proto.graph.node][:2] == ["stage1", "stage2"]
    flat = m.to_onnx()  # the default: every runtime loads it
    assert not flat.functions and not any(n.domain for n in flat.graph.node)
    conv = next(n for n in flat.graph.node if n.name == "stage2.fractal.col3.unit2.conv")
    (source,) = [p.value for p in conv.metadata_props if p.key == "ssnc.source"]
    assert source == "fractalnet.ssn:8:18"  # the file by name: the same from any folder
    props = {p.key: p.value for p in proto.metadata_props}
    spec_hash = hashlib.sha256((SPECS / "fractalnet.ssn").read_bytes()).hexdigest()
    assert props["ssnc.spec_sha256"] == spec_hash
    assert props["ssnc.version"] == ssnc.__version__ and props["ssnc.model"] == "fractalnet"


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_every_node_names_its_place_in_the_spec(spec: Path) -> None:
    """Every node of every graph (Scan bodies and functions too) carries `ssnc.source`."""
    proto = ssnc.load(spec).model(**SMALL.get(spec.stem, {})).to_onnx(flat=False)
    nodes = [n for g in all_graphs(proto) for n in g.node]
    nodes += [n for f in proto.functions for n in f.node]
    missing = [n.name for n in nodes
               if not any(p.key == "ssnc.source" and ".ssn:" in p.value
                          for p in n.metadata_props)]
    assert nodes and not missing


def test_initializers_are_bit_identical_to_torch() -> None:
    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    proto = m.to_onnx(seed=5)
    state = m.to_torch(seed=5).state_dict()
    for init in proto.graph.initializer:
        assert np.array_equal(onnx.numpy_helper.to_array(init), state[init.name].numpy())
    assert len(proto.graph.initializer) == sum(
        1 for k in state if not k.endswith("num_batches_tracked"))


def test_dynamic_sequence_length() -> None:
    m = ssnc.loads("model lm : tokens[20] = embedding(20, 8) >> linear(8) >> relu >> "
                   "linear(20)").model()
    sess = session(m.to_onnx())
    for steps in (3, 9):
        x = torch.randint(0, 20, (2, steps))
        np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0],
                                   torch_eval(m, x)[0], rtol=1e-4, atol=1e-5)


def test_column_matches_torch_column() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10, widths=[8, 8], drops=[0.0, 0.1])
    for k in (1, 3):
        col = m.column(k)
        assert_parity(col, m.to_onnx(column=k), batches=(2,))


def _compile(args: list[str],
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "ssnc")
    return subprocess.run([exe, "compile", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def test_byte_identical_across_runs_and_hash_seeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    outs = []
    for i, hashseed in enumerate(("0", "12345")):
        out = tmp_path / f"m{i}.onnx"
        proc = _compile([str(SPECS / "fractalnet_digits.ssn"), "--to", "onnx", "-o", str(out)],
                        {"PYTHONHASHSEED": hashseed})
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_onnx_path_does_not_import_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.onnx"
    code = ("import sys; from ssnc.cli import app; sys.argv = ['ssnc', 'compile', "
            f"{str(SPECS / 'nin_cifar10.ssn')!r}, '--to', 'onnx', '-o', {str(out)!r}]\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 3_000_000


def test_weights_round_trip_after_training(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS / "fractalnet_digits.ssn"
    m = ssnc.load(spec).model()
    net = m.to_torch(seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(16, 1, 8, 8, generator=gen)
        loss = torch.nn.functional.cross_entropy(net(x), torch.randint(0, 10, (16,),
                                                                         generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for path in (tmp_path / "w.pt", tmp_path / "w.npz", tmp_path / "w.safetensors"):
        arrays = {k: v.numpy() for k, v in net.state_dict().items()}
        if path.suffix == ".pt":
            torch.save(net.state_dict(), path)
        elif path.suffix == ".npz":
            np.savez(path, **arrays)
        else:
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))
        out = tmp_path / "trained.onnx"
        result = runner.invoke(app, ["compile", str(spec), "--to", "onnx", "--weights",
                                     str(path), "-o", str(out)])
        assert result.exit_code == 0, result.output
        x = torch.randn(3, 1, 8, 8)
        net.eval()
        with torch.no_grad():
            ref = net(x).numpy()
        got = session(onnx.load(str(out))).run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        net.train()


def test_bad_weights_write_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{"linear.weight": np.zeros((3, 3), np.float32)})
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "nin_cifar10.ssn"), "--to", "onnx",
                                 "--weights", str(bad), "-o", str(out)])
    assert result.exit_code == 1 and "error[E0602]" in result.stderr
    assert "missing: nin.stage1.mlpconv.conv1.weight" in result.stderr
    assert "unexpected: linear.weight" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_large_models_use_external_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "nin.onnx"
    result = runner.invoke(app, ["compile", str(SPECS / "nin_cifar10.ssn"), "--to", "onnx",
                                 "-o", str(out), "--external-data-threshold", "1000000"])
    assert result.exit_code == 0, result.output
    (data,) = tmp_path.glob("nin.onnx.*.data")
    assert data.stat().st_size > out.stat().st_size
    assert data.name in result.output
    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 32, 32)
    np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0], torch_eval(m, x)[0],
                               rtol=1e-4, atol=1e-5)


def test_a_column_compiles_from_the_full_models_trained_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS / "fractalnet_digits.ssn"
    m = ssnc.load(spec).model()
    net = m.to_torch(seed=3)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)  # stands in for training
    full = tmp_path / "full.pt"
    torch.save(net.state_dict(), full)
    column = m.to_torch(column=3)
    column.load_state_dict(net.state_dict(), strict=False)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        ref = column.eval()(x).numpy()
    for target in ("onnx", "torch"):
        out = tmp_path / f"deepest.{target}"
        result = runner.invoke(app, ["compile", str(spec), "--to", target, "--column", "3",
                                     "--weights", str(full), "-o", str(out)])
        assert result.exit_code == 0, result.output
        if target == "onnx":
            got = session(onnx.load(str(out))).run(None, {"input": x.numpy()})[0]
        else:
            got = torch.export.load(str(out)).module()(x).detach().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
