"""The IR's own graph algorithms (topological order, consumers, cycles), which passes read
instead of building the networkx view, agree with networkx on any graph; the view is built
only when asked for."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ssnc
from ssnc.base.diagnostics import Span
from ssnc.compiler.ir import Graph, Scope, make_node
from tests.conftest import SPECS


@st.composite
def dags(draw: st.DrawFn) -> Graph:
    """A random DAG: creation indices in any order (not only topological), several edges
    between one pair, weights as well as inputs."""
    size = draw(st.integers(1, 24))
    rank = draw(st.permutations(range(size)))  # a topological order the edges respect
    index = draw(st.permutations(range(100, 100 + size)))
    nodes = []
    for i in range(size):
        earlier = [f"n{j}" for j in range(size) if rank[j] < rank[i]]
        inputs = draw(st.lists(st.sampled_from(earlier), max_size=3)) if earlier else []
        nodes.append(make_node(name=f"n{i}", op="relu", attrs={}, inputs=tuple(inputs),
                               scope=0, span=Span.unknown(), index=index[i]))
    scopes = {0: Scope(0, None, "m", (), Span.unknown())}
    return Graph.build("m", nodes, scopes, (), ())


@settings(max_examples=200, deadline=None)
@given(dags())
def test_order_and_consumers_are_networkx_s(graph: Graph) -> None:
    index = {n.name: n.index for n in graph.nodes_by_name.values()}
    assert graph._nx is None  # nothing built the view
    order = [n.name for n in graph.order()]
    assert graph._nx is None
    assert order == list(nx.lexicographical_topological_sort(graph.nx, key=index.__getitem__))
    for name in graph.nodes_by_name:
        want = sorted(((dst, key) for _, dst, key in graph.nx.out_edges(name, keys=True)),
                      key=lambda e: (index[e[0]], e[1]))
        assert graph.consumers(name) == want


def test_a_cycle_is_found_without_networkx_and_named_with_it() -> None:
    scopes = {0: Scope(0, None, "m", (), Span.unknown())}
    nodes = [make_node(name=a, op="relu", attrs={}, inputs=(b,), scope=0, span=Span.unknown(),
                       index=i) for i, (a, b) in enumerate((("a", "b"), ("b", "a")))]
    graph = Graph.build("m", nodes, scopes, (), ())
    with pytest.raises(ValueError, match="has a cycle"):
        graph.order()
    with pytest.raises(ssnc.SsnError) as caught:
        graph.verify()
    assert "the graph has a cycle" in str(caught.value.diagnostics[0].notes)


def test_elaboration_builds_no_networkx_view() -> None:
    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=3, classes=10)
    assert model.ir._nx is None
    assert model.graph.number_of_nodes() == len(model.ir)  # built when asked for


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_derived_graph_keeps_the_order_only_while_edges_stay(graph: Graph,
                                                               data: st.DataObject) -> None:
    """A pass that only annotates nodes keeps the order it was given; one that moves an
    edge gets a fresh one, equal to what a graph built from scratch computes."""
    graph.order()
    tagged = graph.derive(nodes=[n.evolve(column=1) for n in graph.nodes_by_name.values()])
    assert tagged._order is not None  # carried over
    assert [n.column for n in tagged.order()] == [1] * len(graph)
    assert ([n.name for n in tagged.order()]
            == [n.name for n in Graph.build("m", tagged.nodes_by_name.values(), graph.scopes,
                                            (), ()).order()])
    names = list(graph.nodes_by_name)
    first = min(graph.nodes_by_name.values(), key=lambda n: n.index).name
    moved = data.draw(st.sampled_from(names))
    rewired = graph.derive(nodes=[n.evolve(inputs=()) if n.name == moved else n
                                  for n in graph.nodes_by_name.values()])
    if graph[moved].inputs:
        assert rewired._order is None  # computed afresh
    assert rewired._consumer_map().get(first, []) == [
        (c, p) for c, p in graph._consumer_map().get(first, []) if c != moved]


def test_made_nodes_share_the_key_table_of_the_records() -> None:
    """make_node fills records as the dataclass does: a node's fields cost one shared key
    table, not a dict of their own each (elaboration makes tens of thousands)."""
    import sys
    from types import MappingProxyType

    from ssnc.compiler.ir import Node

    made = make_node(name="a", op="relu", attrs={}, inputs=("x",), scope=0,
                     span=Span.unknown(), index=1)
    plain = Node(name="a", op="relu", attrs=MappingProxyType({}), inputs=("x",), scope=0,
                 span=Span.unknown(), index=1)
    assert made == plain
    assert sys.getsizeof(made.__dict__) == sys.getsizeof(plain.__dict__)
    assert sys.getsizeof(made.evolve(shape=(1,)).__dict__) == sys.getsizeof(plain.__dict__)
    with pytest.raises(TypeError):
        make_node(name="a", op="relu", attrs={}, inputs=(), scope=0, span=Span.unknown())
