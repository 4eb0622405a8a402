"""Elaboration: the language's meaning, the published configurations, limits."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ssnc
from ssnc.backends.torch import example_input
from ssnc.base.diagnostics import SsnError
from ssnc.compiler.ir import walk
from tests.conftest import SPECS, compile_refused, ort_output


def model(text: str, **params: object) -> ssnc.Model:
    return ssnc.loads(text, "t.ssn").model(**params)  # type: ignore[arg-type]


def ops(m: ssnc.Model) -> list[str]:
    return [n.op for n in m.ir if not n.is_source]


# ------------------------------------------------------------ published figures

@pytest.mark.parametrize("spec,params,expected", [
    ("fractalnet.ssn", {"classes": 10, "C": 3}, 33_724_618),
    ("fractalnet.ssn", {"classes": 100, "C": 3}, 33_770_788),
    ("fractalnet_caffe.ssn", {"classes": 10, "C": 3}, 33_714_314),
    ("nin_cifar10.ssn", {}, 966_986),
    ("nin_cifar10.ssn", {"classes": 100}, 984_356),
])
def test_published_parameter_counts(spec: str, params: dict[str, int], expected: int) -> None:
    assert ssnc.load(SPECS / spec).model(**params).total_params == expected


def test_fractalnet_c4_is_about_76m() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=4, classes=10)
    assert 76_000_000 < m.total_params < 76_200_000


def test_fractal_c4_structure() -> None:
    m = model("model f : tensor[16, 8, 8] = fractal(C=4, base=conv3x3)")
    convs = [n for n in m.ir if n.op == "conv"]
    assert len(convs) == 15
    joins = [n for n in m.ir if n.op == "mean"]
    assert [(len(j.inputs), j.depth) for j in joins] == [(2, 2), (3, 4), (2, 6), (4, 8)]
    # each join takes the deepest k columns
    assert [j.input_columns for j in joins] == [(4, 3), (4, 3, 2), (4, 3), (4, 3, 2, 1)]
    per_column = {c: sum(1 for n in convs if n.column == c) for c in range(1, 5)}
    assert per_column == {1: 1, 2: 2, 3: 4, 4: 8}
    deepest = sorted(n.position for n in convs if n.column == 4)
    assert deepest == list(range(1, 9))


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 6))
def test_fractal_counts_for_any_c(c: int) -> None:
    m = model(f"model f : tensor[4, 4, 4] = fractal({c}, conv(4))")
    convs = [n for n in m.ir if n.op == "conv"]
    assert len(convs) == 2**c - 1
    depth = max(n.position for n in convs if n.column == c) if c > 1 else 1
    assert depth == 2 ** (c - 1)
    for col in range(1, c + 1):
        assert sum(1 for n in convs if (n.column or 1) == col) == 2 ** (col - 1)


def test_merged_join_is_one_mean_of_three() -> None:
    m = model("model f : tensor[4, 4, 4] = fractal(3, conv(4))")
    joins = [n for n in m.ir if n.op == "mean"]
    assert [len(j.inputs) for j in joins] == [2, 3]
    assert all(m.ir[i].op == "conv" for j in joins for i in j.inputs)


def test_caffe_layout_pools_each_column_before_final_join() -> None:
    m = ssnc.load(SPECS / "fractalnet_caffe.ssn").model(widths=[8], drops=[0.0])
    joins = [n for n in m.ir if n.op == "mean"]
    assert [len(j.inputs) for j in joins] == [2, 3]
    assert all(m.ir[i].op == "maxpool" for i in joins[1].inputs)
    assert all(m.ir[i].op != "maxpool" for i in joins[0].inputs)
    assert [c for c in joins[1].input_columns] == [3, 2, 1]


def test_state_names_are_stable_scope_paths() -> None:
    names1 = [n.name for n in ssnc.load(SPECS / "fractalnet.ssn").model().ir]
    names2 = [n.name for n in ssnc.load(SPECS / "fractalnet.ssn").model().ir]
    assert names1 == names2
    assert "stage2.fractal.col3.unit2.conv" in names1
    assert "stage5.fractal.join2" in names1
    assert len(set(names1)) == len(names1)


# ------------------------------------------------------------ the language

def test_repetition_forms_agree() -> None:
    forms = ["mlpconv×3", "mlpconv x3", "mlpconv*3", "mlpconv × 3", "3 * mlpconv",
             "repeat(mlpconv, 3)"]
    counts = {model(f"model m : tensor[3, 32, 32] = nin({f})").total_params for f in forms}
    assert len(counts) == 1
    m = model("model m : tensor[3, 32, 32] = nin(mlpconv×3)")
    assert {"nin.mlpconv1.conv1", "nin.mlpconv3.conv3"} <= {n.name for n in m.ir}


def test_each_use_is_a_fresh_instance_unless_shared() -> None:
    fresh = model("model m : tensor[8, 4, 4] = let b = conv(8, 3) in b >> b >> b")
    tied = model("model m : tensor[8, 4, 4] = let b = shared(conv(8, 3)) in b >> b >> b")
    one = 8 * 8 * 9 + 8
    assert fresh.total_params == 3 * one
    assert tied.total_params == one
    convs = [n for n in tied.ir if n.op == "conv"]
    assert convs[0].weights == convs[1].weights == convs[2].weights  # one parameter node each
    assert [tied.ir.shares(n) for n in convs] == [None, convs[0].name, convs[0].name]
    params = [n for n in tied.ir if n.op == "param"]
    assert [p.name for p in params] == [f"{convs[0].name}.weight", f"{convs[0].name}.bias"]
    assert [r for r, _ in tied.ir.consumers(params[0].name)] == [c.name for c in convs]
    assert len([n for n in fresh.ir if n.op == "param"]) == 6


def test_unrolled_residual_shares_weights() -> None:
    m = model("model m : tensor[8, 4, 4] = unrolled(conv(8) >> bn >> relu >> conv(8), 4)")
    one_step = 2 * (8 * 8 * 9 + 8) + 2 * 8
    assert m.total_params == one_step
    assert sum(1 for n in m.ir if n.op == "sum") == 4


def test_shared_block_on_a_different_shape_is_refused() -> None:
    with pytest.raises(SsnError) as info:
        model("model m : tensor[3, 8, 8] = let b = shared(conv(8)) in b >> b")
    assert info.value.code == "E0301"


def test_named_wires_and_two_streams() -> None:
    res = model("model m : tensor[8, 4, 4] = (x) => relu(x + conv(8)(bn(x)))")
    assert ops(res) == ["bn", "conv", "sum", "relu"]
    rir = model("model m : tensor[8, 4, 4] = (x) => let s = rir_layer(8)(x, x) in "
                "concat(s[0], s[1])")
    assert rir.ir[rir.ir.outputs[0]].shape == ("N", 16, 4, 4)
    assert sum(1 for n in rir.ir if n.op == "conv") == 4


def test_wire_pipe_and_joins_on_wires() -> None:
    m = model("model m : tensor[4, 4, 4] = (x) => mean(x >> conv(4), x >> relu, x)")
    join = next(n for n in m.ir if n.op == "mean")
    assert len(join.inputs) == 3 and m.ir[join.inputs[2]].op == "input"


def test_sum_of_sums_merges_but_merge_false_keeps_nesting() -> None:
    merged = model("model m : tensor[4] = (x) => x + relu(x) + sigmoid(x)")
    assert [len(n.inputs) for n in merged.ir if n.op == "sum"] == [3]
    nested = model("model m : tensor[4] = (x) => mean(mean(relu(x), tanh(x), merge=false), x)")
    assert [len(n.inputs) for n in nested.ir if n.op == "mean"] == [2, 2]


def test_parameters_defaults_and_arithmetic() -> None:
    text = ("def widen(w, k = 2) = conv(w * k, 1)\n"
            "model m(base = 4, n = 3) : tensor[3, 8, 8] = "
            "seq([widen(base * 2 ** i) for i in range(n)]) >> gap >> linear(10)")
    m = model(text)
    assert [n.shape[1] for n in m.ir if n.op == "conv"] == [8, 16, 32]  # type: ignore[index]
    m2 = model(text, n=2, base=1)
    assert [n.shape[1] for n in m2.ir if n.op == "conv"] == [2, 4]  # type: ignore[index]


def test_shapes_follow_pytorch_rules() -> None:
    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    pools = [n.shape for n in m.ir if n.op == "maxpool"]
    assert pools == [("N", 96, 16, 16), ("N", 192, 8, 8)]
    assert m.ir[m.ir.outputs[0]].shape == ("N", 10)


def test_token_input_and_embedding() -> None:
    m = model("model lm(v = 50) : tokens[v] = embedding(v, 16) >> linear(v)")
    assert m.ir[m.ir.outputs[0]].shape == ("N", "T", 50)
    with pytest.raises(SsnError) as info:
        model("model lm : tokens[50] = linear(10)")
    assert info.value.code == "E0301"


def test_a_lambda_collects_the_remaining_streams() -> None:
    m = model("model m : sequence[3] = scan((x, *s) => (x + s[1], s[1], s[0] * 2.0), "
              "state = [3, 3])")
    body = m.ir["scan.scan"].body
    assert body is not None and len(body.inputs) == 3 and len(body.outputs) == 3
    with pytest.raises(SsnError) as info:
        model("model m : sequence[3] = (x, *a, b) => x")
    assert "only the last parameter" in info.value.render()
    with pytest.raises(SsnError) as info:
        model("model m : sequence[3] = (x, y, *z) => x")
    assert "takes at least 2 streams, got 1" in info.value.render()


def test_card_forms_elaborate() -> None:
    m = model("model card : tensor[3, 32, 32] = conv(64) >> fractal(C=4, base=conv3x3) "
              ">> nin(mlpconv×3)")
    assert sum(1 for n in m.ir if n.op == "mean") == 4


def test_user_rules_shadow_the_standard_library() -> None:
    m = model("def fractal(C, base) = base × C\nmodel m : tensor[4, 4, 4] = fractal(3, relu)")
    assert ops(m) == ["relu"] * 3


def test_imports_inside_the_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "units.ssn").write_text("def unit(w) = conv(w, 3) >> relu\n")
    (tmp_path / "main.ssn").write_text('import "lib/units.ssn"\n'
                                       "model m : tensor[3, 8, 8] = unit(4) x2\n")
    m = ssnc.load(tmp_path / "main.ssn").model()
    assert ops(m) == ["conv", "relu", "conv", "relu"]


def test_import_through_a_symlink_out_of_the_tree_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside.ssn"
    outside.write_text("def unit = relu\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.ssn").symlink_to(outside)
    (tree / "main.ssn").write_text('import "link.ssn"\nmodel m : tensor[3] = unit\n')
    with pytest.raises(SsnError) as info:
        ssnc.load(tree / "main.ssn")
    assert info.value.code == "E0502"


# ------------------------------------------------------------ limits

def test_huge_fractal_refused_before_allocating() -> None:
    with pytest.raises(SsnError) as info:
        model("model m : tensor[3, 32, 32] = fractal(C=30, base=conv3x3(16))")
    assert info.value.code == "E0403"
    # size(f_1) = 3 (conv, bn, relu); size(f_C) = 2 size(f_{C-1}) + 3 + 1 = 7 * 2^(C-1) - 4
    assert f"would expand to {7 * 2**29 - 4:,} nodes" in info.value.render()


def test_limits_are_configurable() -> None:
    text = "model m : tensor[4, 4, 4] = fractal(5, conv(4))"
    assert len(ssnc.loads(text).model().ir) > 31
    with pytest.raises(SsnError) as info:
        ssnc.loads(text).model(limits=ssnc.Limits(max_nodes=20))
    assert info.value.code == "E0403"


def test_unbounded_recursion_hits_the_depth_limit() -> None:
    with pytest.raises(SsnError) as info:
        model("def f(n) = if n == 0 then relu else f(n + 1) >> relu\n"
              "model m : tensor[4] = f(1)")
    assert info.value.code == "E0402"


def test_overrides_are_checked() -> None:
    with pytest.raises(SsnError) as info:
        ssnc.load(SPECS / "fractalnet.ssn").model(clases=10)
    assert info.value.code == "E0601"
    assert "did you mean `classes`" in info.value.render()


def test_arithmetic_on_wires_makes_sub_and_affine_nodes() -> None:
    m = model("model m : sequence[4] = (x) => (1 - x * 0.5) - -x / 4 + (x - 2)")
    nodes = [n for n in m.ir if not n.is_source]
    got = [(n.op, dict(n.attrs)) for n in nodes]
    assert got == [("affine", {"scale": 0.5, "shift": 0.0}),
                   ("affine", {"scale": -1.0, "shift": 1.0}),
                   ("affine", {"scale": -1.0, "shift": 0.0}),
                   ("affine", {"scale": 0.25, "shift": 0.0}),
                   ("sub", {}),
                   ("affine", {"scale": 1.0, "shift": -2.0}),
                   ("sum", {"drop_path": 0.0, "merge": True})]


@pytest.mark.parametrize("text,message", [
    ("(x) => 2 / x", "`/` does not apply to a number and a wire"),
    ("(x) => x / 0", "division by zero"),
    ("(x) => x ** 2", "`**` does not apply to a wire and a number"),
    ("slice(1, 2, 2)", "is empty or outside axis 1 of size 4"),
    ("slice(0)", "slice's axis 0 is not an axis after the batch axis"),
    ("hard_sigmoid(0)", "`hard_sigmoid`'s `slope` must be positive and finite"),
    ("reshape([5, -1])", "cannot reshape the 36 features of [N,4,3,3]{NCHW} into [5, -1]"),
    ("reshape([-1, -1])", "must be positive integers, at most one of them -1"),
    ("reshape([0, 36])", "must be positive integers"),
    ('reshape(["a"])', "`reshape`'s `shape` (the new sizes, a list such as [4, -1]) must be a "
                       "list of integers, got one holding a string"),
    ("reshape([conv, 2])", "must be a list of integers, got one holding"),
    ("reshape(36)", "`reshape`'s `shape` (the new sizes, a list such as [4, -1]) must be a list"),
])
def test_cell_op_mistakes_are_diagnostics(text: str, message: str) -> None:
    with pytest.raises(ssnc.SsnError) as info:
        model(f"model m : tensor[4, 3, 3] = {text}")
    assert message in info.value.render()
    assert info.value.diagnostics[0].span.line == 1


def test_let_unpacks_a_tuple(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`let (y, h, c) = ...` binds each item; a count that does not fit is a diagnostic at
    the value, and a name given twice is one too."""
    ok = ssnc.loads("model m : sequence[4] = (x) =>\n    let (y, h, c) = lstm(3, final = true)(x)"
                    " in outputs(y = y, c = c)\n", "l.ssn").model()
    assert [ok.ir.output_name(i) for i in range(2)] == ["y", "c"]
    bad = compile_refused(tmp_path, "model m : sequence[4] = (x) => let (y, h) = "
                                    "lstm(3, final = true)(x) in y\n")
    assert "cannot unpack 3 values into (y, h)" in bad and "m.ssn:1:45:" in bad, bad
    twice = compile_refused(tmp_path, "model m : tensor[4] = (x) => let (a, a) = (x, x) in a\n")
    assert "error[E0102]" in twice and "name `a` is given twice" in twice, twice


DENSE = """\
def dense_layer(growth) = (x) => concat(x, (bn >> relu >> conv(growth, 3))(x))
def transition = (x) => (bn >> relu >> conv(channels(x) // 2, 1) >> avgpool(2))(x)
model m : tensor[3, 16, 16] = conv(8, 3) >> dense_layer(4) × 3 >> transition
    >> ((x) => conv(size(x, 2) * size(x, -1))(x))
"""


def test_a_rule_reads_its_input_wires_shape() -> None:
    """DenseNet's compression without bookkeeping: 8 + 3 * 4 = 20 channels, halved to 10
    by the transition's conv; `size` reads the spatial size (8 x 8 after its pool)."""
    m = ssnc.loads(DENSE, "d.ssn").model()
    shapes = [n.shape for n in m.ir if n.op == "conv"]
    assert shapes[-2] == ("N", 10, 16, 16) and shapes[-1] == ("N", 64, 8, 8)


@pytest.mark.parametrize(("source", "needle", "column"), [
    ("model m : sequence[4] = (x) => linear(size(x, 1))(x)\n",
     "axis 1 of [N, T, 4] is `T`, the sequence length: it has no value while the model is "
     "built", 39),
    ("model m : tensor[4] = (x) => linear(channels(x) * size(x, 0))(x)\n",
     "axis 0 of [N, 4] is `N`, the batch size", 51),
    ("model m : tensor[4] = (x) => linear(size(x, 2))(x)\n", "axis 2 is not an axis of [N, 4]",
     37),
    ("model m : tensor[4] = linear(channels(3))\n", "`channels` reads the shape of a wire, not "
     "a number", 30),
    ("model m : sequence[4] = scan((x, h) => (linear(size(x, 0))(x), h), state = [4])\n",
     "axis 0 of [N, 4] is `N`, the batch size", 48),  # inside a cell, its step input
])
def test_shape_queries_that_have_no_value_are_diagnostics(source: str, needle: str,
                                                          column: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stderr = compile_refused(tmp_path, source)
    assert needle in stderr and f"m.ssn:1:{column}:" in stderr, stderr


CELLS = """
def gated = (x, h) => let w = channels(x) + channels(h) in (linear(w)(x), h)
def inner = scan((y, g) => (linear(channels(y) * size(g, 1))(y), g), state = [2])
model cell : sequence[6] = scan(gated, state = [3]) >> linear(2)
model nested : sequence[6] =
    scan((x, h) => ((reshape([3, 2], roles = "TC") >> inner >> flatten
                     >> linear(channels(h) + 1))(x), h),
         state = [5])
    >> linear(2)
"""


@pytest.mark.parametrize(("name", "widths"), [("cell", [9, 2]), ("nested", [4, 6, 2])])
def test_a_cell_reads_its_wires_shapes(name: str, widths: list[int]) -> None:
    """`channels(x)` and `size(x, axis)` inside a loop's cell read the step input's and the
    states' shapes (6 + 3 = 9), in a cell nested in another's too (the inner loop runs over
    the outer step reshaped to 3 steps of 2, with a state of 2: 2 * 2 = 4; the outer state
    is 5: 5 + 1 = 6); both backends compile it and agree."""
    m = ssnc.loads(CELLS, "c.ssn").model(name)
    linears = [n for _, n in walk(m.ir) if n.op == "linear"]
    assert sorted(n.shape[-1] for n in linears) == sorted(widths)  # type: ignore[index]
    x = example_input(m.ir, batch=3, steps=4)
    net = m.to_torch(seed=0).eval()
    with torch.no_grad():
        want = net(x).numpy()
    for flat in (True, False):
        np.testing.assert_allclose(ort_output(m.to_onnx(seed=0, flat=flat), x.numpy()), want,
                                   rtol=1e-5, atol=1e-6)


def test_the_expansion_hint_measures_the_rules_growth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """E0403 names the recursive rule and how much it grows per level (×3 here)."""
    stderr = compile_refused(tmp_path, "def t(d) = if d == 0 then conv(4) >> relu "
                                       "else t(d - 1) >> t(d - 1) >> t(d - 1)\n"
                                       "model m : tensor[3, 8, 8] = t(12)\n")
    assert "error[E0403]" in stderr
    assert "`t` grows about ×3.0 per level of its recursion (354,294 -> 1,062,882 nodes)" in stderr


def test_a_comprehension_nests_its_for_clauses_as_python_does() -> None:
    """Later clauses see earlier names; conditions filter where they stand; the order is
    Python's (the last clause varies fastest)."""
    m = ssnc.loads("model m : tensor[4] = seq([linear(10 * a + b) for a in [1, 2, 3] if a != 2 "
                   "for b in range(a) if b != 1])", "m.ssn").model()
    outs = [n.attrs["out"] for n in m.ir if n.op == "linear"]
    want = [10 * a + b for a in [1, 2, 3] if a != 2 for b in range(a) if b != 1]
    assert outs == want == [10, 30, 32]


def test_a_nested_comprehension_stays_within_the_list_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stderr = compile_refused(tmp_path, "model m : tensor[4] = seq([relu for a in range(1000) "
                             "for b in range(1000)])\n")
    assert "error[E0404]" in stderr and "longer than the limit of 100,000" in stderr


def test_a_blow_up_points_at_the_recursive_call_and_notes_the_outermost(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stderr = compile_refused(tmp_path, "def grow(n) = if n == 0 then relu else grow(n - 1) >> "
                             "grow(n - 1)\nmodel m : tensor[4] = grow(40)\n")
    assert "m.ssn:1:40: error[E0403]" in stderr  # the first recursive call, `grow(n - 1)`
    assert "note: the outermost `grow`, called here, would make 1,099,511,627,776 nodes" \
        in stderr and "m.ssn:2:23)" in stderr


def test_an_error_in_a_users_rule_notes_the_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's example: the bad kernel is at `k` in the rule, and the note is at the call
    that passed -2."""
    stderr = compile_refused(tmp_path, "def cbr(w, k = 1) = conv(w, k, bias = false) >> bn >> "
                             "relu\nmodel m : tensor[3, 8, 8] = cbr(16, -2)\n")
    assert "m.ssn:1:29: error[E0202]" in stderr
    assert "note: in `cbr(w=16, k=-2)`, called from here" in stderr and "m.ssn:2:29)" in stderr


@pytest.mark.parametrize(("line", "hint"), [
    # a call: a near name that takes the call's arguments, keywords included
    ("towr(width = 3) >> gap", "did you mean `tower`?"),
    ("towr(3, 2, 1) >> gap", None),  # `tower` takes two arguments; no other near name fits
    ("towe(size = 3) >> gap", "did you mean `towel`?"),  # `tower` takes no `size`
    ("towe(depth = 3) >> gap", "did you mean `tower`?"),  # nor `towel` a `depth`
    ("towr(wdith = 3) >> gap", "did you mean `tower`?"),  # no keyword fits: by arity
    ("lstm_cel(8) >> gap", "did you mean `lstm_cell`?"),  # the standard library's rules too
    # a number: a near value, never an op, rule or built-in function
    ("(if widht > 2 then relu else tanh) >> gap", "did you mean `width`?"),
    ("(if towerr > 2 then relu else tanh) >> gap", None),
    ("(if rrange > 2 then relu else tanh) >> gap", None),
    # a block: an op or a rule
    ("rellu >> gap", "did you mean `relu`?"),
])
def test_a_near_name_is_suggested_only_where_it_fits(line: str, hint: str | None) -> None:
    text = (f"def tower(width, depth = 2) = conv(width, 3) × depth\n"
            f"def towel(size) = conv(size, 1)\n"
            f"model m(width = 4) : tensor[3, 8, 8] = {line} >> flatten >> linear(3)\n")
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(text)
    (diag,) = info.value.diagnostics
    assert diag.code.id == "E0101"
    assert diag.hint == hint


@pytest.mark.parametrize("spec", ["fractalnet.ssn", "hmrnn_charlm.ssn", "transformer_lm.ssn"])
def test_an_elaboration_leaves_no_cyclic_garbage(spec: str) -> None:
    """What elaborating makes and drops (the first graph, the evaluator's records) goes by
    reference counting, at once: a cycle among it would wait for the collector, holding a
    whole graph (the guard keeps the collector off while a phase runs)."""
    program = ssnc.load(SPECS / spec)
    program.model()  # warm: caches that live on
    gc.collect()
    gc.disable()
    try:
        model = program.model()
        found = gc.collect()
    finally:
        gc.enable()
    assert len(model.ir) > 0
    assert found == 0
