"""remove_unread: values that no output reads are removed, each with a warning (W0001).

Needs: names assigned and shapes inferred (a value nobody reads is still checked, as
rustc checks dead code). Guarantees: every node, in bodies too, reaches an output of its
graph, except the inputs (a model's and a body's, which its op binds by position) and the
parts (`item`s) of a loop that stays, which cost nothing (a `final` state left unused); the
parameters only removed values read go with them, so no weights are made for them. The
graph keeps the unpruned one as ``full`` (a tap may read a removed value and so keep it)
and the warnings as ``warnings``: one per place in the spec, naming the value by its
`let` name where it has one (names starting with `_` are removed without a warning, as
Rust's unused variables are)."""

from __future__ import annotations

from collections.abc import Mapping

from ...base.diagnostics import (
    CALL_CHAIN,
    STDLIB_PREFIX,
    W_UNREAD,
    Diagnostic,
    Note,
    Span,
    call_note,
    warning,
    within,
)
from ..ir import Graph, Node, Scope, captures, upstream
from ..ops import OPS
from ..taps import tap_hint


def remove_unread(graph: Graph) -> Graph:
    """Return the graph without the values no output reads (itself if there are none)."""
    pruned, removed = _prune(graph)
    if not removed:
        return graph
    return pruned.derive(full=graph, warnings=_warnings(graph, removed))


def _prune(graph: Graph) -> tuple[Graph, dict[str, Node]]:
    """``graph`` (and the bodies it keeps, each against its own outputs) without what no
    output reads, and every node removed at any depth, by name."""
    removed: dict[str, Node] = {}
    nodes: dict[str, Node] = {}
    for node in graph.nodes_by_name.values():
        if node.body is not None:
            body, gone = _prune(node.body)
            if gone:
                node = node.evolve(body=body)
                removed.update(gone)
        nodes[node.name] = node
    live = upstream(nodes, graph.outputs) | set(graph.inputs)
    live |= {n.name for n in nodes.values()  # a loop that stays keeps every part: free
             if OPS[n.op].projects and n.inputs[0] in live}
    dead = {name: graph.nodes_by_name[name] for name in nodes if name not in live}
    if not dead and not removed:
        return graph, {}
    removed.update(dead)  # a removed loop takes its body with it (see _members)
    kept = graph.with_nodes([n for n in nodes.values() if n.name in live])
    return kept, removed


def _members(node: Node) -> list[Node]:
    """``node`` and, for a loop, every node of its body at any depth."""
    out = [node]
    if node.body is not None:
        for inner in node.body.nodes_by_name.values():
            out += _members(inner)
    return out


def _warnings(graph: Graph, removed: Mapping[str, Node]) -> tuple[Diagnostic, ...]:
    """One W0001 per place a removed value is written: the removed values no other removed
    value reads (the ends of what was cut), grouped by where the spec makes them; the parts
    of one removed loop are one value, `(y, h, c)`."""
    read: set[str] = set()
    for node in removed.values():
        read.update((*node.inputs, *node.weights))
        if node.body is not None:
            read.update(captures(node.body))
    ends = [n for n in sorted(removed.values(), key=lambda n: n.index)
            if n.name not in read and not n.is_param]

    def named(node: Node) -> tuple[str, Span]:
        label = graph.labels.get(node.index)
        return label if label is not None else (node.name, _user_span(graph, node))

    parts: dict[str, list[Node]] = {}  # a removed loop -> its parts that were ends
    for end in ends:
        if OPS[end.op].projects:
            parts.setdefault(end.inputs[0], []).append(end)
    places: dict[tuple[str, Span], list[Node]] = {}
    for end in ends:
        name, span = named(end)
        group = parts.get(end.inputs[0], []) if OPS[end.op].projects else []
        if group and group[0] is not end:
            continue  # its loop is reported with its first part
        if len(group) > 1:
            name = "(" + ", ".join(named(p)[0] for p in group) + ")"
        if not name.startswith("_"):
            places.setdefault((name, span), []).append(end)
    return tuple(_warning(graph, removed, name, span, found)
                 for (name, span), found in places.items())


def _warning(graph: Graph, removed: Mapping[str, Node], name: str, span: Span,
             ends: list[Node]) -> Diagnostic:
    """The warning for the value ``name`` written at ``span``, removed as ``ends``."""
    gone = [m for n in upstream(removed, [e.name for e in ends]) for m in _members(removed[n])]
    ops = sum(1 for n in gone if not n.is_param)
    params = sum(n.spec().numel for n in gone if n.is_param and n.attrs["trainable"])
    what = f"{ops:,} op{'s' if ops != 1 else ''}" + (
        f" and {params:,} parameter{'s' if params != 1 else ''} (no weights are made for "
        f"{'them' if params != 1 else 'it'})" if params else "")
    places = f" in {len(ends)} places" if len(ends) > 1 else ""
    labeled = graph.labels.get(ends[0].index) is not None
    silent = f"; named `_{name}`, it is removed without this warning" if labeled else ""
    diag = warning(W_UNREAD, f"`{name}` is computed but never read{places}: it is removed",
                   span, notes=[Note(f"removed with it: {what}")],
                   hint="read it, or delete it; to keep it as an output: "
                   + tap_hint(ends[0].name, name if labeled else None) + silent)
    calls = [s for s in _call_chain(graph, ends[0]) if not within(s.span, span)]
    for scope in calls[:CALL_CHAIN]:
        diag = call_note(diag, scope.rule, scope.args, scope.span)
    return diag


def _call_chain(graph: Graph, node: Node) -> list[Scope]:
    """The rule instances around ``node``, innermost first (the model itself left out)."""
    return [s for s in reversed(graph.scope_path(node.scope)) if s.parent is not None
            and not s.transparent]


def _user_span(graph: Graph, node: Node) -> Span:
    """Where the user's spec makes ``node``: its own span, or, for a node the standard
    library makes, the call of the outermost library rule around it."""
    span = node.span
    for scope in reversed(graph.scope_path(node.scope)):
        if not span.file.startswith(STDLIB_PREFIX):
            break
        span = scope.span
    return span
