"""The guard every phase runs under (parsing, checking, elaboration, passes): a thread with a
deep stack and a raised recursion limit, so that deeply nested text ends in a positioned
limit diagnostic (E0406) rather than a crash, and memory exhaustion in a diagnostic too.
The cyclic garbage collector waits while a phase runs: a phase builds its records in bulk and
makes little cyclic garbage, and collecting the young objects again and again cost
elaboration a third of its time, more as the model grew. (What the phase made is scanned
once by the first young collection after it. Moving it straight to the oldest generation,
gc.freeze then unfreeze, would save that scan, but the cyclic garbage among it would then
wait for a full collection that the moved objects never bring on: a language server's
memory grew by 0.3 MB a check.)"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from ..base.diagnostics import E_NESTING, E_VALUE_LIMIT, MAX_NESTING, Span, error

T = TypeVar("T")

_RECURSION_LIMIT = 12 * MAX_NESTING  # the evaluator uses a few Python frames per level
_STACK_BYTES = 128 * 1024 * 1024  # reserved, not committed (8 MiB suffice at the limit)
_lock = threading.Lock()


def guarded(fn: Callable[[], T], where: str = "<unknown>") -> T:
    """Run ``fn`` with room for deep (limited) recursion; return its result or raise its
    exception. Nested calls run directly on the guard's thread."""
    if getattr(_state, "inside", False):
        return fn()
    box: dict[str, object] = {}
    context = contextvars.copy_context()  # the caller's settings (how options are spelled)

    def run() -> None:
        _state.inside = True
        try:
            box["value"] = context.run(fn)
        except RecursionError:
            box["error"] = error(E_NESTING, "the spec nests too deeply to evaluate",
                                 Span.unknown(where),
                                 hint=f"nesting is limited to {MAX_NESTING:,} levels")
        except MemoryError:
            box["error"] = error(E_VALUE_LIMIT, "the spec needs more memory than is available",
                                 Span.unknown(where))
        except BaseException as exc:  # handed to the caller's thread as it is
            box["error"] = exc

    with _lock:
        old_limit = sys.getrecursionlimit()
        old_stack = threading.stack_size()
        collecting = gc.isenabled()
        sys.setrecursionlimit(max(old_limit, _RECURSION_LIMIT))
        gc.disable()
        try:
            threading.stack_size(_STACK_BYTES)
            worker = threading.Thread(target=run, name="ssnc-guard", daemon=True)
            worker.start()
        finally:
            threading.stack_size(old_stack)
        try:
            worker.join()
        finally:
            sys.setrecursionlimit(old_limit)
            if collecting:
                gc.enable()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


_state = threading.local()
