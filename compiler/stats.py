"""Per-scope statistics for `ssnc info`: output shape, parameters and multiply-accumulates,
summed over every prefix of the nodes' scope paths."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..base.diagnostics import E_OPTION, did_you_mean, error
from ..base.options import option_span, positive, spell
from .axes import TIME, roles_of
from .ir import Graph, Node, owned, walk
from .literals import json_data
from .ops import OPS, Shape
from .plugins import plugin_fault


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates per sample of one node (a body's nodes count their own)."""
    assert node.shape is not None
    shapes = [graph.all_nodes()[i].shape for i in node.inputs]
    op = OPS[node.op]
    try:
        count = op.macs([s for s in shapes if s is not None], node.shape, node.attrs)
    except Exception as exc:
        if op.origin is None:
            raise
        raise plugin_fault(op, "MAC count", node.span, exc) from None
    if op.origin is not None and (not isinstance(count, int) or count < 0):
        raise plugin_fault(op, "MAC count", node.span,
                           TypeError(f"it returned {count!r}, not a count"))
    return count


def total_macs(graph: Graph) -> int:
    """Multiply-accumulates per sample of the whole model, bodies counted once (per step,
    for a loop's body)."""
    return sum(macs(holder, n) for holder, n in walk(graph))


def total_params(graph: Graph) -> int:
    """Trainable parameters, shared ones counted once."""
    return sum(n.spec().numel for _, n in walk(graph) if n.is_param and n.attrs["trainable"])


def param_count(graph: Graph, node: Node) -> int:
    """Trainable parameters ``node`` brings: those it is the first reader of (a `param(...)`
    value counts at its own row)."""
    every = graph.all_nodes()
    own = sum(every[w].spec().numel for w in node.weights
              if owned(every[w]) and graph.first_reader(w).name == node.name
              and every[w].attrs["trainable"])
    return own + (node.spec().numel if node.is_param and not owned(node) else 0)


def op_count(graph: Graph) -> int:
    """Nodes that compute, bodies included (inputs count; parameters do not)."""
    return sum(1 for _, n in walk(graph) if not n.is_param)


@dataclass(frozen=True)
class ScopeRow:
    """One scope (or node) of the table; ``shape`` is the output of its last node."""

    path: str
    depth: int
    shape: Shape
    params: int
    macs: int
    nodes: int
    op: str | None

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return {"path": self.path, "depth": self.depth, "shape": list(self.shape),
                "roles": roles_of(self.shape), "params": self.params, "macs": self.macs,
                "nodes": self.nodes, "op": self.op}


def loop_plumbing(graph: Graph) -> dict[str, Node]:
    """The nodes that are part of a loop rather than of its cell, by name, each with its
    loop: the loop node itself, the initial states only it reads (its `zeros`) and the
    projections of its outputs (`item`). Summaries and pictures fold them into the loop."""
    every = graph.all_nodes()
    folded: dict[str, Node] = {}
    for holder, node in walk(graph):
        if node.body is None:
            continue
        folded[node.name] = node
        for src in node.inputs[1:]:  # its states' initial values
            if OPS[every[src].op].initial_state and all(
                    c == node.name for c, _ in holder.consumers(src)):
                folded[src] = node
        folded.update((c, node) for c, _ in holder.consumers(node.name)
                      if OPS[every[c].op].projects)
    return folded


def loop_label(graph: Graph, loop: Node) -> str:
    """What a loop iterates: `scan over T` (or a fixed length), reversed where it runs
    backwards."""
    steps = (graph.all_nodes()[loop.inputs[0]].shape or ("", "?"))[1]
    return f"{loop.op} over {steps}" + (" (reversed)" if loop.attrs.get("reverse") else "")


def summarize(graph: Graph, max_depth: int | None = None) -> list[ScopeRow]:
    """Rows in first-appearance order; scopes and nodes deeper than ``max_depth`` are summed
    into their ancestors but not listed. A loop is the row of its scope (`scan over T`),
    its cell's rows under it; its own node, initial states and projections are no rows."""
    folded = loop_plumbing(graph)
    params: dict[str, int] = {}
    macs_of: dict[str, int] = {}
    count: dict[str, int] = {}
    last: dict[str, Shape] = {}
    ops: dict[str, str] = {}
    order: list[str] = []
    owner: dict[str, str] = {}  # a body's node -> the outermost node owning it
    for _, node in walk(graph):
        if node.body is not None:
            for _, inner in walk(node.body):
                owner.setdefault(inner.name, owner.get(node.name, node.name))
    for holder, node in walk(graph):
        if node.is_source and (not node.is_param or owned(node)):
            continue  # the input, and parameters counted at the op that made them
        parts = node.name.split(".")
        node_macs = macs(holder, node)
        for i in range(1, len(parts) + 1):
            key = ".".join(parts[:i])
            if key not in count:
                order.append(key)
                count[key] = params[key] = macs_of[key] = 0
            params[key] += param_count(graph, node)
            macs_of[key] += node_macs
            count[key] += 1
            around = owner.get(node.name, "")
            if not (around == key or around.startswith(key + ".")):  # a body is inside
                last[key] = node.shape or ()
        ops[node.name] = node.op
        if node.body is not None and "." in node.name:
            ops[node.name.rsplit(".", 1)[0]] = loop_label(graph, node)
    rows = []
    for key in order:
        depth = key.count(".") + 1
        if (max_depth is not None and depth > max_depth) or (
                key in folded and (folded[key].name != key or "." in key)):
            continue  # a loop's plumbing; the loop itself where its scope's row is it
        rows.append(ScopeRow(key, depth, last[key], params[key], macs_of[key], count[key],
                             ops.get(key)))
    return rows


def weight_bytes(graph: Graph) -> dict[str, int]:
    """Bytes of every stored tensor (parameters and buffers) in each precision the ONNX
    backend writes (`--precision`)."""
    count = sum(spec.numel for spec in graph.tensors().values())
    return {"fp32": 4 * count, "fp16": 2 * count, "bf16": 2 * count}


def info_json(graph: Graph, max_depth: int | None = None) -> dict[str, Any]:
    """The `ssnc info --json` object."""
    return {
        "model": graph.model,
        "input": graph.input_type,
        "params": {k: json_data(v) for k, v in graph.params.items()},
        "total_params": total_params(graph),
        "weight_bytes": weight_bytes(graph),
        "total_macs": total_macs(graph),
        "nodes": op_count(graph),
        "outputs": [{"name": graph.output_name(i), "shape": list(graph[o].shape or ()),
                     "roles": roles_of(graph[o].shape or ())}
                    for i, o in enumerate(graph.outputs)],
        "generated": [{"name": name, "shape": list(shape)}
                      for name, shape in graph.generated().items()],
        "scopes": [r.as_json() for r in summarize(graph, max_depth)],
    }


def example_shape(node: Node, batch: int, steps: int) -> list[int]:
    """An input's shape with its batch axis ``batch`` long and any other symbolic axis (time)
    ``steps`` long: what example inputs are made with."""
    return [batch if d == "N" else steps if isinstance(d, str) else int(d)
            for d in node.shape or ()]


def time_symbols(graph: Graph) -> dict[str, str]:
    """Each input that has a time axis of any length, by name, with that axis's symbol
    (`T`; `src_T` where several inputs have one)."""
    out = {}
    for name in graph.inputs:
        shape = graph[name].shape or ()
        roles = roles_of(shape)
        if TIME in roles and isinstance(shape[roles.index(TIME)], str):
            out[name] = str(shape[roles.index(TIME)])
    return out


def time_lengths(graph: Graph, steps: int | Mapping[str, int]) -> dict[str, int]:
    """Fixed lengths for the time axes, by symbol: ``steps`` for every one, or per input
    name (`{"src": 12, "tgt": 9}`); E0601 naming the `steps` option where one does not
    apply."""
    if not isinstance(steps, Mapping):
        length = sequence_steps(graph, steps)
        return {symbol: length for symbol in time_symbols(graph).values()}
    symbols = time_symbols(graph)
    out = {}
    for name, length in steps.items():
        if name not in symbols:
            where = option_span("steps", f"{name}={length}")
            if name in graph.inputs:
                raise error(E_OPTION, f"input `{name}` has no time axis of any length", where,
                            hint="its length is fixed by its type, or it has none")
            raise error(E_OPTION, f"model `{graph.model}` has no input `{name}`", where,
                        hint=did_you_mean(name, graph.inputs)
                        or f"its inputs are {', '.join(graph.inputs)}")
        out[symbols[name]] = positive("steps", length)
    return out


def sequence_steps(graph: Graph, steps: int) -> int:
    """``steps`` as the length of every time axis of ``graph``'s inputs: a positive integer,
    for a model that has such an axis (E0601 naming the `steps` option otherwise)."""
    where = option_span("steps")
    shapes = [graph[i].shape or () for i in graph.inputs]
    if not time_symbols(graph):
        fixed = [s[roles_of(s).index(TIME)] for s in shapes if TIME in roles_of(s)]
        raise error(E_OPTION, f"model `{graph.model}`'s sequence length is fixed at "
                    f"{fixed[0]} by its input type" if fixed else f"model `{graph.model}` "
                    "has no time axis, so no sequence length", where,
                    hint=f"{spell('steps')} applies to `sequence`, `signal` and `tokens` "
                    "inputs of any length")
    return positive("steps", steps)
