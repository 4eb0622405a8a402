"""Attention across streams: `cross_mha` and `decoder_block` in nn.MultiheadAttention's and
nn.TransformerDecoderLayer's layouts, and specs/seq2seq_transformer.ssn equal to token
embeddings around a torch.nn.Transformer (batch_first false, its default) with its causal and
key-padding masks on copied weights, in PyTorch and ONNX Runtime, at two source and target
lengths."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import ssnc
from tests.conftest import SPECS

LAYER = {"mha.linear1.weight": "self_attn.in_proj_weight",
         "mha.linear1.bias": "self_attn.in_proj_bias",
         "mha.linear2.weight": "self_attn.out_proj.weight",
         "mha.linear2.bias": "self_attn.out_proj.bias",
         "cross_mha.param1": "multihead_attn.in_proj_weight",
         "cross_mha.param2": "multihead_attn.in_proj_bias",
         "cross_mha.linear.weight": "multihead_attn.out_proj.weight",
         "cross_mha.linear.bias": "multihead_attn.out_proj.bias",
         **{f"{k}.{p}": f"{v}.{p}" for k, v in (("layernorm1", "norm1"), ("layernorm2", "norm2"),
                                                ("layernorm3", "norm3"), ("linear1", "linear1"),
                                                ("linear2", "linear2"))
            for p in ("weight", "bias")}}
"""A block's keys in the spec (its scope path) and in nn.Transformer's layer."""
TOP = {"embedding1.weight": "src_emb.weight", "embedding2.weight": "tgt_emb.weight",
       "layernorm1.weight": "transformer.encoder.norm.weight",
       "layernorm1.bias": "transformer.encoder.norm.bias",
       "layernorm2.weight": "transformer.decoder.norm.weight",
       "layernorm2.bias": "transformer.decoder.norm.bias",
       "linear.weight": "generator.weight", "linear.bias": "generator.bias"}


def torch_key(ours: str) -> str:
    """nn.Transformer's (and the embeddings' and generator's) key for an ssnc key."""
    if ours in TOP:
        return TOP[ours]
    block, _, rest = ours.partition(".")
    kind, number = block.rstrip("0123456789"), int(block[len(block.rstrip("0123456789")):])
    stack = {"transformer_block": "encoder", "decoder_block": "decoder"}[kind]
    return f"transformer.{stack}.layers.{number - 1}.{LAYER[rest]}"


class Seq2Seq(nn.Module):
    """Token embeddings (scaled by sqrt(dim)) around nn.Transformer, then a generator."""

    def __init__(self, vocab: int, dim: int, heads: int, layers: int, ff: int):
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(vocab, dim), nn.Embedding(vocab, dim)
        self.transformer = nn.Transformer(dim, heads, layers, layers, ff, dropout=0.0)
        self.generator = nn.Linear(dim, vocab)
        self.dim = dim

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        s = (self.src_emb(src) * math.sqrt(self.dim)).transpose(0, 1)  # [S, N, E]
        t = (self.tgt_emb(tgt) * math.sqrt(self.dim)).transpose(0, 1)
        mask = nn.Transformer.generate_square_subsequent_mask(t.shape[0])
        out: torch.Tensor = self.generator(self.transformer(
            s, t, tgt_mask=mask, src_key_padding_mask=src == 0, tgt_key_padding_mask=tgt == 0,
            memory_key_padding_mask=src == 0).transpose(0, 1))
        return out


def test_the_transformer_part_has_torchs_count() -> None:
    m = ssnc.load(SPECS / "seq2seq_transformer.ssn").model()
    torch_part = sum(p.numel() for p in nn.Transformer(512, 8, 6, 6, 2048).parameters())
    assert torch_part == 44_140_544
    assert m.total_params == torch_part + 2 * 1000 * 512 + 512 * 1000 + 1000
    assert list(m.inputs) == ["src", "tgt"]


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
def test_seq2seq_equals_nn_transformer_on_copied_weights(flat: bool) -> None:
    m = ssnc.load(SPECS / "seq2seq_transformer.ssn").model(vocab=20, dim=16, heads=2,
                                                            layers=2, ff=32, drop=0.0)
    net = m.to_torch(seed=3).eval()
    hand = Seq2Seq(20, 16, 2, 2, 32).eval()
    mapped = {torch_key(k): v for k, v in net.state_dict().items()}
    assert sorted(mapped) == sorted(hand.state_dict())  # one to one
    assert all(v.shape == hand.state_dict()[k].shape for k, v in mapped.items())
    hand.load_state_dict(mapped)
    proto = m.to_onnx(flat=flat, seed=3)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for s, t in ((5, 3), (2, 7)):
        src = torch.randint(0, 20, (3, s), generator=gen)
        tgt = torch.randint(0, 20, (3, t), generator=gen)
        src[:, 0], tgt[:, 0] = 1, 1  # no sequence is all padding (its attention would be NaN)
        src[0, -1], tgt[1, -1] = 0, 0  # and some end in it
        with torch.no_grad():
            want = hand(src, tgt)
            torch.testing.assert_close(net(src, tgt), want, rtol=1e-4, atol=1e-5)
        got = session.run(None, {"src": src.numpy(), "tgt": tgt.numpy()})[0]
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


def test_cross_attention_reads_keys_and_values_from_the_other_stream() -> None:
    """`cross_mha` is nn.MultiheadAttention(query = x, key = value = memory) on the same four
    tensors, with a memory of another length."""
    m = ssnc.loads("model m : x: sequence[8], memory: sequence[8] = (x, memory) => "
                   "cross_mha(2, 8)(x, memory)", "m.ssn").model()
    net = m.to_torch(seed=1).eval()
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ref.load_state_dict(dict(zip(["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                  "out_proj.bias"], net.state_dict().values(), strict=True)))
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x, memory), ref(x, memory, memory,
                                                       need_weights=False)[0])


def test_a_key_padding_mask_hides_padded_keys_as_pytorch_does() -> None:
    """`mha(heads, dim)(x, pad_mask(0)(tokens))` is nn.MultiheadAttention with
    key_padding_mask = (tokens == 0); ONNX (Equal, Where) agrees."""
    m = ssnc.loads("model m : tokens[9] = (t) => let x = embedding(9, 8)(t) in "
                   "mha(2, 8)(x, pad_mask(0)(t))", "m.ssn").model()
    assert "%pad_mask : bool[N,T]{NT} = pad_mask(%input)" in m.format_ir()
    net = m.to_torch(seed=2).eval()
    weights = list(net.state_dict().values())
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ref.load_state_dict(dict(zip(["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                  "out_proj.bias"], weights[1:], strict=True)))
    tokens = torch.tensor([[3, 4, 0, 0], [5, 0, 6, 7]])
    x = nn.functional.embedding(tokens, weights[0])
    with torch.no_grad():
        want = ref(x, x, x, key_padding_mask=tokens == 0, need_weights=False)[0]
        torch.testing.assert_close(net(tokens), want)
    got = ort.InferenceSession(m.to_onnx(seed=2).SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(
        None, {"input": tokens.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("body,needle", [
    ("(t) => masked_fill(embedding(9, 4)(t), embedding(9, 4)(t))",
     "`masked_fill`'s input 2 must be a mask (bool), not float32"),
    ("(t) => pad_mask(0)(embedding(9, 4)(t))", "`pad_mask` reads token ids"),
    ("(t) => relu(pad_mask(0)(t))", "`relu`'s input 1 must be float32, not a mask (bool)"),
    ("(t) => mha(2, 4)(embedding(9, 4)(t), pad_mask(0)(t), pad_mask(1)(t))",
     "attention takes at most one key-padding mask, got 2"),
])
def test_masks_are_typed(body: str, needle: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import compile_refused

    assert needle in compile_refused(tmp_path, f"model m : tokens[9] = {body}\n")
