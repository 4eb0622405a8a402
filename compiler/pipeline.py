"""The pass pipeline: elaborated graph in, verified IR out. Each pass has one job; a failure
that is not a diagnostic is reported as an internal error naming the pass."""

from __future__ import annotations

from collections.abc import Callable

from ..base.diagnostics import E_INTERNAL, Note, Span, SsnError, error
from .instantiate import Progress
from .ir import Graph
from .passes.assign_names import assign_names
from .passes.flatten_joins import flatten_joins
from .passes.infer_shapes import infer_shapes
from .passes.remove_unread import remove_unread
from .passes.tag_columns import tag_columns

Pass = Callable[[Graph], Graph]

PASSES: tuple[Pass, ...] = (flatten_joins, tag_columns, assign_names, infer_shapes,
                             remove_unread)


def run_passes(graph: Graph, passes: tuple[Pass, ...] = PASSES,
               verify_each: bool = False, progress: Progress | None = None) -> Graph:
    """Run ``passes`` in order and verify the result (after each pass if asked);
    ``progress`` hears of each pass by name, as done of total."""
    for done, p in enumerate(passes):
        if progress is not None:
            progress(p.__name__.replace("_", " "), done, len(passes) + 1)
        try:
            graph = p(graph)
            if verify_each:
                graph.verify()
        except SsnError:
            raise
        except Exception as exc:  # a bug: still a diagnostic, never a traceback
            before = ", ".join(q.__name__ for q in passes[:done]) or "none"
            raise error(E_INTERNAL, f"internal error in pass `{p.__name__}`: "
                        f"{type(exc).__name__}: {exc}", Span.unknown(),
                        notes=[Note(f"passes that ran before it: {before}"),
                               Note("please report this with the spec that caused it")]
                        ) from exc
    if progress is not None:
        progress("verify", len(passes), len(passes) + 1)
    graph.verify()
    return graph
