"""Prints the IR in torch.fx's style, one line per node, for goldens and bug reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from .ir import Graph, Node, walk
from .literals import ssn_text
from .ops import OPS, AttrValue, fmt_shape
from .stats import op_count, total_macs, total_params


def format_value(v: AttrValue) -> str:
    """An attribute value as the language writes it (`true`, `none`, `0.15`); a string as
    itself (`mode=bilinear`)."""
    if isinstance(v, str):
        return str(v)
    if isinstance(v, tuple):
        return _list(v)
    return ssn_text(v)


def shown_attrs(node: Node, value: Callable[[AttrValue], str] = format_value) -> list[str]:
    """`key=value` for the attributes worth showing: those off their default, and `out`;
    each value as ``value`` writes it (exactly, by default)."""
    op = OPS[node.op]
    return [f"{k}={value(v)}" for k, v in node.attrs.items()
            if not (k in op.attr_names and op.attr(k).default == v and k != "out")]


def _attrs(node: Node) -> str:
    shown = shown_attrs(node)
    return "[" + ", ".join(shown) + "]" if shown else ""


def _shape(node: Node) -> str:
    """`f32[N,64]{NC}`: sizes, then roles; a tuple-valued node's
    `(f32[N,T,64]{NTC}, f32[N,64]{NC})`."""
    if node.outputs:
        return "(" + ", ".join(f"{node.dtype}{fmt_shape(s)}" for s in node.outputs) + ")"
    return f"{node.dtype}[?]" if node.shape is None else f"{node.dtype}{fmt_shape(node.shape)}"


def format_node(node: Node) -> str:
    """`%name : f32[N,64,32,32] = conv[out=64](%x; %name.weight)  {col=1}  # file:line:col`:
    data inputs, then after `;` the values on the weight ports."""
    args = []
    for port, src in enumerate(node.inputs):
        col = node.input_columns[port] if node.input_columns else None
        args.append(f"%{src}" + (f"@c{col}" if col is not None else ""))
    weights = "; " + ", ".join(f"%{w}" for w in node.weights) if node.weights else ""
    rhs = f"{node.op}{_attrs(node)}({', '.join(args)}{weights})"
    tags = []
    if node.column is not None:
        tags.append(f"col={node.column}")
    if node.position is not None:
        tags.append(f"pos={node.position}")
    if node.depth is not None:
        tags.append(f"depth={node.depth}")
    extra = f"  {{{', '.join(tags)}}}" if tags else ""
    where = f"{PurePath(node.span.file).name}:{node.span.line}:{node.span.col}"
    return f"%{node.name} : {_shape(node)} = {rhs}{extra}  # {where}"


def format_graph(graph: Graph) -> str:
    """The whole model: a header with its parameters, one line per node, the outputs."""
    params = ", ".join(f"{k}={format_value(v) if not isinstance(v, tuple) else _list(v)}"
                       for k, v in graph.params.items())
    lines = [f"model {graph.model}({params}) : {graph.input_type}"]
    open_bodies: list[Graph] = [graph]  # the graphs being printed, outermost first
    for holder, node in walk(graph):
        while open_bodies[-1] is not holder:
            _close(lines, open_bodies.pop(), len(open_bodies))
        text = format_node(node)
        lines.append("  " * len(open_bodies) + (text + " {" if node.body is not None else text))
        if node.body is not None:
            open_bodies.append(node.body)
    while len(open_bodies) > 1:
        _close(lines, open_bodies.pop(), len(open_bodies))
    lines.append("  return " + ", ".join(
        f"{graph.output_names[i]}=%{o}" if graph.output_names else f"%{o}"
        for i, o in enumerate(graph.outputs)))
    lines.append(f"  # {op_count(graph)} nodes, {total_params(graph):,} parameters, "
                 f"{total_macs(graph):,} MACs per sample")
    return "\n".join(lines) + "\n"


def _close(lines: list[str], body: Graph, depth: int) -> None:
    """The end of a body: what it returns, and its closing brace."""
    lines.append("  " * (depth + 1) + "return " + ", ".join(f"%{o}" for o in body.outputs))
    lines.append("  " * depth + "}")


def _list(v: tuple[object, ...]) -> str:
    return "[" + ", ".join(_list(x) if isinstance(x, tuple) else format_value(x)  # type: ignore[arg-type]
                           for x in v) + "]"
