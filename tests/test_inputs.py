"""Several inputs: `Graph.inputs` is ordered and named, and every consumer iterates it. The
language gains several inputs later; here a hand-built two-input IR (an image and a vector,
the vector added to the image's features) goes through each consumer: the printer, `info`,
the picture, ONNX (one named graph input each, symbolic axes named after the input) and
PyTorch (a `forward` taking each input by name and position, `torch.export`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import ssnc
from ssnc.backends import onnx as onnx_backend
from ssnc.backends import torch as torch_backend
from ssnc.backends.dot import to_dot
from ssnc.compiler.ir import Graph
from ssnc.compiler.ops import OPS
from ssnc.compiler.passes.infer_shapes import infer_shapes
from ssnc.compiler.printer import format_graph
from ssnc.compiler.stats import info_json
from ssnc.summary import Summary


def two_inputs() -> Graph:
    """`image -> conv >> relu >> gap >> linear(3)`, plus `label` [N, 3]: their sum."""
    g = ssnc.loads("model m : tensor[3, 6, 6] = conv(4) >> relu >> gap >> linear(3)",
                   "m.ssn").model().ir
    last = g[g.outputs[0]]
    top = max(n.index for n in g)
    image = g["input"].evolve(name="image")
    label = g["input"].evolve(name="label", shape=("N", 3), index=top + 1)
    total = last.evolve(name="sum", op="sum", attrs=OPS["sum"].defaults(),
                        inputs=(last.name, "label"), weights=(), params=(), shape=None,
                        index=top + 2)
    rest = [n.evolve(inputs=tuple("image" if i == "input" else i for i in n.inputs))
            for n in g if n.name != "input"]
    graph = Graph.build(g.model, [image, *rest, label, total], g.scopes, ["image", "label"],
                        ["sum"], g.params, "tensor[3, 6, 6], tensor[3]")
    return infer_shapes(graph)


def _feeds() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
            rng.standard_normal((2, 3)).astype(np.float32))


def test_the_ir_keeps_its_inputs_in_order_and_every_view_shows_both() -> None:
    g = two_inputs()
    g.verify()
    assert g.inputs == ("image", "label") and g["label"].is_input
    text = format_graph(g)
    assert "%image : f32[N,3,6,6]{NCHW} = input()" in text and "%label : f32[N,3] = input()" in text
    assert info_json(g)["outputs"] == [{"name": "sum", "shape": ["N", 3], "roles": "NC"}]
    assert not Summary(g).timed
    dot = to_dot(g)
    assert '"image"' in dot and '"label"' in dot


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
def test_onnx_has_one_named_input_each_and_equals_pytorch(flat: bool) -> None:
    g = two_inputs()
    proto = onnx_backend.export(g, onnx_backend.OnnxOptions(flat=flat), seed=3)
    onnx.checker.check_model(proto, full_check=True)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}
    assert dims == {"image": ["N", 3, 6, 6], "label": ["N", 3]}
    image, label = _feeds()
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": image, "label": label})[0]
    net = torch_backend.to_torch(g, seed=3).eval()
    with torch.no_grad():
        by_position = net(torch.from_numpy(image), torch.from_numpy(label))
        by_name = net(label=torch.from_numpy(label), image=torch.from_numpy(image))
    torch.testing.assert_close(by_position, by_name)
    np.testing.assert_allclose(got, by_position.numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        alone = net(torch.from_numpy(image), torch.zeros(2, 3))
    np.testing.assert_allclose(by_position.numpy() - alone.numpy(), label, rtol=1e-5,
                               atol=1e-6)  # the label is added, as the IR says


def test_symbolic_image_axes_are_named_after_their_input() -> None:
    g = two_inputs()
    proto = onnx_backend.export(g, onnx_backend.OnnxOptions(symbolic_hw=True))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}
    assert dims == {"image": ["N", 3, "image_H", "image_W"], "label": ["N", 3]}
    image = np.random.default_rng(1).standard_normal((1, 3, 10, 7)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": image, "label": _feeds()[1][:1]})[0].shape == (1, 3)


def test_generated_source_and_export_take_every_input() -> None:
    g = two_inputs()
    source = torch_backend.generate_source(g)
    assert "def forward(self, image: torch.Tensor, label: torch.Tensor):" in source
    assert "Inputs image f32[N,3,6,6], label f32[N,3];" in source
    xs = torch_backend.example_inputs(g)
    assert [tuple(x.shape) for x in xs] == [(2, 3, 6, 6), (2, 3)]
    with pytest.raises(ValueError, match="has 2 inputs"):
        torch_backend.example_input(g)
    net = torch_backend.to_torch(g, seed=0).eval()
    program = torch_backend.export_program(g, net)
    other = (torch.randn(5, 3, 6, 6), torch.randn(5, 3))  # another batch size
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*other), net(*other))


SEQ2SEQ = """
model s2s(vocab = 20, d = 8) : src: tokens[vocab], tgt: tokens[vocab] = (src, tgt) =>
    let memory = src >> embedding(vocab, d) >> gap >> unsqueeze(1) in
    (tgt >> embedding(vocab, d) >> lstm(d)) + memory >> linear(vocab)
"""


def test_a_spec_names_its_inputs_and_each_keeps_its_own_time_axis() -> None:
    m = ssnc.loads(SEQ2SEQ, "s2s.ssn").model()
    assert m.ir.inputs == ("src", "tgt") and m.ir.input_type == "src: tokens[20], tgt: tokens[20]"
    assert {k: (i.shape, i.roles, i.dtype) for k, i in m.inputs.items()} == {
        "src": (("N", "src_T"), "NT", "i64"), "tgt": (("N", "tgt_T"), "NT", "i64")}
    assert "%src : i64[N,src_T]{NT} = input[vocab=20]()" in m.format_ir()
    assert m.to_onnx().graph.input[1].name == "tgt"


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "functions"])
def test_two_sequences_of_different_lengths_in_onnx_and_pytorch(flat: bool) -> None:
    m = ssnc.loads(SEQ2SEQ, "s2s.ssn").model()
    proto = m.to_onnx(flat=flat, seed=1)
    onnx.checker.check_model(proto, full_check=True)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}
    assert dims == {"src": ["N", "src_T"], "tgt": ["N", "tgt_T"]}
    net = m.to_torch(seed=1).eval()
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for src_len, tgt_len in ((3, 7), (9, 1)):
        src = torch.randint(0, 20, (2, src_len), generator=gen)
        tgt = torch.randint(0, 20, (2, tgt_len), generator=gen)
        with torch.no_grad():
            by_position, by_name = net(src, tgt), net(tgt=tgt, src=src)
        torch.testing.assert_close(by_position, by_name)
        assert by_position.shape == (2, tgt_len, 20)
        got = session.run(None, {"src": src.numpy(), "tgt": tgt.numpy()})[0]
        np.testing.assert_allclose(got, by_position.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="tgt"):
        net(src)


def test_steps_fix_each_inputs_length_or_all_of_them() -> None:
    m = ssnc.loads(SEQ2SEQ, "s2s.ssn").model()

    def dims(**options: object) -> dict[str, list[object]]:
        proto = m.to_onnx(**options)
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in [*proto.graph.input, *proto.graph.output]}
    assert dims(steps={"src": 7, "tgt": 5}) == {"src": ["N", 7], "tgt": ["N", 5],
                                                "logits": ["N", 5, 20]}
    assert dims(steps=4) == {"src": ["N", 4], "tgt": ["N", 4], "logits": ["N", 4, 20]}
    with pytest.raises(ssnc.SsnError, match="no input `srx`"):
        m.to_onnx(steps={"srx": 3})
    with pytest.raises(ssnc.SsnError, match="writes every time loop out to one length"):
        m.to_onnx(steps={"src": 3, "tgt": 4}, unroll=True)


def test_the_cli_takes_steps_per_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ssnc.cli import app

    spec = tmp_path / "s2s.ssn"
    spec.write_text(SEQ2SEQ)
    out = tmp_path / "m.onnx"
    runner = CliRunner()
    ok = runner.invoke(app, ["compile", str(spec), "-o", str(out), "--steps", "src=6",
                             "--steps", "tgt=2"])
    assert ok.exit_code == 0, ok.output
    assert [d.dim_value for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim] \
        == [0, 6]
    for bad, message in ((["--steps", "src"], "give one length, or INPUT=LENGTH"),
                         (["--steps", "tgt=x"], "--steps must be a positive integer"),
                         (["--steps", "trg=3"], "did you mean `tgt`?")):
        result = runner.invoke(app, ["compile", str(spec), "-o", str(tmp_path / "n.onnx"), *bad])
        assert result.exit_code == 1 and message in result.stderr, result.output
        assert "Traceback" not in result.output and not (tmp_path / "n.onnx").exists()


def test_both_time_axes_stay_dynamic_in_torch_export() -> None:
    m = ssnc.loads(SEQ2SEQ, "s2s.ssn").model()
    net = m.to_torch().eval()
    program = torch_backend.export_program(m.ir, net)
    src, tgt = torch.randint(0, 20, (3, 11)), torch.randint(0, 20, (3, 2))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(src, tgt), net(src, tgt))


@pytest.mark.parametrize("source,needle", [
    ("model m : a: tensor[3], a: tensor[4] = (x, y) => x + linear(3)(y)\n",
     "error[E0102]: input `a` is given twice"),
    ("model m : linear: tensor[3], b: tensor[4] = (x, y) => linear(4)(x) + y\n",
     "the input `linear` has the name of a part of the model (`linear`)"),
    ("model m : a: tensor[3], b: tensor[4] = (x) => x\n", "this block takes 1 stream, got 2"),
])
def test_bad_inputs_are_diagnostics(source: str, needle: str, tmp_path: Path) -> None:
    from tests.conftest import compile_refused

    assert needle in compile_refused(tmp_path, source)


def test_every_command_takes_a_spec_with_several_inputs(tmp_path: Path) -> None:
    """`info` (table and JSON), `graph`, `--batch` (every input's N) and `--tap` on the
    two-input spec, from the command line."""
    import json

    from typer.testing import CliRunner

    from ssnc.cli import app

    spec = tmp_path / "s2s.ssn"
    spec.write_text(SEQ2SEQ)
    runner = CliRunner()
    info = runner.invoke(app, ["info", str(spec), "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["input"] == "src: tokens[20], tgt: tokens[20]"
    table = runner.invoke(app, ["info", str(spec)])
    assert table.exit_code == 0 and "[N,tgt_T,20]{NTC}" in table.stdout
    picture = runner.invoke(app, ["graph", str(spec), "-o", str(tmp_path / "s2s.dot")])
    assert picture.exit_code == 0, picture.output
    dot = (tmp_path / "s2s.dot").read_text()
    assert '"src"' in dot and '"tgt"' in dot
    out = tmp_path / "m.onnx"
    tapped = runner.invoke(app, ["compile", str(spec), "-o", str(out), "--batch", "2",
                                 "--tap", "gap"])
    assert tapped.exit_code == 0, tapped.output
    proto = onnx.load(out)
    assert [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input] == [[2, "src_T"], [2, "tgt_T"]]
    assert [o.name for o in proto.graph.output] == ["logits", "gap"]
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    logits, pooled = session.run(None, {"src": np.zeros((2, 4), np.int64),
                                        "tgt": np.ones((2, 3), np.int64)})
    assert logits.shape == (2, 3, 20) and pooled.shape == (2, 8)


def test_a_forward_takes_inputs_by_name_or_position_and_names_a_bad_one() -> None:
    m = ssnc.loads(SEQ2SEQ, "s2s.ssn").model()
    net = m.to_torch().eval()
    src, tgt = torch.randint(0, 20, (3, 11)), torch.randint(0, 20, (3, 2))
    with torch.no_grad():
        want = net(src, tgt)
        torch.testing.assert_close(net(tgt=tgt, src=src), want)
        torch.testing.assert_close(net(src.int(), tgt), want)  # any integer ids
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'tgt'"):
        net(src)
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4 were given"):
        net(src, tgt, tgt)
    bad = [((src, tgt.float()), r"input `tgt` must be i64\[N, tgt_T\], got float32\[3, 2\]"),
           ((src, tgt[None]), r"input `tgt` must be i64\[N, tgt_T\], got int64\[1, 3, 2\]"),
           ((src, tgt[:2]), "input `tgt` has N = 2, input `src` has N = 3"),
           ((src, "tgt"), "input `tgt` must be a torch.Tensor")]
    for args, message in bad:
        with pytest.raises((ValueError, TypeError), match=message):
            net(*args)


def test_an_image_forward_checks_channels_and_lets_a_convolutional_net_take_any_size() -> None:
    m = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> relu >> gap >> flatten >> "
                   "linear(2)", "m.ssn").model()
    net = m.to_torch().eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 12, 10)).shape == (2, 2)
        assert net(torch.randn(2, 3, 8, 8).double().float()).shape == (2, 2)
    with pytest.raises(ValueError, match=r"input `x` must be f32\[N, 3, H, W\], got "
                       r"float32\[2, 4, 8, 8\]"):
        net(torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"got int64\[2, 3, 8, 8\]"):
        net(torch.zeros(2, 3, 8, 8, dtype=torch.long))
