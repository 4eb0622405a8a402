"""`ssnc.optimize_for_inference` and `--fold-bn`: BatchNorm folded into the convolution or
linear before it, a mean join's 1/N into the weights before its ReLUs, eval identities gone;
outputs equal the unfolded module's in eval, and only where each fold is exact is it made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SPECS


def _trained(model: ssnc.Model, x: torch.Tensor, steps: int = 3) -> torch.nn.Module:
    """The model's module after a few SGD steps: BatchNorm statistics and affine parameters,
    and the biases, away from their initial values, so every fold has something to fold."""
    torch.manual_seed(0)
    net = model.to_torch(0, drop_mode="off")
    with torch.no_grad():  # a bias the initialiser leaves at zero is given a value
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(steps):
        net.train()
        out = net(x)
        loss = out.float().logsumexp(-1).mean() if out.dim() == 2 else out.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _same(net: torch.nn.Module, fast: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = net(x), fast(x)
    scale = float(want.abs().max())
    assert float((want - got).abs().max()) <= 1e-5 * max(scale, 1.0)


CASES = {
    "conv_bn_relu": ("model m : tensor[3, 8, 8] = conv(6) >> bn >> relu >> conv(5, bias = true) "
                     ">> bn(affine = false) >> relu >> gap >> linear(4) >> bn >> relu", (3, 0, 0)),
    "mean_join": ("model m : tensor[3, 8, 8] = mean(conv(4) >> bn >> relu, conv(4) >> relu, "
                  "conv(4) >> bn >> relu >> dropout(0.3)) >> gap >> linear(3)", (2, 1, 1)),
    "not_exact": ("model m : tensor[3, 8, 8] = conv(4) >> ((x) => mean((bn >> relu)(x), x)) "
                  ">> conv(4) >> bn >> gelu >> gap >> linear(2)", (1, 0, 0)),
    "transposed": ("model m : tensor[4, 6, 6] = conv_transpose(3, k = 2) >> bn >> relu "
                   ">> conv_transpose(6, k = 2, groups = 3) >> bn >> leaky_relu "
                   ">> gap >> linear(2)", (2, 0, 0)),
    "shared": ("model m : tensor[4, 6, 6] = let c = shared(conv(4, bias = true)) in "
               "c >> bn >> relu >> c >> bn >> relu >> gap >> linear(2)", (0, 0, 0)),
}
"""Each spec with how many BatchNorms, joins and eval identities fold: in `not_exact` the
first BN's convolution is also read by the join, the join's inputs are not all ReLUs of an
affine op, so only the last BN folds; in `shared` the convolution's weights serve two
instances, so neither BN folds into them."""


@pytest.mark.parametrize("case", sorted(CASES))
def test_folded_outputs_equal_the_unfolded_ones(case: str) -> None:
    text, (norms, joins, identities) = CASES[case]
    model = ssnc.loads(text + "\n").model()
    shape = [d for d in model.ir[model.ir.inputs[0]].shape[1:]]
    x = torch.randn(5, *shape)  # type: ignore[misc]
    net = _trained(model, x)
    fast = ssnc.optimize_for_inference(net)
    folded = fast.ssnc_folded
    assert (len(folded.norms), len(folded.joins), len(folded.identities)) \
        == (norms, joins, identities), folded
    _same(net, fast, x)
    ops = [n.op for n in fast.ssnc_ir]
    assert ops.count("bn") == sum(n.op == "bn" for n in model.ir) - norms
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules()) or norms == 0 \
        or ops.count("bn") > 0


def test_fractalnet_folds_every_norm_and_join() -> None:
    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, classes=10,
                                                      widths=[8, 16, 16, 16, 16])
    x = torch.randn(4, 3, 32, 32)
    net = _trained(model, x)
    fast = ssnc.optimize_for_inference(net, channels_last=True)
    units = sum(n.op == "bn" for n in model.ir)
    assert len(fast.ssnc_folded.norms) == units == 35
    assert len(fast.ssnc_folded.joins) == sum(n.op == "mean" for n in model.ir) == 10
    assert {n.op for n in fast.ssnc_ir} >= {"conv", "relu", "sum"}
    assert not {"bn", "mean", "dropout"} & {n.op for n in fast.ssnc_ir}
    _same(net, fast, x)
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        fast(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)  # the input converted
    assert not any(p.requires_grad for p in fast.parameters())
    net.load_state_dict(net.state_dict())  # the unfolded module is untouched


def test_the_folded_module_is_eval_only() -> None:
    net = ssnc.loads(CASES["conv_bn_relu"][0] + "\n").model().to_torch(0)
    fast = ssnc.optimize_for_inference(net)
    with pytest.raises(RuntimeError, match="eval-only"):
        fast.train()
    assert fast.eval() is fast and not fast.training
    assert net.training  # the module it came from is left as it was


def test_a_module_ssnc_did_not_generate_is_refused() -> None:
    with pytest.raises(ssnc.SsnError) as caught:
        ssnc.optimize_for_inference(torch.nn.Linear(2, 2))
    assert caught.value.code == "E0601"
    assert "optimize_for_inference() takes a module that ssnc generated" in str(caught.value)


def test_fold_bn_in_onnx_equals_the_unfolded_export(tmp_path: Path) -> None:
    spec = SPECS / "fractalnet.ssn"
    sets = ["--set", "C=3", "--set", "classes=10", "--set", "widths=[4,8,8,8,8]"]
    for name, extra in (("plain", []), ("folded", ["--fold-bn"])):
        result = CliRunner().invoke(app, ["compile", str(spec), "--to", "onnx", "-o",
                                          str(tmp_path / f"{name}.onnx"), *sets, *extra])
        assert result.exit_code == 0, result.output
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    outs = {}
    for name in ("plain", "folded"):
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
        outs[name] = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(outs["folded"], outs["plain"], rtol=1e-4, atol=1e-6)
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "folded.onnx")).graph.node}
    assert "BatchNormalization" not in ops and "Div" not in ops
    model = ssnc.load(spec).model(C=3, classes=10, widths=[4, 8, 8, 8, 8])
    proto = model.to_onnx(fold_bn=True)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("runtime", ["tract", "onnx2torch"])
def test_fold_bn_models_run_where_nothing_fuses(runtime: str, tmp_path: Path) -> None:
    """The runtimes `--fold-bn` is for load the folded FractalNet, equal to ONNX Runtime.
    CI installs tract; onnx2torch is installed by hand (`pip install --no-deps onnx2torch`,
    its torchvision pulls a CUDA torch), as for bench/compat.py, and checked where it is."""
    from tests.conftest import compat, runner_for


    path = tmp_path / "f.onnx"
    result = CliRunner().invoke(app, ["compile", str(SPECS / "fractalnet.ssn"), "-o",
                                      str(path), "--fold-bn", "--set", "C=2", "--set",
                                      "classes=10", "--set", "widths=[4,8,8,8,8]"])
    assert result.exit_code == 0, result.output
    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=2, classes=10, widths=[4, 8, 8, 8, 8])
    x = compat()["feed"](model.ir, batch=2, steps=1)
    want = runner_for("ONNX Runtime")(str(path), x)
    if runtime == "onnx2torch":  # not a CI runtime: checked where it is installed
        try:
            run = compat()["RUNTIMES"][runtime].make()
        except ImportError:
            pytest.skip("pip install --no-deps onnx2torch")
    else:
        run = runner_for(runtime)
    got = run(str(path), x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
