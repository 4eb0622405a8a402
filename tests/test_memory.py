"""The memory estimate (`Model.memory`, `ssnc info --memory`) against what PyTorch does: the
bytes autograd keeps for backward, the peak of a training step and of inference as the
profiler measures them on the CPU, and each op's `saves` declaration."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch.profiler import ProfilerActivity, profile
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from ssnc.compiler.memory import kept_for_backward
from ssnc.compiler.ops import OPS
from ssnc.testing import autograd_kept
from tests.conftest import GOLDEN, SPECS

runner = CliRunner()
MIB = 2**20


def _classes(out: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class 0 over the last axis (every position, for a sequence)."""
    flat = out.reshape(-1, out.shape[-1])
    return F.cross_entropy(flat, torch.zeros(flat.shape[0], dtype=torch.long))


HMRNN = ("model lm(vocab = 50) : tokens[vocab] = embedding(vocab, 32) "
         ">> hmrnn(layers = 3, dim = 64, out_dim = 64, layer_norm = true) >> linear(vocab)\n")

CASES: dict[str, tuple[Callable[[], ssnc.Model], Callable[[], torch.Tensor],
                       Callable[[torch.Tensor], torch.Tensor]]] = {
    "fractalnet": (lambda: ssnc.load(SPECS / "fractalnet.ssn").model(
        C=3, classes=10, widths=[16, 32, 32, 64, 64]),
        lambda: torch.randn(16, 3, 32, 32), _classes),
    "nin": (lambda: ssnc.load(SPECS / "nin_cifar10.ssn").model(),
            lambda: torch.randn(8, 3, 32, 32), _classes),
    "hmrnn": (lambda: ssnc.loads(HMRNN).model(), lambda: torch.randint(0, 50, (8, 24)),
              _classes),
    "unet": (lambda: ssnc.load(SPECS / "unet.ssn").model(size=64, width=8),
             lambda: torch.randn(4, 3, 64, 64), lambda out: out.pow(2).mean()),
}
"""Each model at a small size, its input, and a loss (U-Net's: a dense one)."""


def _profiled_peak(run: Callable[[], object]) -> int:
    """The most bytes ``run`` holds at once beyond what existed before it (the profiler's
    CPU allocations and frees, in order)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                    key=lambda e: e.time_range.start)
    now = peak = 0
    for event in events:
        now += event.self_cpu_memory_usage
        peak = max(peak, now)
    return peak


def _nbytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _training_step_peak(net: torch.nn.Module, x: torch.Tensor,
                        loss: Callable[[torch.Tensor], torch.Tensor], optimizer: str) -> int:
    """A training step's peak as measured: the weights, optimizer state and input resident,
    then the profiled step (forward, loss, backward, step) after `zero_grad()`; the first
    step, which makes the optimizer's state, is run before."""
    params = list(net.parameters())
    opt = (torch.optim.Adam(params, lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(params, lr=1e-2, momentum=0.9))
    net.train()
    loss(net(x)).backward()
    opt.step()
    opt.zero_grad()
    state = _nbytes(t for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    resident = _nbytes(net.state_dict().values()) + state + _nbytes([x])

    def step() -> None:
        loss(net(x)).backward()
        opt.step()
    return resident + _profiled_peak(step)


def _estimate(name: str, **options: Any) -> tuple[ssnc.Model, torch.Tensor, Any]:
    make, data, _ = CASES[name]
    model, x = make(), data()
    steps = x.shape[1] if x.dtype == torch.long else None
    return model, x, model.memory(x.shape[0], steps=steps, device="cpu", **options)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("name", list(CASES))
def test_training_peak_is_within_a_quarter_of_the_profilers(
        name: str, optimizer: str, capsys: pytest.CaptureFixture[str]) -> None:
    model, x, found = _estimate(name, optimizer=optimizer)
    torch.manual_seed(0)
    measured = _training_step_peak(model.to_torch(0, drop_mode="off"), x, CASES[name][2],
                                   optimizer)
    with capsys.disabled():
        print(f"\n  memory, {name} ({optimizer}): estimate {found.training_peak / MIB:.2f} "
              f"MiB, profiler {measured / MIB:.2f} MiB "
              f"({found.training_peak / measured:.2f})")
    assert 0.75 * measured <= found.training_peak <= 1.25 * measured
    assert found.weights + found.optimizer_state + found.inputs < found.training_peak


@pytest.mark.parametrize("name", list(CASES))
def test_kept_for_backward_is_what_autograd_keeps(name: str) -> None:
    model, x, found = _estimate(name)
    net = model.to_torch(0, drop_mode="off").train()
    kept = autograd_kept(net, [x]) - (_nbytes([x]) if x.dtype == torch.long else 0)
    assert found.kept == pytest.approx(kept, rel=0.02)
    assert sum(r.kept for r in found.rows if r.depth == 1) == found.kept


@pytest.mark.parametrize("name", list(CASES))
def test_inference_peak_is_within_a_quarter_of_the_profilers(name: str) -> None:
    model, x, found = _estimate(name)
    net = model.to_torch(0).eval()
    resident = _nbytes(net.state_dict().values()) + _nbytes([x])
    with torch.no_grad():
        measured = resident + _profiled_peak(lambda: net(x))
    assert 0.75 * measured <= found.inference_peak <= 1.25 * measured
    assert found.inference_peak < found.training_peak


def test_drop_path_steps_stay_under_the_estimate() -> None:
    """A local draw may keep every path (the estimate's peak); a global one computes one
    column, whose peak is estimated too."""
    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, classes=10,
                                                      widths=[16, 16, 32, 32, 32])
    x = torch.randn(8, 3, 32, 32)
    found = model.memory(8, optimizer="momentum", device="cpu")
    assert found.global_column == 3 and found.global_peak is not None
    assert found.weights < found.global_peak < found.training_peak
    torch.manual_seed(0)
    net = model.to_torch(0, drop_mode="batch", drop_seed=3)
    peaks = [_training_step_peak(net, x, _classes, "momentum") for _ in range(4)]
    assert max(peaks) <= 1.1 * found.training_peak
    assert min(peaks) < 0.9 * found.training_peak  # some draws dropped paths


def test_the_estimate_follows_its_options() -> None:
    model = ssnc.loads(HMRNN).model()
    base = model.memory(4, steps=16, optimizer="sgd")
    assert base.optimizer_state == 0 and base.gradients == base.weights - base.buffers
    adam = model.memory(4, steps=16, optimizer="adam")
    assert adam.optimizer_state == 2 * adam.gradients
    assert model.memory(4, steps=16, optimizer="momentum").optimizer_state == adam.gradients
    assert model.memory(4, steps=32).kept == pytest.approx(2 * adam.kept, rel=0.05)
    assert model.memory(8, steps=16).kept == pytest.approx(2 * adam.kept, rel=0.05)
    half = model.memory(4, steps=16, precision="fp16")
    assert 2 * half.weights == adam.weights and 2 * half.kept < adam.kept * 1.01
    assert base.steps == 16 and model.memory(4).steps == 64
    fractal = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, widths=[8, 8, 8, 8, 8])
    assert fractal.column(1).memory(4).kept < fractal.memory(4).kept
    on_cpu = ssnc.load(SPECS / "nin_cifar10.ssn").model().memory(2, device="cpu")
    assert on_cpu.kept > ssnc.load(SPECS / "nin_cifar10.ssn").model().memory(2).kept  # masks


@pytest.mark.parametrize(("options", "said"), [
    ({"batch": 0}, "`batch` must be a positive integer, not 0"),
    ({"optimizer": "adma"}, "`optimizer` must be one of sgd, momentum, adam, adamw, not 'adma'"),
    ({"precision": "fp8"}, "`precision` must be one of fp32, fp16, bf16, not 'fp8'"),
    ({"device": "tpu"}, "`device` must be one of cuda, cpu, not 'tpu'"),
    ({"steps": 5}, "model `nin` has no time axis, so no sequence length"),
])
def test_bad_options_are_diagnostics(options: dict[str, Any], said: str) -> None:
    model = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    with pytest.raises(ssnc.SsnError) as caught:
        model.memory(**options)
    assert said in str(caught.value) and caught.value.code == "E0601"


OP_CALLS: dict[str, tuple[str | list[str], dict[str, Any]]] = {
    "conv": ("tensor[4, 8, 8]", {"out": 8}), "conv_transpose": ("tensor[4, 8, 8]", {"out": 4}),
    "upsample": ("tensor[4, 8, 8]", {}), "pad": ("tensor[4, 8, 8]", {"before": 1}),
    "unsqueeze": ("tensor[16]", {"axis": -1}), "squeeze": ("tensor[1, 16]", {"axis": 1}),
    "pixel_shuffle": ("tensor[4, 8, 8]", {}), "bn": ("tensor[4, 8, 8]", {}),
    "layernorm": ("sequence[16]", {}), "relu": ("tensor[16]", {}),
    "sigmoid": ("tensor[16]", {}), "tanh": ("tensor[16]", {}), "gelu": ("tensor[16]", {}),
    "clip": ("tensor[16]", {"min": 0, "max": 6}), "leaky_relu": ("tensor[16]", {}),
    "softmax": ("tensor[16]", {}), "dropout": ("tensor[4, 8, 8]", {"p": 0.3}),
    "stochastic_depth": ("tensor[4, 8, 8]", {"p": 0.2}), "maxpool": ("tensor[4, 8, 8]", {}),
    "avgpool": ("tensor[4, 8, 8]", {}), "gap": ("tensor[4, 8, 8]", {}),
    "flatten": ("tensor[4, 8, 8]", {}), "reduce_mean": ("tensor[4, 8, 8]", {"axis": 1}),
    "reduce_sum": ("tensor[4, 8, 8]", {"axis": 1}),
    "reduce_max": ("tensor[4, 8, 8]", {"axis": 1}), "linear": ("tensor[16]", {"out": 4}),
    "embedding": ("tokens[50]", {"vocab": 50, "dim": 8}),
    "mean": (["tensor[16]", "tensor[16]"], {}), "sum": (["tensor[16]", "tensor[16]"], {}),
    "max": (["tensor[16]", "tensor[16]"], {}), "concat": (["tensor[16]", "tensor[16]"], {}),
    "mul": (["tensor[16]", "tensor[16]"], {}), "div": (["tensor[16]", "tensor[16]"], {}),
    "sub": (["tensor[16]", "tensor[16]"], {}),
    "matmul": (["tensor[4, 8]", "tensor[8, 4]"], {}), "causal_mask": ("sequence[4, 4]", {}),
    "affine": ("tensor[16]", {"scale": 2.0}), "hard_sigmoid": ("tensor[16]", {}),
    "step": ("tensor[16]", {}), "slice": ("tensor[16]", {"start": 2}),
    "reshape": ("tensor[16]", {"shape": (4, 4)}),
    "permute": ("tensor[4, 8, 8]", {"order": (1, 0, 2)}),
    "pad_mask": ("tokens[50]", {}), "zeros": ("tensor[16]", {"size": 4}),
    "masked_fill": (["sequence[4, 4]", "tokens[50, 4]"], {}),
}
"""One call of each op a spec can call alone; `masked_fill`'s mask is made by the test."""


def test_every_op_is_checked_for_what_it_keeps() -> None:
    callable_ops = {name for name, op in OPS.items() if not (
        op.source or op.body is not None or op.projects or op.passthrough or op.origin)}
    assert callable_ops - set(OP_CALLS) == set()


@pytest.mark.parametrize("name", sorted(OP_CALLS))
def test_each_ops_saves_declaration_is_what_autograd_keeps(name: str) -> None:
    inputs, attrs = OP_CALLS[name]
    types = [inputs] if isinstance(inputs, str) else inputs
    args = ", ".join(f"{k} = {list(v) if isinstance(v, tuple) else v}" for k, v in attrs.items())
    call = f"{name}({args})" if args else name
    wires = ", ".join(f"x{i}" for i in range(len(types)))
    typed = ", ".join(f"x{i}: {t}" for i, t in enumerate(types))
    body = f"({wires}) => {call}({wires})" if len(types) > 1 else call
    if name == "masked_fill":  # a mask made from token ids
        body = "(x0, x1) => masked_fill(x0, unsqueeze(axis = -1)(pad_mask(x1)))"
    head = f" : {typed}" if len(types) > 1 else f" : {types[0]}"
    model = ssnc.loads(f"model check{head} = {body}\n").model()
    net = model.to_torch(0).train()
    sizes = [[5 if isinstance(d, str) else d for d in i.shape[1:]] for i in model.inputs.values()]
    xs = [torch.randint(0, 50, (3, *size)) if info.dtype == "i64"
          else torch.randn(3, *size, requires_grad=True)
          for info, size in zip(model.inputs.values(), sizes, strict=True)]
    declared = kept_for_backward(model.ir, 3, steps=5)
    measured = autograd_kept(net, xs)
    assert abs(declared - measured) <= max(0.25 * measured, 64), (declared, measured)


def test_info_memory_prints_the_table_and_the_peak(golden: Callable[[Any, str], None]) -> None:
    spec = str(SPECS / "nin_cifar10.ssn")
    result = runner.invoke(app, ["info", spec, "--memory", "--train", "--batch", "8",
                                 "--optimizer", "momentum", "-d", "2"])
    assert result.exit_code == 0, result.output
    golden(GOLDEN / "info_memory_train.txt", result.stdout)
    plain = runner.invoke(app, ["info", spec, "--memory", "--batch", "8"])
    assert "inference peak: " in plain.stdout and "activations written" in plain.stdout
    data = json.loads(runner.invoke(app, ["info", spec, "--memory", "--json", "--batch", "8",
                                          "--precision", "bf16"]).stdout)
    assert data["precision"] == "bf16" and data["training_peak"] > data["inference_peak"]
    assert data["optimizer_state"] == 2 * data["gradients"]
    fractal = runner.invoke(app, ["info", str(SPECS / "fractalnet.ssn"), "--memory",
                                  "--train", "--set", "C=3", "--set", "classes=10"])
    assert "drop-path: that peak is a local draw's" in fractal.stdout
    column = runner.invoke(app, ["info", str(SPECS / "fractalnet.ssn"), "--memory",
                                 "--json", "--column", "1"])
    assert json.loads(column.stdout)["global_draw"] is None


@pytest.mark.parametrize(("args", "said"), [
    (["--batch", "4"], "--batch applies to --memory"),
    (["--memory", "--optimizer", "lion"], "--optimizer must be one of sgd, momentum, adam, "
                                          "adamw, not 'lion'"),
    (["--memory", "--steps", "9"], "has no time axis, so no sequence length"),
    (["--memory", "--batch", "0"], "--batch must be a positive integer, not 0"),
])
def test_info_memory_refuses_bad_flags(args: list[str], said: str) -> None:
    result = runner.invoke(app, ["info", str(SPECS / "nin_cifar10.ssn"), *args])
    assert result.exit_code == 1 and said in result.stderr and "Traceback" not in result.output
