"""PyTorch backend: fidelity to the papers, drop-path semantics, columns, outputs."""

from __future__ import annotations

import ast as pyast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from typer.testing import CliRunner

import ssnc
from ssnc.backends.torch import LOWERINGS, example_inputs
from ssnc.cli import app
from ssnc.compiler.ops import OPS
from tests.conftest import SMALL, SPECS

runner = CliRunner()


def model(text: str, **params: object) -> ssnc.Model:
    return ssnc.loads(text, "t.ssn").model(**params)  # type: ignore[arg-type]


def test_every_lowered_op_has_a_torch_lowering() -> None:
    """Each of ssnc's own ops is lowered once: by the lowering declared with it (the
    activations, declared through the public op API) or by this backend's table."""
    wanted = {name for name, op in OPS.items()
              if not op.passthrough and not op.source and op.origin is None}
    declared = {name for name in wanted if "torch" in OPS[name].lowerings}
    assert declared >= {"relu", "sigmoid", "tanh", "gelu", "clip", "leaky_relu"}
    table = wanted - declared
    assert table == set(LOWERINGS), sorted(table ^ set(LOWERINGS))  # no dead rows either


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_forward_and_backward_of_every_shipped_spec(spec: Path) -> None:
    program = ssnc.load(spec)
    for name in program.models:
        m = program.model(name, **SMALL.get(spec.stem, {}))
        net = m.to_torch(seed=0)
        assert sum(p.numel() for p in net.parameters()) == m.total_params
        xs = example_inputs(m.ir, batch=2)
        net.train()
        outs = net(*xs)
        outs = outs if isinstance(outs, tuple) else (outs,)  # named outputs: every one
        steps = {d: n for name, x in zip(m.ir.inputs, xs, strict=True)
                 for d, n in zip(m.ir[name].shape or (), x.shape, strict=True)}
        for out, name in zip(outs, m.ir.outputs, strict=True):
            want = m.ir[name].shape or ()
            assert out.shape == tuple(steps.get(d, d) for d in want)
        sum(out.square().mean() for out in outs).backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        net.eval()
        with torch.no_grad():
            last = net(*xs)
            assert all(torch.isfinite(t).all()
                       for t in (last if isinstance(last, tuple) else (last,)))


def test_parameter_counts_in_torch_match_the_papers() -> None:
    net = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10).to_torch()
    assert sum(p.numel() for p in net.parameters()) == 33_724_618
    nin = ssnc.load(SPECS / "nin_cifar10.ssn").model().to_torch()
    assert sum(p.numel() for p in nin.parameters()) == 966_986


def test_eval_output_is_the_mean_of_columns_computed_by_hand() -> None:
    m = model("model f : tensor[2, 5, 5] = fractal(3, conv(2, 3) >> relu)")
    net = m.to_torch(seed=3).eval()
    sd = net.state_dict()

    def unit(col: int, pos: int, x: torch.Tensor) -> torch.Tensor:
        key = f"fractal.col{col}.base{pos}.conv"
        return torch.relu(F.conv2d(x, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=1))

    x = torch.randn(3, 2, 5, 5)
    join1 = (unit(3, 2, unit(3, 1, x)) + unit(2, 1, x)) / 2
    expected = (unit(3, 4, unit(3, 3, join1)) + unit(2, 2, join1) + unit(1, 1, x)) / 3
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-6, atol=1e-6)
    nested = (unit(3, 4, unit(3, 3, join1)) + unit(2, 2, join1)) / 2
    assert not torch.allclose((nested + unit(1, 1, x)) / 2, expected)  # merged != nested


def test_state_dict_keys_are_scope_paths_and_deterministic() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10, widths=[8, 8], drops=[0.0, 0.1])
    a, b = m.to_torch(seed=1).state_dict(), m.to_torch(seed=1).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "stage2.fractal.col3.unit2.conv.weight" in a
    assert "stage1.fractal.col1.unit1.bn.running_var" in a
    c = m.to_torch(seed=2).state_dict()
    assert not torch.equal(a["linear.weight"], c["linear.weight"])
    # values depend on the key and seed only, not on the model around them
    other = model("model o : tensor[3, 4, 4] = conv(8) >> flatten >> linear(10)")
    assert other.initial_weights(1)["linear.weight"].shape == (10, 128)
    assert np.array_equal(m.initial_weights(1)["stage1.fractal.col1.unit1.conv.weight"],
                          a["stage1.fractal.col1.unit1.conv.weight"].numpy())


def test_initializer_matches_torch_defaults_in_distribution() -> None:
    w = ssnc.load(SPECS / "nin_cifar10.ssn").model().initial_weights(0)
    weight = w["nin.stage1.mlpconv.conv1.weight"]  # fan_in = 3 * 5 * 5
    bound = 1 / np.sqrt(75)
    assert weight.dtype == np.float32 and np.abs(weight).max() <= bound
    assert np.abs(weight).max() > 0.95 * bound
    assert abs(weight.std() - bound / np.sqrt(3)) < 0.01


def test_shared_weights_are_one_module_applied_many_times() -> None:
    m = model("model m : tensor[4, 3, 3] = unrolled(conv(4) >> relu >> conv(4), 3)")
    net = m.to_torch()
    assert sum(p.numel() for p in net.parameters()) == m.total_params == 2 * (4 * 4 * 9 + 4)
    calls: list[str] = []
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(lambda *_, n=name: calls.append(n))
    net(torch.randn(1, 4, 3, 3))
    assert len(calls) == 6 and len(set(calls)) == 2


def test_named_wires_and_two_streams_lower() -> None:
    m = model("model m : tensor[4, 3, 3] = (x) => let s = rir_layer(4)(x, relu(x)) in "
              "concat(s[0], s[1]) >> gap")
    net = m.to_torch().eval()
    with torch.no_grad():
        assert net(torch.randn(2, 4, 3, 3)).shape == (2, 8)


# ------------------------------------------------------------ drop-path

FRACTAL4 = "model f(p = 0.15) : tensor[2, 4, 4] = fractal(4, conv(2) >> relu, drop_path = p)"


def test_local_drop_path_keep_rate_and_never_all_dropped() -> None:
    net = model(FRACTAL4).to_torch(global_ratio=0.0, drop_seed=7)
    dp = net.ssnc_drop_path
    kept, total = 0, 0
    for _ in range(2000):
        for flags in dp.draw(8).keep:
            assert any(flags)
            kept += sum(flags)
            total += len(flags)
    # keep rate 1 - p = 0.85, nudged up by the "at least one kept" rule on 2-input joins
    assert 0.84 < kept / total < 0.88


def test_global_drop_path_picks_each_column_evenly_and_once_per_network() -> None:
    m = model("model f : tensor[2, 4, 4] = fractal(3, conv(2), drop_path=0.1) >> "
              "fractal(3, conv(2), drop_path=0.1)")
    dp = m.to_torch(global_ratio=1.0, drop_seed=1).ssnc_drop_path
    counts = {1: 0, 2: 0, 3: 0}
    for _ in range(3000):
        keep = dp.draw(4).keep
        pairs = list(zip(dp.joins, keep, strict=True))
        chosen = {cols[flags.index(True)] for (_, cols, _), flags in pairs if sum(flags) == 1}
        assert len(chosen) == 1  # one column for the whole network
        column = chosen.pop()
        for (_, cols, _), flags in pairs:  # a join off that column keeps all its inputs
            assert sum(flags) == 1 if column in cols else all(flags)
        counts[column] += 1
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values())


def test_per_sample_masks() -> None:
    dp = model(FRACTAL4).to_torch(drop_mode="sample", drop_seed=3).ssnc_drop_path
    plan = dp.draw(64)
    assert plan.per_sample and len(plan.masks) == 4
    for mask in plan.masks:
        assert mask.shape[0] == 64
        assert bool((mask[32:].sum(1) >= 1).all())  # local samples keep at least one input
        # global samples keep their column only, or, off its path, every input
        assert bool(((mask[:32].sum(1) == 1) | (mask[:32] == 1).all(1)).all())
    final = plan.masks[-1]  # every column reaches the 4-input join
    assert bool((final[:32].sum(1) == 1).all())
    chosen = final[:32].argmax(1)
    assert len(set(chosen.tolist())) > 1  # one column per sample, not one per batch


def test_global_drop_path_skips_other_columns_and_equals_the_column_network() -> None:
    m = model(FRACTAL4)
    net = m.to_torch(seed=5)
    called: list[str] = []
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(lambda *_, n=name: called.append(n))
    x = torch.randn(2, 2, 4, 4)
    for column in (1, 2, 4):
        called.clear()
        keep = net.ssnc_drop_path._global_keep(column)
        out = net.forward_dropping(x, keep)
        assert len(called) == 2 ** (column - 1)
        assert {n.split(".")[1] for n in called} == {f"col{column}"}
        alone = m.to_torch(seed=5, column=column)
        torch.testing.assert_close(out, alone(x))


def test_local_drop_path_means_over_survivors_and_skips_dropped_segments() -> None:
    m = model("model f : tensor[2, 4, 4] = fractal(2, conv(2), drop_path=0.5)")
    net = m.to_torch(seed=0)
    sd = net.state_dict()
    x = torch.randn(1, 2, 4, 4)

    def conv(key: str, v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, sd[f"fractal.{key}.weight"], sd[f"fractal.{key}.bias"], padding=1)

    deep = conv("col2.base2.conv", conv("col2.base1.conv", x))
    shallow = conv("col1.base1.conv", x)
    torch.testing.assert_close(net.forward_dropping(x, ((True, True),)), (deep + shallow) / 2)
    torch.testing.assert_close(net.forward_dropping(x, ((False, True),)), shallow)
    torch.testing.assert_close(net.forward_dropping(x, ((True, False),)), deep)


def test_eval_and_no_drop_path_mode_use_every_column() -> None:
    m = model(FRACTAL4)
    net = m.to_torch(seed=0, drop_mode=ssnc.DropMode.OFF)
    net.train()
    x = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(net(x), net.eval()(x))


def test_column_option_validation() -> None:
    m = model(FRACTAL4)
    with pytest.raises(ssnc.SsnError) as info:
        m.column(5)
    assert info.value.code == "E0601" and "1 (shallowest) to 4 (deepest)" in info.value.render()
    with pytest.raises(ssnc.SsnError):
        model("model m : tensor[3] = relu").column(1)
    deepest = m.column(4)
    assert sum(1 for n in deepest.ir if n.op == "conv") == 8
    assert not any(n.op == "mean" for n in deepest.ir)


def test_trained_weights_load_into_a_column() -> None:
    m = model(FRACTAL4)
    full = m.to_torch(seed=0)
    with torch.no_grad():
        for p in full.parameters():
            p.add_(0.5)
    col = m.to_torch(column=4)
    missing, unexpected = col.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected


# ------------------------------------------------------------ compile and outputs

def test_torch_compile_has_no_graph_break_in_eval(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    net = ssnc.load(SPECS / "fractalnet.ssn").model(
        classes=10, widths=[8, 8], drops=[0.0, 0.1], C=3).to_torch().eval()
    import torch._dynamo

    explanation = torch._dynamo.explain(net)(torch.randn(2, 3, 32, 32))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


def _import(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generated_model", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_source_is_standalone_and_identical(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "fractalnet.ssn")
    out = tmp_path / "net.py"
    result = runner.invoke(app, ["compile", spec, "--to", "python", "-o", str(out),
                                 "--set", "widths=[8,16]", "--set", "drops=[0.0,0.1]",
                                 "--set", "classes=10"])
    assert result.exit_code == 0, result.output
    tree = pyast.parse(out.read_text())
    imported = {a.name.split(".")[0] for n in pyast.walk(tree) if isinstance(n, pyast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in pyast.walk(tree)
                 if isinstance(n, pyast.ImportFrom) and n.module}
    assert imported <= {"torch", "typing", "__future__"}
    classes = [n.name for n in tree.body if isinstance(n, pyast.ClassDef)]
    assert classes.index("Unit") < classes.index("Fractalnet")  # one class per rule instance
    assert '"""unit(w=8, p=0.0)"""' in out.read_text()
    generated = _import(out).Fractalnet()
    assert type(generated.stage1.fractal.col3.unit1).__name__ == "Unit"
    reference = ssnc.load(spec).model(widths=[8, 16], drops=[0.0, 0.1],
                                      classes=10).to_torch(seed=4)
    generated.load_state_dict(reference.state_dict())
    x = torch.randn(3, 3, 32, 32)
    generated.eval(), reference.eval()
    with torch.no_grad():
        assert torch.equal(generated(x), reference(x))


def test_pt2_export_runs_at_other_batch_sizes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "nin.pt2"
    result = runner.invoke(app, ["compile", str(SPECS / "nin_cifar10.ssn"), "--to", "torch",
                                 "-o", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    program = torch.export.load(str(out)).module()
    reference = ssnc.load(SPECS / "nin_cifar10.ssn").model().to_torch(seed=3).eval()
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(program(x), reference(x), rtol=1e-5, atol=1e-5)


def test_weights_round_trip_and_bad_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "nin_cifar10.ssn")
    net = ssnc.load(spec).model().to_torch(seed=9)
    good = tmp_path / "good.pt"
    torch.save(net.state_dict(), good)
    loaded = ssnc.load(spec).model().to_torch(weights=good)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  loaded.state_dict().values(), strict=True))
    state = net.state_dict()
    state.pop("nin.conv.bias")
    state["nin.stage1.mlpconv.conv1.weight"] = torch.zeros(1, 2, 3)
    state["stray"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    out = tmp_path / "out.pt2"
    result = runner.invoke(app, ["compile", spec, "--to", "torch", "--weights", str(bad),
                                 "-o", str(out)])
    assert result.exit_code == 1
    assert "error[E0602]" in result.stderr
    for fragment in ("missing: nin.conv.bias [10]", "unexpected: stray [1]",
                     "mis-shaped: nin.stage1.mlpconv.conv1.weight is [1, 2, 3]"):
        assert fragment in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_compile_refuses_bad_options_and_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = str(SPECS / "fractalnet.ssn")
    for target, args, code in [
        ("python", ["--column", "9"], "E0601"), ("python", ["--set", "classez=3"], "E0601"),
        ("torch", ["--weights", str(tmp_path / "none.pt")], "E0602"),
        ("python", ["--weights", str(tmp_path / "none.pt")], "E0601"),
        ("torch", ["--flat"], "E0601"), ("python", ["--opset", "17"], "E0601"),
    ]:
        out = tmp_path / ("m.py" if target == "python" else "m.pt2")
        result = runner.invoke(app, ["compile", spec, "--to", target, "-o", str(out), *args])
        assert result.exit_code == 1 and f"error[{code}]" in result.stderr, result.output
        assert not out.exists()
    result = runner.invoke(app, ["compile", spec, "--to", "python", "-o",
                                 str(tmp_path / "no" / "dir" / "m.py")])
    assert result.exit_code == 1 and "error[E0603]" in result.stderr


def test_info_json_after_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = ssnc.load(SPECS / "fractalnet.ssn").model(classes=10).column(3)
    data = m.info(1)
    assert json.loads(json.dumps(data))["total_params"] == m.total_params < 33_724_618


@pytest.mark.parametrize("mode", ["batch", "sample", "off"])
def test_a_fractal_of_fractals_trains_in_every_drop_path_mode(mode: str) -> None:
    # the outer fractal owns the columns; the inner one is content of each column, its joins
    # drop locally (never globally) and are computed only when their column is
    for base in ("fractal(2, conv3x3(4), join = max)", "fractal(2, conv3x3(4)) >> relu"):
        m = model(f"model m : tensor[3, 8, 8] = conv(4) >> fractal(3, {base}) >> gap "
                  ">> linear(2)")
        outer = [n for n in m.ir.order() if n.input_columns]
        assert {max(n.input_columns) for n in outer} == {3}  # outer columns only
        inner = [n for n in m.ir.order() if n.op in ("max", "mean") and not n.input_columns]
        assert inner and all(n.column in (1, 2, 3) for n in inner)
        net = m.to_torch(seed=1, drop_mode=mode, drop_seed=3).train()
        torch.manual_seed(0)
        for _ in range(30):
            out = net(torch.randn(2, 3, 8, 8))
            out.sum().backward()
            assert torch.isfinite(out).all()
        deepest = m.to_torch(column=3)
        assert sum(p.numel() for p in deepest.parameters()) < m.total_params


def test_drop_mode_is_one_enum_distinct_from_the_rate() -> None:
    m = model("model f : tensor[2, 4, 4] = fractal(2, conv(2), drop_path = 0.5)")
    assert m.to_torch(drop_mode=ssnc.DropMode.SAMPLE).ssnc_drop_path.mode == "sample"
    assert m.to_torch(drop_mode="off").ssnc_drop_path.active is False
    with pytest.warns(DeprecationWarning, match="drop_mode"):
        assert m.to_torch(drop_path="sample").ssnc_drop_path.mode == "sample"
    with pytest.raises(ssnc.SsnError, match="drop_mode must be one of batch, sample, off"):
        m.to_torch(drop_mode="per-sample")
    assert "drop_mode: str = \"batch\"" in m.torch_source()


def test_checkpoints_saved_before_the_naming_separator_still_load(tmp_path: Path) -> None:
    m = model("model m : tensor[3, 8, 8] = conv3x3(4) >> conv3x3(4) >> gap >> linear(2)")
    module = m.to_torch(seed=3)
    old = {k.replace("conv3x3_", "conv3x3"): v + 1.0 for k, v in module.state_dict().items()}
    assert "conv3x31.conv.weight" in old and "conv3x3_1.conv.weight" not in old
    want = {k.replace("conv3x3", "conv3x3_"): v for k, v in old.items()}

    fresh = m.to_torch(seed=4)  # the generated module's load_state_dict renames
    assert str(fresh.load_state_dict(old)) == "<All keys matched successfully>"
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, want[key]), key

    torch.save(old, tmp_path / "old.pt")
    np.savez(tmp_path / "old.npz", **{k: v.numpy() for k, v in old.items()})
    for path in (tmp_path / "old.pt", tmp_path / "old.npz"):
        loaded = m.to_torch(weights=path).state_dict()
        assert torch.equal(loaded["conv3x3_2.bn.running_var"], want["conv3x3_2.bn.running_var"])
        onnx_model = m.to_onnx(weights=path)
        inits = {i.name for i in onnx_model.graph.initializer}
        assert "conv3x3_1.conv.weight" in inits and not any("conv3x31" in i for i in inits)


def test_step_is_exact_forward_and_straight_through_backward() -> None:
    m = model("model m : sequence[5] = (x) => step(hard_sigmoid(slope = 3.0)(x)) * x")
    net = m.to_torch().train()
    x = torch.tensor([[[-2.0, -0.1, 0.0, 0.1, 2.0]]], requires_grad=True)
    y = net(x)
    hard = torch.clamp((3.0 * x + 1) / 2, 0, 1)
    z = (hard > 0.5).float()
    assert torch.equal(y, z * x)  # exactly 0 or 1, so COPY-style gates keep values bit-equal
    assert set(net(torch.randn(2, 7, 5)).ne(0).float().unique().tolist()) <= {0.0, 1.0}
    y.sum().backward()
    # d/dx [step(h(x)) * x] = step(h) + x * h'(x): the step passes h's gradient through
    slope = ((3.0 * x.detach() + 1) / 2 > 0) & ((3.0 * x.detach() + 1) / 2 < 1)
    want = z + x.detach() * 1.5 * slope.float()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, want)
