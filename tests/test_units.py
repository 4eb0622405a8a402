"""Rule instances emitted as units (`generate_source(graph, units=...)`): a chosen region is
a submodule whose own forward computes it, called as one step of the model's, with drop-path's
decisions passed down. The state-dict keys and every output (eval, one draw per batch,
per-sample masks) are those of the default module; a unit's forward hooks fire once per
call, which is what FSDP2 and checkpointing by region rely on. Off by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ssnc
from ssnc.backends.torch import build_module, example_input, generate_source, load_tensors
from ssnc.compiler.initializers import initial_state
from ssnc.compiler.ir import Graph, Region
from tests.conftest import SPECS


def _pair(graph: Graph, units: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    plain = build_module(graph)
    split = build_module(graph, units=units)  # type: ignore[arg-type]
    state = initial_state(graph, seed=0)
    load_tensors(plain, state)
    load_tensors(split, state)
    return plain, split


def _stages(region: Region) -> bool:
    return region.scope.rule == "stage"


def test_fractal_stages_as_units_compute_what_the_model_does() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, classes=10, widths=[4, 4, 8, 8, 8])
    source = generate_source(m.ir, units=_stages)
    assert "class Stage(nn.Module):" in source and "self.stage1(x, keep=keep, need=need)" in source
    assert generate_source(m.ir) == generate_source(m.ir, units=None)  # off by default
    plain, split = _pair(m.ir, _stages)
    assert list(plain.state_dict()) != [] and set(plain.state_dict()) == set(split.state_dict())
    x = example_input(m.ir, batch=4)
    plain.eval(), split.eval()
    with torch.no_grad():
        torch.testing.assert_close(split(x), plain(x), rtol=0, atol=0)
    draws = plain.ssnc_drop_path
    for ratio in (0.0, 1.0, 0.5):  # local, global, mixed draws
        draws.global_ratio = ratio
        plan = draws.draw(4)
        with torch.no_grad():
            torch.testing.assert_close(split.forward_dropping(x, plan.keep),
                                       plain.forward_dropping(x, plan.keep), rtol=0, atol=0)
    draws.mode = "sample"  # per-sample masks, as drop_mode="sample" draws them
    masks = draws.draw(4).masks
    with torch.no_grad():
        torch.testing.assert_close(split.forward_masked(x, masks), plain.forward_masked(x, masks),
                                   rtol=0, atol=0)


def test_a_unit_that_ends_at_its_own_join_takes_the_draws_in_every_mode() -> None:
    """A `fractal(...)` instance as a unit: its last member is its droppable join, so the
    model must call the unit (passing this batch's draw down), not compute the join."""
    spec = ("def unit(w) = conv(w, 3, bias = false) >> bn >> relu\n"
            "model net : tensor[3, 8, 8] = fractal(3, unit(8), drop_path = 0.3) >> maxpool(2)"
            " >> fractal(2, unit(16), drop_path = 0.3) >> gap >> linear(10)\n")
    m = ssnc.loads(spec, "m.ssn").model()
    source = generate_source(m.ir, units=lambda r: r.scope.rule == "fractal")
    assert "self.fractal1(x, keep=keep, need=need)" in source
    plain, split = _pair(m.ir, lambda r: r.scope.rule == "fractal")
    x = example_input(m.ir, batch=4)
    draws = plain.ssnc_drop_path
    for ratio in (0.0, 1.0, 0.5):
        draws.global_ratio = ratio
        for _ in range(4):
            keep = draws.draw(4).keep
            with torch.no_grad():
                torch.testing.assert_close(split.train().forward_dropping(x, keep),
                                           plain.train().forward_dropping(x, keep),
                                           rtol=0, atol=0)
    draws.mode = "sample"
    masks = draws.draw(4).masks
    with torch.no_grad():
        torch.testing.assert_close(split.forward_masked(x, masks), plain.forward_masked(x, masks),
                                   rtol=0, atol=0)


def test_a_units_forward_runs_as_one_call() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=2, classes=10, widths=[4, 4, 8, 8, 8])
    _, split = _pair(m.ir, _stages)
    calls: list[str] = []
    for name in ("stage1", "stage3"):
        split.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: calls.append(name))
    split.train()
    split(example_input(m.ir, batch=2))  # a training step: drop-path draws, units take them
    split.eval()
    split(example_input(m.ir, batch=2))
    assert calls == ["stage1", "stage3", "stage1", "stage3"]


HMRNN = ("model lm(vocab = 20) : tokens[vocab] = embedding(vocab, 8) >> "
         "hmrnn(layers = 2, dim = 8, out_dim = 8) >> linear(vocab)\n")


@pytest.mark.parametrize(("spec", "options", "rule"), [
    (HMRNN, {}, "hmrnn"),  # a loop inside the unit
    ("unet.ssn", {"size": 64, "width": 4}, "level"),  # nested levels, skip connections
    ("rir_cifar.ssn", {}, "stage"),  # two streams in, two out
])
def test_other_models_with_units_equal_the_default(spec: str, options: dict[str, int],
                                                   rule: str) -> None:
    program = ssnc.load(SPECS / spec) if spec.endswith(".ssn") else ssnc.loads(spec, "m.ssn")
    m = program.model(**options)
    chosen: list[str] = []

    def pick(region: Region) -> bool:
        if region.scope.rule == rule:
            chosen.append(region.prefix)
            return True
        return False

    plain, split = _pair(m.ir, pick)
    assert chosen, f"no `{rule}` region in {spec}"
    assert set(plain.state_dict()) == set(split.state_dict())
    x = example_input(m.ir, batch=2, steps=6)
    plain.eval(), split.eval()
    with torch.no_grad():
        want, got = plain(x), split(x)
    for a, b in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_a_region_sharing_weights_with_the_rest_is_not_a_unit(tmp_path: Path) -> None:
    """`shared(...)` weights read in two regions stay in one unit: neither region alone is
    one (the model computes them inline, and still equals the default)."""
    spec = ("def block(w) = conv(w, 3) >> relu\n"
            "model m : tensor[3, 8, 8] = let b = shared(block(3)) in b >> b >> gap >> linear(2)\n")
    m = ssnc.loads(spec, "m.ssn").model()
    assert generate_source(m.ir, units=lambda r: r.scope.rule == "block") == (
        generate_source(m.ir))  # neither instance can be a unit
    plain, split = _pair(m.ir, lambda r: r.scope.rule == "block")
    x = example_input(m.ir, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(split.eval()(x), plain.eval()(x))


def test_instances_equal_up_to_numbers_share_a_class() -> None:
    """FractalNet's `unit` instances are two classes (with and without a dropout module), each
    constructed with its instance's numbers; the state-dict keys are the IR's names."""
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, classes=10, widths=[4, 4, 8, 8, 8])
    source = generate_source(m.ir)
    assert source.count("(nn.Module):\n    \"\"\"unit(") == 2
    assert "class Unit(nn.Module)" in source and "class Unit2(nn.Module)" in source
    assert "_put(self, 'stage1.fractal.col3.unit1', Unit(3))" in source
    assert "_put(self, 'stage2.fractal.col3.unit1', Unit2(4, 4, 0.1))" in source
    assert "nn.BatchNorm2d(n2, " in source  # the conv's outputs and the norm's channels: one


POOLS = """
def blk(k) = conv(4, 3) >> relu >> avgpool(k, 1)
model m : tensor[3, 9, 9] = blk(2) >> blk(3) >> blk(2) >> gap >> linear(2)
"""


def test_numbers_in_the_forward_are_kept_on_the_instance() -> None:
    """Pool windows differ in the forward: one class stores them (`self._n2`), and the model
    still equals ONNX Runtime on the same weights."""
    import numpy as np

    from tests.conftest import ort_output

    m = ssnc.loads(POOLS, "p.ssn").model()
    source = generate_source(m.ir)
    assert source.count("class Blk") == 1 and "self._n2 = n2" in source
    assert "Blk(3, 2)" in source and "Blk(4, 3)" in source
    net = m.to_torch(seed=0).eval()
    x = example_input(m.ir, batch=3)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(ort_output(m.to_onnx(seed=0), x.numpy()), want, rtol=1e-5,
                               atol=1e-6)


def test_a_structural_difference_keeps_classes_apart() -> None:
    """A dropout of rate 0 makes no module; one of rate 0.1 does: two classes."""
    spec = ("def blk(p) = conv(4, 3) >> relu >> dropout(p)\n"
            "model m : tensor[4, 8, 8] = blk(0.0) >> blk(0.1) >> blk(0.2) >> gap >> linear(2)\n")
    source = generate_source(ssnc.loads(spec, "d.ssn").model().ir)
    assert "class Blk(nn.Module)" in source and "class Blk2(nn.Module)" in source
    assert "Blk2(0.1)" in source and "Blk2(0.2)" in source and "Blk()" in source
