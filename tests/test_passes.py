"""One test group per pass, on small graphs, with verify() after each pass."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ssnc
from ssnc.base.diagnostics import SsnError
from ssnc.compiler.elaborate import Elaborator
from ssnc.compiler.guard import guarded
from ssnc.compiler.ir import Graph, Node
from ssnc.compiler.passes.assign_names import assign_names
from ssnc.compiler.passes.flatten_joins import flatten_joins
from ssnc.compiler.passes.infer_shapes import infer_shapes
from ssnc.compiler.passes.tag_columns import tag_columns
from ssnc.compiler.pipeline import PASSES, run_passes
from ssnc.compiler.stats import param_count, total_params


def elaborated(text: str) -> Graph:
    """The graph straight out of elaboration, before any pass."""
    program = ssnc.loads(text, "t.ssn")
    decl = next(iter(program.models.values()))
    elab = Elaborator(program._main.env)
    return guarded(lambda: elab.elaborate_model(decl, {}))


def test_every_pass_keeps_the_graph_valid() -> None:
    graph = elaborated("model m : tensor[8, 8, 8] = fractal(3, conv3x3) >> gap >> linear(4)")
    graph.verify()
    out = run_passes(graph, PASSES, verify_each=True)
    assert all(n.shape is not None for n in out)


def test_flatten_joins_merges_chains_only_when_sole_reader() -> None:
    g = flatten_joins(elaborated("model m : tensor[4] = (x) => sum(sum(relu(x), tanh(x)), x)"))
    assert [len(n.inputs) for n in g if n.op == "sum"] == [3]
    # the inner join also feeds something else: merging would change that reader
    g = flatten_joins(elaborated(
        "model m : tensor[4] = (x) => let s = sum(relu(x), tanh(x)) in mul(sum(s, x), s)"))
    assert sorted(len(n.inputs) for n in g if n.op == "sum") == [2, 2]
    # different kinds or attributes never merge
    g = flatten_joins(elaborated("model m : tensor[4] = (x) => mean(sum(relu(x), x), x)"))
    assert sorted((n.op, len(n.inputs)) for n in g if n.op in ("sum", "mean")) == [
        ("mean", 2), ("sum", 2)]
    g = flatten_joins(elaborated(
        "model m : tensor[4] = (x) => mean(mean(relu(x), x, drop_path=0.1), x)"))
    assert sorted(len(n.inputs) for n in g if n.op == "mean") == [2, 2]


def test_flatten_joins_merges_a_join_of_one_input() -> None:
    """sum([a]) + b: the inner join of one input merges too, and nothing reads the removed
    node (the outer join's arity does not change, its inputs do)."""
    g = flatten_joins(elaborated("model m : tensor[4] = (x) => sum([relu(x)]) + tanh(x)"))
    g.verify()
    assert [[g[i].op for i in n.inputs] for n in g if n.op == "sum"] == [["relu", "tanh"]]


def test_flatten_joins_keeps_concat_order() -> None:
    g = flatten_joins(elaborated(
        "model m : tensor[4, 2, 2] = (x) => concat(concat(relu(x), tanh(x)), sigmoid(x))"))
    (cat,) = [n for n in g if n.op == "concat"]
    assert [g[i].op for i in cat.inputs] == ["relu", "tanh", "sigmoid"]


def test_tag_columns_ignores_recursion_without_joins() -> None:
    text = ("def tower(n) = if n == 0 then identity else relu >> tower(n - 1)\n"
            "model m : tensor[4] = tower(3)")
    g = tag_columns(flatten_joins(elaborated(text)))
    assert all(n.column is None and n.fractal is None for n in g)


def test_tag_columns_ranks_inputs_by_depth_not_argument_order() -> None:
    # the shallow branch written first: columns still follow path length
    text = ("def frac(C, b) = if C == 1 then b else mean(b, frac(C - 1, b) >> frac(C - 1, b))\n"
            "model m : tensor[4, 4, 4] = frac(3, conv(4))")
    g = tag_columns(flatten_joins(elaborated(text)))
    joins = [n for n in g if n.op == "mean"]
    assert [j.input_columns for j in joins] == [(2, 3), (1, 2, 3)]


def test_non_fractal_joins_inside_a_fractal_base() -> None:
    text = "model m : tensor[4, 4, 4] = fractal(2, residual(conv(4)))"
    g = run_passes(elaborated(text))
    means = [n for n in g if n.op == "mean"]
    sums = [n for n in g if n.op == "sum"]
    assert len(means) == 1 and means[0].input_columns == (2, 1)
    assert not any(s.input_columns for s in sums)
    assert sorted(s.column for s in sums) == [1, 2, 2]  # type: ignore[type-var]
    assert {s.name for s in sums} == {"fractal.col1.residual1.sum",
                                      "fractal.col2.residual1.sum",
                                      "fractal.col2.residual2.sum"}


def test_assign_names_numbers_only_repeated_siblings() -> None:
    g = assign_names(elaborated("model m : tensor[3, 8, 8] = conv(4) >> relu >> conv(4)"))
    assert [n.name for n in g] == ["input", "conv1.weight", "conv1.bias", "conv1", "relu",
                                   "conv2.weight", "conv2.bias", "conv2"]


def test_names_ending_in_a_digit_get_a_separator_and_keep_their_old_form() -> None:
    g = run_passes(elaborated(
        "model m : tensor[3, 8, 8] = conv3x3(4) >> conv3x3(4) >> fractal(2, conv3x3(4))"), PASSES)
    names = [n.name for n in g]
    assert "conv3x3_1.conv" in names and "conv3x3_2.bn" in names
    assert "fractal.col2.conv3x3_1.conv" in names  # base instances: label and rank
    assert not any("conv3x31" in n or "conv3x32" in n for n in names)
    assert g.aliases["conv3x31.conv"] == "conv3x3_1.conv"
    assert g.aliases["fractal.col2.conv3x32.bn"] == "fractal.col2.conv3x3_2.bn"
    assert set(g.aliases.values()) <= set(names)
    plain = assign_names(elaborated("model m : tensor[3, 8, 8] = conv(4) >> conv(4)"))
    assert plain.aliases == {}


def test_a_node_named_like_a_scope_is_renamed() -> None:
    """Two `relu`s number themselves `relu1`, `relu2`, and a rule is called `relu1`: the node
    becomes `relu1_out`, so the scope's `relu1.conv` and the node are both addressable."""
    g = run_passes(elaborated("def relu1 = conv(4) >> relu\n"
                              "model m : tensor[3, 8, 8] = relu >> relu1 >> relu"), PASSES)
    names = [n.name for n in g if not n.is_param]
    assert names == ["input", "relu1_out", "relu1.conv", "relu1.relu", "relu2"]


def test_infer_shapes_reports_both_ends() -> None:
    with pytest.raises(SsnError) as info:
        infer_shapes(assign_names(elaborated(
            "model m : tensor[3, 8, 8] = sum(conv(4), conv(4, 3, stride=2))")))
    rendered = info.value.render()
    assert "[N,4,8,8]{NCHW} vs [N,4,4,4]{NCHW}" in rendered
    assert rendered.count("= note: input") == 2


def test_verify_catches_broken_graphs() -> None:
    g = run_passes(elaborated("model m : tensor[4] = relu >> tanh"))
    tanh = next(n for n in g if n.op == "tanh")
    broken = g.with_nodes([n.evolve(inputs=("nowhere",)) if n is tanh else n for n in g])
    with pytest.raises(SsnError) as info:
        broken.verify()
    assert info.value.code == "E9001"
    assert "input `nowhere` does not exist" in info.value.render()
    relu = next(n for n in g if n.op == "relu")
    cyclic = g.with_nodes([n.evolve(inputs=(tanh.name,)) if n is relu else n for n in g])
    with pytest.raises(SsnError):
        cyclic.verify()


def test_weights_are_parameter_nodes_on_weight_ports() -> None:
    g = run_passes(elaborated("model m : tensor[3, 8, 8] = let c = shared(conv(4)) in "
                              "shared(conv(4)) >> shared(conv(4)) >> c >> c"), PASSES)
    convs = [n for n in g if n.op == "conv"]
    assert [len({*c.weights}) for c in convs] == [2, 2, 2, 2]
    assert convs[2].weights == convs[3].weights != convs[1].weights  # two readers, one node
    weight = g[convs[2].weights[0]]
    assert weight.op == "param" and weight.shape == (4, 4, 3, 3)
    assert weight.attrs["init"] == "kaiming_uniform" and weight.attrs["fan_in"] == 36
    assert g.nx.edges[weight.name, convs[3].name, 1]["weight"] is True
    assert total_params(g) == 3 * (4 * 4 * 9 + 4) + (4 * 3 * 9 + 4) - (4 * 4 * 9 + 4)
    assert [param_count(g, c) for c in convs] == [4 * 3 * 9 + 4, 4 * 4 * 9 + 4,
                                                  4 * 4 * 9 + 4, 0]

    def broken(nodes: list[Node]) -> str:
        with pytest.raises(SsnError) as info:
            g.with_nodes(nodes).verify()
        return info.value.render()

    unread = broken([n.evolve(weights=("gone", n.weights[1])) if n is convs[0] else n
                     for n in g])
    assert "weight `gone` does not exist" in unread
    assert f"{convs[0].weights[0]}: a parameter must be read" in unread  # nothing reads it
    assert "do not match the ports" in broken(
        [n.evolve(weights=n.weights[:1]) if n is convs[0] else n for n in g])
    assert "needs (4, 3, 3, 3)" in broken(
        [n.evolve(weights=convs[1].weights) if n is convs[0] else n for n in g])
    assert "only on weight ports" in broken(  # a parameter read as data
        [n.evolve(inputs=(weight.name,)) if n is convs[1] else n for n in g])


def test_order_is_deterministic_and_topological() -> None:
    g = run_passes(elaborated("model m : tensor[4, 4, 4] = fractal(3, conv(4))"))
    names = [n.name for n in g]
    assert names == [n.name for n in g.order()]
    seen: set[str] = set()
    for n in g:
        assert set(n.inputs) <= seen
        seen.add(n.name)


def test_a_fractal_whose_base_makes_no_node() -> None:
    # found by the fuzzer: a join input straight from the block's entry has path length 0
    import ssnc

    m = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> fractal(3, relu x0) >> gap "
                   ">> linear(2)").model()
    joins = [n for n in m.ir.order() if n.input_columns]
    assert [len(j.inputs) for j in joins] == [2, 3]
    assert m.to_onnx().graph.node




def test_a_phase_s_cyclic_garbage_stays_young() -> None:
    """The collector waits while a phase runs, and what the phase made stays in the young
    generations: a young collection frees its cycles (moved straight to the oldest, they
    would wait for a full collection, and a language server's memory would grow)."""
    import gc
    import weakref

    class Cycle:
        me: object

    def phase() -> weakref.ref[Cycle]:
        made = Cycle()
        made.me = made
        return weakref.ref(made)

    found = guarded(phase)
    gc.collect(1)
    assert found() is None


_TEXTS = st.sampled_from(["a", "b", "a1", "col1"])
_SEGMENT = st.tuples(_TEXTS, st.tuples(st.sampled_from(["scope", "node"]),
                                       st.integers(0, 3)),
                     st.sampled_from([True, True, False, 1, 2]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_SEGMENT, min_size=1, max_size=4), max_size=12))
def test_naming_by_tree_matches_naming_level_by_level(paths: list[list[Any]]) -> None:
    """The raw paths' tree, each shared prefix named once, names every node as the walk over
    every node does (or declines: where two raw prefixes get one name)."""
    from ssnc.compiler.passes.assign_names import _segments_by_level, _segments_by_tree

    raw = {f"#{i}": path for i, path in enumerate(paths)}
    level = _segments_by_level(raw)
    tree = _segments_by_tree(raw)
    if tree is None:
        return

    def clashing(result: Any) -> set[str]:  # nodes whose final path another one extends
        final, at, prefix, _ = result
        return {old for old in final if at[old] in {parent for parent, _ in prefix}}

    assert tree[0] == level[0] and tree[3] == level[3]
    assert clashing(tree) == clashing(level)


def test_naming_by_tree_declines_where_two_raw_prefixes_get_one_name() -> None:
    """`a` numbered among a single identity stays `a`, as does an `a` never numbered: under
    one name their children are one set of siblings, which only the level walk numbers."""
    from ssnc.compiler.passes.assign_names import _segments, _segments_by_tree

    raw: dict[str, list[Any]] = {
        "#0": [("a", ("scope", 1), True), ("c", ("node", 0), True)],
        "#1": [("a", ("scope", 2), False), ("c", ("node", 1), True)]}
    assert _segments_by_tree(raw) is None
    assert _segments(raw)[0] == {"#0": ["a", "c1"], "#1": ["a", "c2"]}
