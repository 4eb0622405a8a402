"""Rewrites of a built ONNX model for runtimes that lack a construct the default form uses:
``unroll_scans`` replaces each time loop (Scan) by its steps, for a fixed sequence length;
``fold_weights`` computes the values that depend on weights alone (a static hypernetwork's
kernels) once, at compile time, and stores them as weights. Both keep the node names (the
hierarchy) and each node's ``ssnc.source``; neither imports torch or an ONNX runtime."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...base.diagnostics import E_EXPANSION, error
from ...base.options import option_span, spell

UNROLL_NODE_LIMIT = 200_000
"""The most ONNX nodes unrolling may make: beyond it, the graph is too large for runtimes to
load quickly, and the Scan form is the one to use."""


def unroll_scans(model: onnx.ModelProto, steps: int) -> onnx.ModelProto:
    """``model`` with every time loop of its main graph and functions written out as
    ``steps`` copies of its body (the sequence length must be fixed at ``steps``): step ``t``
    reads ``x[:, t]`` with a Gather and its outputs are stacked with Unsqueeze and Concat.
    A copied node is named ``NAME@tK``. E0403 past ``UNROLL_NODE_LIMIT`` nodes."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    bodies = [out.graph.node, *(fn.node for fn in out.functions)]
    total = sum(_unrolled_size(node, steps) for nodes in bodies for node in nodes)
    if total > UNROLL_NODE_LIMIT:
        raise error(E_EXPANSION, f"unrolling {steps:,} steps makes {total:,} ONNX nodes, more "
                    f"than the limit of {UNROLL_NODE_LIMIT:,}", option_span("unroll"),
                    hint=f"give fewer {spell('steps')}, or leave out {spell('unroll')} (the "
                    "Scan form runs in ONNX Runtime, OpenVINO and tract at any length)")
    for k, nodes in enumerate(bodies):
        used = {o for node in nodes for o in node.output}
        rewritten: list[onnx.NodeProto] = []
        for node in nodes:
            if node.op_type != "Scan":
                rewritten.append(node)
                continue
            copies, infos = _unroll(node, steps, used)
            rewritten.extend(copies)
            if k == 0:  # the shapes the body declared, for runtimes that need ranks
                out.graph.value_info.extend(infos)
        del nodes[:]
        nodes.extend(rewritten)
    return out


def _unrolled_size(node: onnx.NodeProto, steps: int) -> int:
    if node.op_type != "Scan":
        return 1
    body = helper.get_node_attr_value(node, "body")
    return steps * (len(body.node) + len(body.input) + len(body.output)) + len(node.output)


class _Nodes:
    """The nodes unrolling one Scan makes, each carrying the Scan's place in the spec."""

    def __init__(self, scan: onnx.NodeProto):
        self.source = [(p.key, p.value) for p in scan.metadata_props]
        self.nodes: list[onnx.NodeProto] = []

    def add(self, op: str, inputs: Sequence[str], output: str, name: str, **kw: Any) -> None:
        node = helper.make_node(op, list(inputs), [output], name=name, **kw)
        for key, value in self.source:
            entry = node.metadata_props.add()
            entry.key, entry.value = key, value
        self.nodes.append(node)

    def const(self, name: str, value: np.ndarray) -> str:
        self.add("Constant", [], name, name, value=numpy_helper.from_array(value, name))
        return name


def _unroll(scan: onnx.NodeProto, steps: int, used: set[str]
            ) -> tuple[list[onnx.NodeProto], list[onnx.ValueInfoProto]]:
    """The nodes that compute what ``scan`` does, over ``steps`` steps, and the types of
    their values that the body declared; ``used`` holds the value names taken so far (two
    loops may share a cell, and so its names)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in scan.attribute}
    body: onnx.GraphProto = attrs["body"]
    n_scan = int(attrs["num_scan_inputs"])
    n_state = len(scan.input) - n_scan
    in_axes = list(attrs.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(attrs.get("scan_input_directions", [0] * n_scan))
    n_out = len(body.output) - n_state
    out_dirs = list(attrs.get("scan_output_directions", [0] * n_out))
    out = _Nodes(scan)
    infos: list[onnx.ValueInfoProto] = []
    declared = [*body.input, *body.output, *body.value_info]
    local = _defined(body)
    mark = "@"
    while any(f"{v}{mark}t0" in used for v in local):
        mark += "@"
    states = list(scan.input[:n_state])
    stacked: list[list[str]] = [[""] * steps for _ in range(n_out)]
    for k in range(steps):
        tag = f"{mark}t{k}"
        rename = {v: v + tag for v in local}
        used.update(rename.values())
        for value in declared:
            if value.name in rename and value.type.HasField("tensor_type"):
                infos.append(onnx.ValueInfoProto())
                infos[-1].CopyFrom(value)
                infos[-1].name = rename[value.name]
        for i, (x, axis, rev) in enumerate(zip(scan.input[n_state:], in_axes, in_dirs,
                                               strict=True)):
            at = out.const(f"{scan.name}/at{i}{tag}",
                           np.array(steps - 1 - k if rev else k, np.int64))
            out.add("Gather", [x, at], rename[body.input[n_state + i].name],
                    f"{scan.name}/step{i}{tag}", axis=int(axis))
        for i, (state, value) in enumerate(zip(states, body.input[:n_state], strict=True)):
            out.add("Identity", [state], rename[value.name], f"{scan.name}/state{i}{tag}")
        out.nodes.extend(_renamed(node, rename, tag) for node in body.node)
        results = [rename.get(o.name, o.name) for o in body.output]
        states = results[:n_state]
        for j, value in enumerate(results[n_state:]):
            stacked[j][steps - 1 - k if out_dirs[j] else k] = value
    _finish(out, scan, states, stacked, list(attrs.get("scan_output_axes", [0] * n_out)))
    return out.nodes, list({i.name: i for i in infos}.values())


def _finish(out: _Nodes, scan: onnx.NodeProto, states: list[str], stacked: list[list[str]],
            axes: list[int]) -> None:
    """The Scan's outputs from its steps: the final states, and each scan output's steps
    stacked along its axis."""
    for i, (final, state) in enumerate(zip(scan.output[:len(states)], states, strict=True)):
        if final:
            out.add("Identity", [state], final, f"{scan.name}/final{i}")
    for j, (output, axis) in enumerate(zip(scan.output[len(states):], axes, strict=True)):
        if not output:
            continue
        at = out.const(f"{scan.name}/axes{j}", np.array([axis], np.int64))
        parts = []
        for k, value in enumerate(stacked[j]):
            parts.append(f"{value}/stacked")
            out.add("Unsqueeze", [value, at], parts[-1], f"{scan.name}/stack{j}@t{k}")
        out.add("Concat", parts, output, f"{scan.name}/concat{j}", axis=int(axis))


def _defined(body: onnx.GraphProto) -> set[str]:
    """The values a body defines (its inputs and its nodes' outputs); the rest it reads from
    the enclosing graph."""
    return {v.name for v in body.input} | {o for n in body.node for o in n.output if o}


def _renamed(node: onnx.NodeProto, rename: dict[str, str], tag: str) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = node.name + tag
    copy.input[:] = [rename.get(v, v) for v in node.input]
    copy.output[:] = [rename.get(v, v) for v in node.output]
    for g in _bodies(copy):  # a nested body reads the step's values by their new names
        _rename_reads(g, rename)
    return copy


def _rename_reads(graph: onnx.GraphProto, rename: dict[str, str]) -> None:
    inner = _defined(graph)
    for node in graph.node:
        node.input[:] = [v if v in inner else rename.get(v, v) for v in node.input]
        for g in _bodies(node):
            _rename_reads(g, {k: v for k, v in rename.items() if k not in inner})
    for out in graph.output:
        if out.name not in inner and out.name in rename:
            out.name = rename[out.name]


def fold_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (flat) with each value of its main graph that depends on weights and
    constants alone, and is read by a node that depends on the input, computed here and
    stored as a weight named after it; the nodes and weights left unread go. A model
    without such values comes back unchanged."""
    graph = model.graph
    known = {t.name for t in graph.initializer}
    folded: set[str] = set()
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if all(v in known for v in node.input if v) and not _bodies(node):
            known.update(node.output)
            if node.op_type != "Constant":
                folded.update(node.output)
            nodes.append(node)
    reads = [v for node in graph.node if not set(node.output) <= known for v in _reads(node)]
    reads += [o.name for o in graph.output]
    wanted = list(dict.fromkeys(v for v in reads if v in folded))
    if not wanted:
        return model
    from onnx.reference import ReferenceEvaluator

    sub = helper.make_graph(nodes, "fold", [], [helper.make_tensor_value_info(
        v, onnx.TensorProto.UNDEFINED, None) for v in wanted], list(graph.initializer))
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)
    values = ReferenceEvaluator(sub_model).run(wanted, {})
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [n for n in out.graph.node if not set(n.output) & set(wanted)]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    producer = {o: n.name for n in nodes for o in n.output}
    for name, value in zip(wanted, values, strict=True):
        tensor = numpy_helper.from_array(np.asarray(value), name)
        tensor.doc_string = f"computed at compile time (--fold-weights) by {producer[name]}"
        out.graph.initializer.append(tensor)
    return prune(out)


def _bodies(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs ``node`` holds as attributes (a Scan's, a Loop's or an If's bodies)."""
    return [g for a in node.attribute for g in ([a.g] if a.type == a.GRAPH else a.graphs)]


def prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the main-graph nodes and weights that nothing reads (in place)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if set(node.output) & needed:
            kept.append(node)
            needed.update(_reads(node))
    del graph.node[:]
    graph.node.extend(reversed(kept))
    weights = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    return model


def _reads(node: onnx.NodeProto) -> Iterable[str]:
    """What ``node`` reads, its bodies' reads from the enclosing graph included."""
    yield from (v for v in node.input if v)
    for g in _bodies(node):
        inner = _defined(g)
        for n in g.node:
            yield from (v for v in _reads(n) if v not in inner)
        yield from (o.name for o in g.output if o.name not in inner)
