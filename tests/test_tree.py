"""Recursive nets over a complete binary tree (specs/treenet.ssn, the standard library's
`tree`) and the fixed-length sequence types they read: the count, the forward against a
hand-written recursive net, one set of weights for every application of the cell in both
backends, and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ssnc
from tests.conftest import SPECS, compile_refused, equals_hand_written

TREENET = SPECS / "treenet.ssn"


class TreeNet(nn.Module):
    """Embed, then combine adjacent pairs with one cell, p = tanh(W [l; r] + b), to a root."""

    def __init__(self, vocab: int, dim: int, classes: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.cell = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = list(self.emb(x).unbind(1))
        while len(nodes) > 1:
            nodes = [torch.tanh(self.cell(torch.cat(nodes[i:i + 2], 1)))
                     for i in range(0, len(nodes), 2)]
        out: torch.Tensor = self.out(nodes[0])
        return out


def test_treenet_counts_its_cell_once() -> None:
    model = ssnc.load(TREENET).model()
    vocab, dim, classes = 50, 64, 5
    assert model.total_params == vocab * dim + (2 * dim * dim + dim) + dim * classes + classes
    assert model.total_params == 11_781
    assert model.ir[model.ir.inputs[0]].shape == ("N", 8)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_treenet_equals_a_hand_written_recursive_net(depth: int) -> None:
    model = ssnc.load(TREENET).model(depth=depth, length=2 ** depth, dim=16)
    x = np.random.default_rng(depth).integers(0, 50, (3, 2 ** depth)).astype(np.int64)
    equals_hand_written(model, TreeNet(50, 16, 5), x)
    equals_hand_written(model, TreeNet(50, 16, 5), x[:1])


def test_every_application_of_the_cell_has_the_same_weights() -> None:
    """One torch module, one ONNX initializer set, one ONNX function called at all
    2 ** depth - 1 inner nodes."""
    model = ssnc.load(TREENET).model(depth=4, length=16, dim=8)
    net = model.to_torch()
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 2  # the cell, the classifier
    assert len(list(net.parameters())) == 5
    flat = model.to_onnx()
    sizes = sorted(int(np.prod(t.dims)) for t in flat.graph.initializer)
    assert sizes == [5, 8, 5 * 8, 8 * 16, 50 * 8]
    functions = model.to_onnx(flat=False)
    cells = [f for f in functions.functions if f.name.startswith("compose")]
    assert [f.name for f in cells] == ["compose"]

    def calls(nodes: list) -> int:
        count = 0
        for node in nodes:
            count += node.op_type == "compose"
            fn = next((f for f in functions.functions if f.name == node.op_type), None)
            if fn is not None and fn.name != "compose":
                count += calls(list(fn.node))
        return count

    assert calls(list(functions.graph.node)) == 15
    assert [f.name for f in functions.functions if f.name.startswith("tree")] == [
        "tree", "tree_2", "tree_3", "tree_4"]  # one per depth: the slices' sizes differ


@pytest.mark.parametrize(("setting", "message", "note"), [
    ("depth = 0, length = 8", "a tree's depth is at least 1", "called from here"),
    ("depth = 3, length = 6", "tree: length 6 is not 2 ** 3", "applied from here"),
    ("depth = 2, length = 8", "tree: length 8 is not 2 ** 2", "applied from here")])
def test_a_bad_tree_is_a_diagnostic_at_the_users_call(tmp_path: Path, setting: str,
                                                      message: str, note: str) -> None:
    source = TREENET.read_text().replace("depth = 3, length = 8", setting)
    err = compile_refused(tmp_path, source)
    assert "E0204" in err and message in err and note in err
    assert "m.ssn:9:30" in err  # the user's `tree(...)`


def test_fixed_length_sequence_types(tmp_path: Path) -> None:
    model = ssnc.loads("model m : sequence[6, 4] = linear(3)\n").model()
    assert model.ir[model.ir.inputs[0]].shape == ("N", 4, 6)
    proto = model.to_onnx()
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 4, 6]
    with pytest.raises(ssnc.SsnError, match="fixed at 4 by its input type"):
        model.to_onnx(steps=5)
    for bad, message, column in (
            ("sequence[6, 4, 2]", "optionally a fixed length, got 3 sizes", 11),
            ("tokens[6, 0]", "positive integers, got 0", 21)):
        err = compile_refused(tmp_path, f"model m : {bad} = identity\n")
        assert message in err and f"m.ssn:1:{column}:" in err
