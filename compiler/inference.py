"""Folds for an eval-only model, on the IR and its trained weights together (numpy, so the
ONNX export and `ssnc.optimize_for_inference` share them): what eval mode leaves as identity
goes (dropout, stochastic depth), batch normalisation goes into the convolution or linear
before it, and a mean join's 1/N goes into the weights before a ReLU that feeds only it
(ReLU is positively homogeneous), leaving a sum. Each fold is exact in real arithmetic;
outputs agree with the unfolded model's in eval to float rounding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .axes import CHANNEL, roles_of
from .ir import Graph, Node, make_node
from .ops import OPS

Tensors = dict[str, np.ndarray]



@dataclass(frozen=True)
class Folded:
    """What was folded: BatchNorms into what, joins made sums, identities removed."""

    norms: tuple[tuple[str, str], ...] = ()
    joins: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (f"{len(self.norms)} BatchNorm{'s' if len(self.norms) != 1 else ''} folded, "
                f"{len(self.joins)} mean join{'s' if len(self.joins) != 1 else ''} made "
                f"sums, {len(self.identities)} eval identit"
                f"{'ies' if len(self.identities) != 1 else 'y'} removed")


def fold_for_inference(graph: Graph, tensors: Mapping[str, np.ndarray],
                       joins: bool = True) -> tuple[Graph, Tensors, Folded]:
    """``graph`` and ``tensors`` (its state, by key) with every fold applied that is exact
    here; ``joins`` False keeps the joins (the ONNX `--fold-bn` keeps them, as runtimes
    fuse a Div themselves)."""
    state = {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
    graph, gone = _without_identities(graph)
    graph, norms = _fold_norms(graph, state)
    graph, made = _fold_joins(graph, state) if joins else (graph, ())
    kept = set(graph.tensors())
    return graph, {k: v for k, v in state.items() if k in kept}, Folded(norms, made, gone)


def _only_reader(graph: Graph, name: str) -> str | None:
    """The one node reading ``name`` (None: several, none, or a model output)."""
    readers = graph.consumers(name)
    if len(readers) != 1 or name in graph.outputs:
        return None
    return readers[0][0]


def _rebuilt(graph: Graph, replace: Mapping[str, Node], drop: set[str],
             through: Mapping[str, str]) -> Graph:
    """``graph`` with nodes replaced, ``drop`` removed, and every read of a key of
    ``through`` made a read of its value (transitively), outputs too."""
    def target(name: str) -> str:
        while name in through:
            name = through[name]
        return name

    def one(node: Node) -> Node:
        node = replace.get(node.name, node)
        return node.evolve(inputs=tuple(target(i) for i in node.inputs),
                           weights=tuple(target(w) for w in node.weights))
    mapped = graph.map_nodes(one)
    return mapped.derive(nodes=[n for n in mapped.nodes_by_name.values() if n.name not in drop],
                         outputs=[target(o) for o in graph.outputs])


def _without_identities(graph: Graph) -> tuple[Graph, tuple[str, ...]]:
    """``graph`` without its eval identities (their readers read their inputs)."""
    gone = [n for n in graph.order()
            if OPS[n.op].eval_identity and n.inputs and n.name not in graph.outputs]
    if not gone:
        return graph, ()
    through = {n.name: n.inputs[0] for n in gone}
    return _rebuilt(graph, {}, set(through), through), tuple(through)


def _fold_norms(graph: Graph, state: Tensors) -> tuple[Graph, tuple[tuple[str, str], ...]]:
    """Each eval-affine op (`bn`) whose input is a per-channel op read by it alone, on that
    op's channel axis, folded into that op's weight and bias (a bias made where needed)."""
    replace: dict[str, Node] = {}
    drop: set[str] = set()
    through: dict[str, str] = {}
    folded = []
    for bn in graph.order():
        rule = OPS[bn.op].eval_affine
        if rule is None or not bn.inputs:
            continue
        source = graph[bn.inputs[0]]
        if OPS[source.op].per_channel is None or _only_reader(graph, source.name) != bn.name \
                or not _channel_matches(graph, source, bn) or not _owns_weights(graph, source):
            continue
        ports = OPS[bn.op].weights(bn.attrs)
        scale, shift = rule(bn.attrs, {p: state[w] for p, w in zip(ports, bn.weights,
                                                                   strict=True)})
        node = _affine_times(graph, source, state, scale, shift)
        replace[source.name] = node
        drop |= {bn.name, *bn.weights}
        through[bn.name] = source.name
        if node.weights[1] not in graph.nodes_by_name:
            replace[node.weights[1]] = _bias_node(graph[source.weights[0]], node.weights[1],
                                                  len(scale))
        folded.append((bn.name, source.name))
    if not folded:
        return graph, ()
    added = [n for k, n in replace.items() if k not in graph.nodes_by_name]
    rebuilt = _rebuilt(graph, replace, drop, through)
    if added:
        rebuilt = rebuilt.derive(nodes=[*rebuilt.nodes_by_name.values(), *added])
    return rebuilt, tuple(folded)


def _channel_matches(graph: Graph, source: Node, norm: Node) -> bool:
    """Whether the norm's channel axis (its `C`) is the axis whose channels the affine op
    makes (a convolution's axis 1, the axis a linear maps)."""
    per = OPS[source.op].per_channel
    assert per is not None
    made = per.output_axis(graph[source.inputs[0]].shape or (), source.attrs)
    return roles_of(norm.shape or ()).find(CHANNEL) == made


def _owns_weights(graph: Graph, node: Node) -> bool:
    """Whether ``node`` alone reads its weights, which are parameters (not shared with
    another instance, not computed)."""
    return all(graph[w].is_param and len(graph.consumers(w)) == 1 for w in node.weights)


def _affine_times(graph: Graph, node: Node, state: Tensors, scale: np.ndarray,
                  shift: np.ndarray) -> Node:
    """``node`` computing ``scale * node(x) + shift`` per output channel: its weight scaled,
    its bias (made where it had none, under the key `{node}.bias`) scaled and shifted."""
    weight = graph[node.weights[0]]
    w = state[weight.name]
    per = OPS[node.op].per_channel
    assert per is not None
    groups = int(node.attrs.get("groups") or 1)  # type: ignore[arg-type]
    if per.weight_axis == 1 and groups > 1:  # [in, out / groups, ...]: group g's channels
        each = w.shape[1]
        grouped = w.reshape(groups, w.shape[0] // groups, each, *w.shape[2:])
        factor = scale.reshape(groups, 1, each, *([1] * (w.ndim - 2)))
        w = (grouped * factor).reshape(w.shape)
    else:
        w = w * scale.reshape([-1 if i == per.weight_axis else 1 for i in range(w.ndim)])
    state[weight.name] = w.astype(np.float32)
    bias_key = node.weights[1] if len(node.weights) > 1 else f"{node.name}.bias"
    old = state.get(bias_key, np.zeros_like(scale))
    state[bias_key] = (old * scale + shift).astype(np.float32)
    return node.evolve(attrs={**node.attrs, "bias": True},
                       weights=(node.weights[0], bias_key))


def _bias_node(weight: Node, key: str, size: int) -> Node:
    """A new bias parameter beside ``weight`` (its value comes from the fold; made where the
    weight was, so the order stays creation order)."""
    return make_node(name=key, op="param", scope=weight.scope, span=weight.span,
                     index=weight.index, inputs=(), shape=(size,),
                     attrs={"role": "bias", "init": "zeros", "fan_in": 1, "trainable": True,
                            "fill": 0.0, "scale": 1.0})


def _fold_joins(graph: Graph, state: Tensors) -> tuple[Graph, tuple[str, ...]]:
    """Each averaging join (`mean`) whose every input is a homogeneous activation of a
    per-channel op, each read by the next alone: 1/N scales those ops' weights and biases
    and the join becomes the sum it averages."""
    replace: dict[str, Node] = {}
    made = []
    for join in graph.order():
        total = OPS[join.op].averages
        if total is None or len(join.inputs) < 2 or len(set(join.inputs)) != len(join.inputs):
            continue
        sources = [_scalable(graph, name, join.name) for name in join.inputs]
        if any(s is None or s.name in replace for s in sources):
            continue
        factor = np.float32(1.0 / len(join.inputs))
        for source in sources:
            assert source is not None
            for w in source.weights:  # weight and bias alike
                state[w] = (state[w] * factor).astype(np.float32)
        replace[join.name] = join.evolve(op=total, attrs={**join.attrs, "drop_path": 0.0})
        made.append(join.name)
    if not made:
        return graph, ()
    return _rebuilt(graph, replace, set(), {}), tuple(made)


def _scalable(graph: Graph, name: str, join: str) -> Node | None:
    """The affine op under ``name`` when ``name`` is a ReLU of it, each read only by the
    next (the ReLU by ``join``), and it has its own bias (None otherwise)."""
    act = graph[name]
    if not OPS[act.op].homogeneous or _only_reader(graph, name) != join or not act.inputs:
        return None
    source = graph[act.inputs[0]]
    if OPS[source.op].per_channel is None or _only_reader(graph, source.name) != name \
            or not _owns_weights(graph, source):
        return None
    return source
