"""Attention written in .ssn (the standard library's `mha` and `transformer_block`) against
PyTorch's own layers on copied weights, and the ops it is made of: `matmul`, `permute`,
`softmax(axis)`, `causal_mask`, and the activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import ssnc
from tests.conftest import SPECS, compile_refused, ort_output


def _layer_weights(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The compiled `transformer_block`'s tensors under nn.TransformerEncoderLayer's keys."""
    names = {"mha.linear1": "self_attn.in_proj_", "mha.linear2": "self_attn.out_proj.",
             "linear1": "linear1.", "linear2": "linear2.", "layernorm1": "norm1.",
             "layernorm2": "norm2."}
    out = {}
    for key, value in state.items():
        scope, role = key[len(prefix) + 1:].rsplit(".", 1)
        out[names[scope] + role] = value
    return out


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_transformer_block_equals_torch(norm_first: bool, causal: bool) -> None:
    """transformer_block(512, 8, 2048) is nn.TransformerEncoderLayer(512, 8, 2048,
    batch_first = True): the same 3,152,384 parameters and, on copied weights in eval mode,
    the same outputs; ONNX Runtime agrees in both forms."""
    text = (f"model m : sequence[512] = transformer_block(512, 8, 2048, "
            f"norm_first = {str(norm_first).lower()}, causal = {str(causal).lower()})\n")
    model = ssnc.loads(text, "t.ssn").model()
    layer = torch.nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True,
                                             norm_first=norm_first).eval()
    assert model.total_params == sum(p.numel() for p in layer.parameters()) == 3_152_384
    net = model.to_torch().eval()
    layer.load_state_dict(_layer_weights(net.state_dict(), "transformer_block"))
    x = np.random.default_rng(0).standard_normal((3, 7, 512)).astype(np.float32)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7) if causal else None
    with torch.no_grad():
        want = layer(torch.from_numpy(x), src_mask=mask, is_causal=causal).numpy()
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for flat in (True, False):
        session = ort.InferenceSession(model.to_onnx(flat=flat).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x})[0], want, rtol=1e-4,
                                   atol=1e-4)


def test_mha_equals_nn_multihead_attention() -> None:
    model = ssnc.loads("model m : sequence[12] = mha(3, 12)\n", "a.ssn").model()
    net = model.to_torch().eval()
    attn = torch.nn.MultiheadAttention(12, 3, batch_first=True).eval()
    state = net.state_dict()
    attn.load_state_dict({"in_proj_weight": state["mha.linear1.weight"],
                          "in_proj_bias": state["mha.linear1.bias"],
                          "out_proj.weight": state["mha.linear2.weight"],
                          "out_proj.bias": state["mha.linear2.bias"]})
    x = torch.randn(2, 5, 12)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), attn(x, x, x, need_weights=False)[0].numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_activations_from_the_standard_library_equal_torch() -> None:
    source = ("model m : tensor[5] = (x) => concat(relu6(x * 4), silu(x), hardswish(x * 4), "
              "gelu(x), gelu(tanh = true)(x), leaky_relu(0.1)(x), x / (x * x + 1), axis = -1)\n")
    net = ssnc.loads(source, "act.ssn").model().to_torch().eval()
    x = torch.randn(3, 5)
    f = torch.nn.functional
    want = torch.cat([f.relu6(x * 4), f.silu(x), f.hardswish(x * 4), f.gelu(x),
                      f.gelu(x, approximate="tanh"), f.leaky_relu(x, 0.1), x / (x * x + 1)], -1)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("source", "needle", "column"), [
    ("model m : sequence[4] = (x) => matmul(x, linear(3)(x))\n",
     "matmul's inner dimensions differ: [N,T,4]{NTC} @ [N,T,3]{NTC} (4 vs T)", 32),
    ("model m : tensor[3, 4, 4] = softmax\n",
     "softmax over [N,3,4,4]{NCHW} must name its axis", 29),
    ("model m : sequence[8] = reshape([2, 4]) >> permute([1, 0, 2]) >> reshape([-1])\n",
     "reshape cannot fold the symbolic axis `T` of [N,2,T,4]{N_T_} into fixed sizes", 66),
    ("model m : sequence[8] = permute([0])\n",
     "permute's order [0] must list each of the 2 axes after the batch axis of [N,T,8]", 25),
    ("model m : tensor[4] = clip(1, 0)\n", "clip's min 1 is above its max 0", 23),
    ("model m : sequence[8] = softmax(axis = 0)\n",
     "softmax's axis 0 is not an axis after the batch axis of [N,T,8]", 25),
    ("model m : sequence[8] = causal_mask\n", "causal_mask masks square scores", 25),
    ("model m : tensor[4, 5, 5] = conv_transpose(2, 3, 2, output_pad = 2)\n",
     "conv_transpose's output_pad 2 must be below its stride 2: it picks one of the 2 output "
     "sizes", 29),
    ("model m : tensor[4, 5, 5] = upsample(mode = \"cubic\")\n",
     "upsample's mode 'cubic' is not one of 'nearest', 'linear', 'bilinear', 'trilinear'", 29),
    ("model m : tensor[6, 5, 5] = pixel_shuffle(2)\n",
     "pixel_shuffle(2) needs channels divisible by 4, got 6", 29),
    ("model m : tensor[4, 5, 5] = squeeze(1)\n",
     "squeeze removes an axis of size 1, but axis 1 of [N,4,5,5]{NCHW} is 4", 29),
    ("model m : tensor[4] = unsqueeze(3)\n",
     "unsqueeze's axis 3 is not a place after the batch axis of [N,4]", 23),
])
def test_bad_shapes_are_diagnostics(source: str, needle: str, column: int,
                                    tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, source)
    assert needle in stderr and f"m.ssn:1:{column}:" in stderr, stderr


def test_a_configured_join_can_be_passed_as_a_block() -> None:
    """`join = mean(merge = false)` keeps its attributes until the rule gives it inputs:
    FractalNet's joins stay nested, two inputs each, instead of merging into one."""
    source = "model m : tensor[3, 8, 8] = fractal(3, conv(4) >> relu{}) >> gap\n"
    merged = ssnc.loads(source.format(""), "f.ssn").model()
    nested = ssnc.loads(source.format(", join = mean(merge = false)"), "f.ssn").model()
    widths = sorted(len(n.inputs) for n in nested.ir if n.op == "mean")
    assert widths == [2, 2, 2] and max(len(n.inputs) for n in merged.ir if n.op == "mean") == 3


@pytest.mark.parametrize(("name", "meant"), [("deconv", "conv_transpose"),
                                             ("convT", "conv_transpose"),
                                             ("upconv", "conv_transpose"),
                                             ("interpolate", "upsample"), ("swish", "silu")])
def test_other_frameworks_names_point_at_ours(name: str, meant: str, tmp_path: Path) -> None:
    stderr = compile_refused(tmp_path, f"model m : tensor[3, 8, 8] = {name}(4) >> gap\n")
    assert f"unknown name `{name}`" in stderr and f"did you mean `{meant}`?" in stderr, stderr


def test_the_transformer_lm_is_causal_and_runs_in_onnx_runtime() -> None:
    """specs/transformer_lm.ssn: changing the last tokens leaves the earlier positions'
    logits as they were; ONNX Runtime equals PyTorch at two lengths (T is symbolic)."""
    model = ssnc.load(SPECS / "transformer_lm.ssn").model()
    assert model.total_params == 409_650
    net = model.to_torch().eval()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (2, 9))
    changed = x.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 50
    with torch.no_grad():
        a, b = (net(torch.from_numpy(t)).numpy() for t in (x, changed))
    np.testing.assert_allclose(a[:, :6], b[:, :6], rtol=1e-5, atol=1e-5)
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-3
    proto = model.to_onnx()
    for steps in (1, 9):
        with torch.no_grad():
            want = net(torch.from_numpy(x[:, :steps])).numpy()
        np.testing.assert_allclose(ort_output(proto, x[:, :steps]), want, rtol=1e-4, atol=1e-4)


def test_causal_attention_converts_to_half_precision() -> None:
    """The mask's -inf is float16's too (only finite weights beyond ±65504 are refused):
    the fp16 language model is within 1e-2 of the float32 one, with the same top-1."""
    model = ssnc.load(SPECS / "transformer_lm.ssn").model()
    x = np.random.default_rng(0).integers(0, 50, (4, 16))
    want, got = ort_output(model.to_onnx(), x), ort_output(model.to_onnx(precision="fp16"), x)
    assert not np.isnan(got).any()
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.99

