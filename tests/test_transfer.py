"""Weights from other names (`ssnc transfer`, `Model.transfer`): hand-written PyTorch models
(torchvision's ResNet-18 layout, an LSTM language model, a TransformerEncoderLayer) and an
ONNX model's initializers load into specs by order and by names, with equal outputs and a
complete report; partial loads, bad checkpoints and bad rules are diagnostics that write
nothing; the reverse trip gives the source model its weights back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from ssnc.transfer import LINEAR_CONV, LSTM, TransferError
from tests.conftest import SPECS

MAP = Path(__file__).parents[1] / "examples" / "weights" / "torchvision_resnet18.map"


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, its module names and forward."""

    def __init__(self, cin: int, w: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, w, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(w, w, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != w:
            self.downsample = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False),
                                            nn.BatchNorm2d(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18, written out: the same module tree and state_dict keys."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (w, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, w, s), BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _trained(net: nn.Module, seed: int = 0) -> nn.Module:
    """``net`` with every parameter and statistic drawn at random (nothing at its default)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                low = 0.5 if name.endswith(("running_var", "bn1.weight", "bn2.weight")) else -0.5
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + low)
    return net.eval()


def _loaded(model: ssnc.Model, weights: dict[str, np.ndarray]) -> nn.Module:
    net = model.to_torch().eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return net


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path, ssnc.Model]:
    ref = _trained(ResNet18(10))
    path = tmp_path_factory.mktemp("resnet") / "resnet18.pt"
    torch.save(ref.state_dict(), path)
    return ref, path, ssnc.load(SPECS / "resnet18.ssn").model(classes=10, size=48)


def test_resnet18_is_torchvisions_size() -> None:
    assert ssnc.load(SPECS / "resnet18.ssn").model().total_params == 11_689_512
    assert sum(p.numel() for p in ResNet18().parameters()) == 11_689_512


@pytest.mark.parametrize("match", ["order", "names"])
def test_a_torchvision_resnet18_loads_by_order_and_by_names(match: str, resnet) -> None:  # type: ignore[no-untyped-def]
    ref, path, model = resnet
    weights, report = model.transfer(path, match=match,
                                     mapping=MAP if match == "names" else None)
    assert report.complete
    assert report.loaded == report.total == sum(t.numel for t in model.ir.tensors().values())
    assert [r.status for r in report.rows] == ["matched"] * len(report.rows)
    assert len(report.ignored) == 20  # every BatchNorm's num_batches_tracked
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(_loaded(model, weights)(x), ref(x), rtol=1e-5, atol=1e-5)


def test_the_reverse_trip_gives_the_source_model_its_weights(resnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, path, model = resnet
    net = model.to_torch(seed=7).eval()
    mine = tmp_path / "mine.safetensors"
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(mine))
    out = tmp_path / "theirs.pt"
    result = CliRunner().invoke(app, ["transfer", str(SPECS / "resnet18.ssn"), "--set",
                                      "classes=10", "--set", "size=48", "--from", str(path),
                                      "--map", str(MAP), "--reverse", str(mine), "-o", str(out)])
    assert result.exit_code == 0, result.output
    back = ResNet18(10).eval()
    back.load_state_dict(torch.load(out, weights_only=True), strict=False)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(back(x), net(x), rtol=1e-5, atol=1e-5)


class LM(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 8, hidden: int = 16, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


LM_SPEC = ("model lm(vocab = 20) : tokens[vocab] = embedding(vocab, 8) >> lstm(16) >> lstm(16) "
           ">> linear(vocab)")


@pytest.mark.parametrize("match", ["order", "names"])
def test_an_lstm_language_model_loads_with_its_biases_summed(match: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = LM().eval()
    path = tmp_path / "lm.pt"
    torch.save(ref.state_dict(), path)
    model = ssnc.loads(LM_SPEC).model()
    rules = [(r"embed\.weight", "embedding.weight"), (r"head\.(.*)", r"linear.\1"),
             (r"rnn\.(weight|bias)_(ih|hh)_l(\d)",
              r"lstm\3.scan.lstm_cell.linear.\1")] if match == "names" else None
    if rules:  # lstm1, lstm2 from layers l0, l1
        rules[2] = (r"rnn\.(weight|bias)_(ih|hh)_l0", r"lstm1.scan.lstm_cell.linear.\1")
        rules.append((r"rnn\.(weight|bias)_(ih|hh)_l1", r"lstm2.scan.lstm_cell.linear.\1"))
    weights, report = model.transfer(path, match=match, mapping=rules)
    cells = [r for r in report.rows if r.op == "linear" and "lstm" in r.scope]
    assert [r.conversion for r in cells] == [LSTM, LSTM] and report.complete
    x = torch.randint(0, 20, (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(_loaded(model, weights)(x), ref(x), rtol=1e-5, atol=1e-5)
    back, _ = model.transfer(path, match=match, mapping=rules, reverse=weights)
    again = LM().eval()
    again.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    assert not back["rnn.bias_hh_l0"].any()  # the summed bias went to b_ih
    with torch.no_grad():
        torch.testing.assert_close(again(x), ref(x), rtol=1e-5, atol=1e-5)


def test_a_transformer_encoder_layer_loads_by_names(tmp_path: Path) -> None:
    """PyTorch registers the norms after the feed-forward layers they follow in use, so
    order cannot match it; rules do. `batch_first = False`, its default: [T, N, D]."""
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0).eval()
    path = tmp_path / "layer.pt"
    torch.save(ref.state_dict(), path)
    model = ssnc.loads("model enc : sequence[32] = transformer_block(32, 4, 64, drop = 0.0)"
                       ).model()
    with pytest.raises(ssnc.SsnError, match="by order"):
        model.transfer(path, match="order")
    rules = [(r"self_attn\.in_proj_(.*)", r"transformer_block.mha.linear1.\1"),
             (r"self_attn\.out_proj\.(.*)", r"transformer_block.mha.linear2.\1"),
             (r"(linear\d)\.(.*)", r"transformer_block.\1.\2"),
             (r"norm(\d)\.(.*)", r"transformer_block.layernorm\1.\2")]
    weights, report = model.transfer(path, mapping=rules)
    assert report.complete, "\n".join(report.lines())
    x = torch.randn(3, 5, 32)  # ssnc's [N, T, D]
    with torch.no_grad():
        torch.testing.assert_close(_loaded(model, weights)(x),
                                   ref(x.transpose(0, 1)).transpose(0, 1), rtol=1e-4,
                                   atol=1e-5)


def test_an_onnx_models_initializers_load_by_order(tmp_path: Path) -> None:
    """ssnc's own export of ResNet-20, its initializers renamed: by order of first use."""
    model = ssnc.load(SPECS / "resnet20_a.ssn").model()
    proto = model.to_onnx(seed=5)
    for number, init in enumerate(proto.graph.initializer):
        old, init.name = init.name, f"onnx::Param_{number}"  # as an exporter names them
        for node in proto.graph.node:
            node.input[:] = [init.name if i == old else i for i in node.input]
    path = tmp_path / "other.onnx"
    onnx.save(proto, str(path))
    weights, report = model.transfer(path, match="order")
    assert report.complete
    want = model.to_torch(seed=5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_loaded(model, weights)(x), want(x), rtol=1e-5, atol=1e-5)


def test_linear_and_a_1x1_conv_take_each_others_weights(tmp_path: Path) -> None:
    path = tmp_path / "fc.pt"
    torch.save({"fc.weight": torch.randn(4, 6), "fc.bias": torch.randn(4)}, path)
    model = ssnc.loads("model m : tensor[6, 3, 3] = conv(4, 1)").model()
    weights, report = model.transfer(path, mapping=[(r"fc\.(.*)", r"conv.\1")])
    assert report.rows[0].conversion == LINEAR_CONV and weights["conv.weight"].shape == (4, 6, 1, 1)


def test_a_partial_transfer_fails_and_writes_nothing_unless_allowed(resnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref, _, model = resnet
    head = tmp_path / "headless.pt"
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}, head)
    out = tmp_path / "w.safetensors"
    args = ["transfer", str(SPECS / "resnet18.ssn"), "--set", "classes=10", "--set",
            "size=48", "--from", str(head), "--match", "order", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and not out.exists()
    total = sum(t.numel for t in model.ir.tensors().values())
    assert f"is partial: {total - 5130:,} of {total:,} values loaded" in result.stderr
    assert "linear (linear): initial" in result.stderr
    with pytest.raises(TransferError) as info:
        model.transfer(head, match="order")
    assert info.value.report is not None and not info.value.report.complete
    result = CliRunner().invoke(app, [*args, "--allow-partial", "--json"])
    assert result.exit_code == 0 and out.exists(), result.output
    import json

    data = json.loads(result.stdout)
    assert [r["scope"] for r in data["rows"] if r["status"] != "matched"] == ["linear"]
    net = model.to_torch(weights=out).eval()  # the file `--weights` reads, in ssnc's keys
    assert torch.equal(net.state_dict()["conv.weight"], ref.state_dict()["conv1.weight"])


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"not a checkpoint"), "cannot read weights from"),
    (lambda p: torch.save(nn.Linear(2, 2), p), "cannot read weights from"),  # pickled code
    (lambda p: (torch.save({"w": torch.zeros(3)}, p),
                p.write_bytes(p.read_bytes()[:40])), "cannot read weights from"),  # truncated
    (lambda p: torch.save({"linear.weight": torch.full((2, 4), math.nan),
                           "linear.bias": torch.zeros(2)}, p), "holds NaN or infinite values"),
])
def test_a_bad_checkpoint_is_a_diagnostic_naming_it(make, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "m.ssn"
    spec.write_text("model m : tensor[4] = linear(2)\n")
    bad, out = tmp_path / "bad.pt", tmp_path / "w.safetensors"
    make(bad)
    result = CliRunner().invoke(app, ["transfer", str(spec), "--from", str(bad), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error[E0602]" in result.stderr and message in result.stderr, result.stderr
    assert str(bad) in result.stderr and not out.exists()


def test_rules_that_match_nothing_and_order_without_order_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text("model m : tensor[4] = linear(2)\n")
    source = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(2, 4), "fc.bias": torch.zeros(2)}, str(source))
    rules = tmp_path / "m.map"
    rules.write_text("# two rules\nfc\\.(.*) -> linear.\\1\nhead\\.(.*) -> linear.\\1\n")
    result = CliRunner().invoke(app, ["transfer", str(spec), "--from", str(source), "--map",
                                      str(rules), "-o", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 1
    assert "m.map:3:1: error[E0602]: this mapping rule matches no tensor" in result.stderr
    assert "3 | head" in result.stderr
    result = CliRunner().invoke(app, ["transfer", str(spec), "--from", str(source), "--match",
                                      "order"])
    assert "keeps no meaningful order" in result.stderr and "match by names" in result.stderr


def test_owners_that_order_cannot_tell_apart_ask_for_a_rule(tmp_path: Path) -> None:
    path = tmp_path / "two.pt"
    torch.save({"a.weight": torch.randn(4, 3, 1, 1), "a.bias": torch.randn(4),
                "b.weight": torch.randn(4, 3, 1, 1), "b.bias": torch.randn(4)}, path)
    model = ssnc.loads("model m : tensor[3, 4, 4] = (x) => conv(4, 1)(x) + conv(4, 1)(x)"
                       ).model()
    with pytest.raises(ssnc.SsnError, match="are interchangeable"):
        model.transfer(path, match="order")


def test_an_nn_transformer_loads_into_the_seq2seq_spec(tmp_path: Path) -> None:
    from tests.test_seq2seq import Seq2Seq

    torch.manual_seed(0)
    hand = _trained(Seq2Seq(20, 16, 2, 2, 32))
    path = tmp_path / "seq2seq.pt"
    torch.save(hand.state_dict(), path)
    model = ssnc.load(SPECS / "seq2seq_transformer.ssn").model(vocab=20, dim=16, heads=2,
                                                                layers=2, ff=32, drop=0.0)
    weights, report = model.transfer(path, mapping=MAP.parent / "torch_seq2seq_transformer.map")
    assert report.complete, "\n".join(report.lines())
    src, tgt = torch.randint(1, 20, (3, 5)), torch.randint(1, 20, (3, 4))
    src[0, -1] = 0
    with torch.no_grad():
        torch.testing.assert_close(_loaded(model, weights)(src, tgt), hand(src, tgt),
                                   rtol=1e-4, atol=1e-5)


def test_a_mapping_has_budgets_and_counts_layers(tmp_path: Path) -> None:
    from ssnc.transfer import MAX_PATTERN, read_mapping

    with pytest.raises(ssnc.SsnError, match="at most"):
        read_mapping("a" * (MAX_PATTERN + 1) + " -> b\n", "m.map")
    with pytest.raises(ssnc.SsnError, match="is `SOURCE_PATTERN -> TARGET`"):
        read_mapping("just a pattern\n", "m.map")
    path = tmp_path / "two.pt"
    torch.save({"layers.0.weight": torch.ones(2, 4), "layers.1.weight": torch.ones(2, 2)}, path)
    model = ssnc.loads("model m : tensor[4] = linear(2, bias = false) >> "
                       "linear(2, bias = false)").model()
    _, report = model.transfer(path, mapping=[(r"layers\.(\d)\.(.*)", r"linear{1+1}.\2")])
    assert report.complete and [r.sources for r in report.rows] == [["layers.0.weight"],
                                                                     ["layers.1.weight"]]
