"""Output taps: a model with extra named outputs at scopes or nodes of its IR.

A trained network's intermediate values as outputs (features for a probe, Simpson's
"qualities", the columns of a block) without editing the spec: the parameters, and so the
state_dict keys, stay the same, so trained weights load into the tapped model."""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

import networkx as nx

from ..base.diagnostics import E_DUPLICATE, E_OPTION, Span, did_you_mean, error
from ..base.options import flag_for, option_span
from .ir import Graph, Node, _tuple_valued

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _tap_span(start: int, length: int) -> Span:
    """``length`` characters of a tap's text from ``start`` (0-based): the `--tap` option,
    or the library argument."""
    file = option_span("tap", "").file
    return Span(file=file, line=1, col=1 + start, end_line=1, end_col=1 + start + length)


def tap_hint(target: str, name: str | None = None) -> str:
    """How to output ``target`` (under ``name``): `--tap [name=]target` on the command
    line, `with_outputs(...)` from the library."""
    flag = flag_for("tap")
    if flag:
        return f"`{flag} {name}={target}`" if name else f"`{flag} {target}`"
    return f"`with_outputs({name}={target!r})`" if name else f"`with_outputs({target!r})`"


def add_taps(graph: Graph, taps: Sequence[tuple[str | None, str]]) -> Graph:
    """``graph`` with one more output per ``(name, target)``: ``target`` names a node, or a
    scope whose last value (what it gives the rest of the model) is tapped; ``name`` (None:
    the target with dots as underscores) is the output's name."""
    names = list(graph.output_labels())
    outputs = list(graph.outputs)
    for name, target in taps:
        node = _resolve(graph, target, 0 if name is None else len(name) + 1)
        label = name if name is not None else target.replace(".", "_")
        where = _tap_span(0, len(label))  # the name, or the target it is made from
        if not _NAME.fullmatch(label) or keyword.iskeyword(label):
            raise error(E_OPTION, f"`{label}` cannot name an output", where,
                        hint="give a name of letters, digits and underscores: "
                        + tap_hint(target, "name"))
        if label in names:
            raise error(E_DUPLICATE, f"two outputs are named `{label}`", where,
                        hint="name the tap: " + tap_hint(target, "other_name"))
        if label != node.name and label in graph.all_nodes():  # ONNX names values by node
            raise error(E_DUPLICATE, f"`{label}` is already the name of a node", where,
                        hint="name the tap: " + tap_hint(target, "other_name"))
        names.append(label)
        outputs.append(node.name)
    return graph.with_outputs(outputs, names)


def _resolve(graph: Graph, target: str, offset: int) -> Node:
    """The node ``target`` names, or the last value of the scope it names (``offset``: where
    the target starts in the tap's text)."""
    where = _tap_span(offset, len(target))
    if target in graph.nodes_by_name:
        node = graph[target]
    else:
        prefix = target + "."
        members = {n.name for n in graph.nodes_by_name.values()
                   if n.name.startswith(prefix) and not n.is_source}
        if not members:
            scopes = {n.name.rsplit(".", k)[0] for n in graph.nodes_by_name.values()
                      for k in range(n.name.count(".") + 1)}
            raise error(E_OPTION, f"`{target}` is no node or scope of model `{graph.model}`",
                        where, hint=did_you_mean(target, scopes)
                        or "`ssnc info --depth 9` lists the scopes")
        given = set(graph.read_outside(sorted(members))) or {  # a scope nothing reads
            m for m in members if not graph.consumers(m)}
        last = sorted((m for m in given if not (nx.descendants(graph.nx, m) & given)),
                      key=lambda m: graph[m].index)
        if len(last) != 1:
            raise error(E_OPTION, f"scope `{target}` gives the model {len(last)} values: "
                        + ", ".join(f"`{m}`" for m in last), where,
                        hint="tap one of them by its node name")
        node = graph[last[0]]
    if node.is_param:
        raise error(E_OPTION, f"`{target}` is a parameter, not a value the model computes",
                    where, hint="tap the op that reads it")
    if _tuple_valued(node):
        raise error(E_OPTION, f"`{target}` is a loop with several outputs", where,
                    hint="tap one of its `item` nodes (`ssnc info --depth 9` lists them)")
    return node
