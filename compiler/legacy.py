"""Checkpoints saved before ssnc 0.2, whose naming separator differed: the graph records
the names its nodes had then (`Graph.aliases`, made by `assign_names`), and this maps their
state_dict keys to today's (CHANGELOG.md)."""

from __future__ import annotations

from .ir import Graph


def renamed_keys(graph: Graph) -> dict[str, str]:
    """State_dict keys of checkpoints saved before 0.2 -> this model's keys, where the naming
    separator changed them."""
    every = graph.all_nodes()  # a body's parameters too
    return {old: new for old, new in graph.aliases.items() if new in every and every[new].is_param}
