"""Which joins merge: FractalNet's joins that meet are one join over every column that
arrives there. One rule, read by `flatten_joins` (which merges them) and by `join_inputs`
(which reads a fractal's columns while the model is built)."""

from __future__ import annotations

from .ir import Node
from .ops import OPS


def merging(node: Node) -> bool:
    """Whether ``node`` is a join that takes in the joins of its kind that meet it."""
    return OPS[node.op].is_join and bool(node.attrs.get("merge", False))


def merges(outer: Node, inner: Node, readers: int, is_output: bool) -> bool:
    """Whether join ``inner``, read by ``readers`` nodes, merges into join ``outer``."""
    return (
        merging(outer)
        and inner.op == outer.op
        and dict(inner.attrs) == dict(outer.attrs)
        and readers == 1
        and not is_output
    )
