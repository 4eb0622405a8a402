"""The targets of `ssnc compile`: one door each (its suffix, its own flags, what it needs
installed, what it refuses, how it writes its file), and the checks that pick one before any
work is done."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .api import Model, check_onnx_options
from .base.diagnostics import E_OPTION, Span, error
from .extras import require_torch
from .output import (
    EXTERNAL_DATA_THRESHOLD,
    check_target,
    write_atomic,
    write_bytes,
    write_onnx,
)


class Target(StrEnum):
    """What `ssnc compile` produces."""

    onnx = "onnx"
    torch = "torch"
    python = "python"


ONNX_FLAGS = {"flat=False": "--functions", "opset": "--opset", "precision": "--precision",
              "io_precision": "--io-precision", "batch": "--batch", "steps": "--steps",
              "symbolic_hw": "--symbolic-hw", "unroll": "--unroll",
              "fold_weights": "--fold-weights", "fold_bn": "--fold-bn",
              "external_data_threshold": "--external-data-threshold"}
"""The ONNX export's options (`OnnxOptions` fields, and the ONNX writer's threshold) and
the flags that give them; messages name an option by its flag while a command runs."""

COMMON_FLAGS = {"seed": "--seed", "column": "--column", "weights": "--weights",
                "tap": "--tap", "set": "--set", "model": "--model",
                "max_nodes": "--max-nodes", "plugin": "--plugin"}
"""Options every target (and other commands) share, and their flags."""


@dataclass(frozen=True)
class Request:
    """What `ssnc compile` was asked for, flags turned into options."""

    spec: Path
    output: Path | None
    seed: int | None
    column: int | None
    weights: Path | None
    options: dict[str, Any]
    """The target's own options, by option name (those given only)."""

    @property
    def export_options(self) -> dict[str, Any]:
        """The options of the export itself (not of writing its file)."""
        return {k: v for k, v in self.options.items() if k != "external_data_threshold"}


def write_onnx_file(m: Model, r: Request, out: Path, inputs: list[Path],
                step: Callable[..., None]) -> tuple[list[Path], str]:
    proto = m.to_onnx(r.seed or 0, column=r.column, weights=r.weights, progress=step,
                      **r.export_options)
    folded = ""
    if r.options.get("fold_weights"):
        stored = sum(math.prod(t.dims) for t in proto.graph.initializer)
        folded = f"; {stored:,} stored after --fold-weights"
    step("writing")
    threshold = r.options.get("external_data_threshold", EXTERNAL_DATA_THRESHOLD)
    return write_onnx(proto, out, inputs=inputs, external_data_threshold=threshold,
                      progress=step), folded


def write_program(m: Model, r: Request, out: Path, inputs: list[Path],
                   step: Callable[..., None]) -> tuple[list[Path], str]:
    import torch

    program = m.to_torch_program(r.seed or 0, column=r.column, weights=r.weights)
    buffer = io.BytesIO()  # saved whole first: torch names files by suffix
    torch.export.save(program, buffer)
    write_atomic(out, lambda tmp: write_bytes(tmp, buffer.getvalue()), inputs=inputs)
    return [out], ""


def write_python(m: Model, r: Request, out: Path, inputs: list[Path],
                  step: Callable[..., None]) -> tuple[list[Path], str]:
    source = (m.column(r.column) if r.column is not None else m).torch_source()
    write_atomic(out, lambda tmp: write_bytes(tmp, source.encode("utf-8")), inputs=inputs)
    return [out], ""


@dataclass(frozen=True)
class Door:
    """One target of `ssnc compile`: its file suffix, the flags of its own options, what it
    needs installed, what it refuses, and how it writes its file."""

    suffix: str
    flags: Mapping[str, str]
    needs_torch: bool
    refuses: Mapping[str, str]
    """Common options that mean nothing for this target, and why."""
    write: Callable[[Model, Request, Path, list[Path], Callable[..., None]],
                    tuple[list[Path], str]]


_NO_WEIGHTS = ("generated source holds no weights: load them with "
               "`model.load_state_dict(torch.load(path))`")
_NO_SEED = ("generated source builds its weights with torch's own initialisers (seed them "
            "with torch.manual_seed); `Model.to_torch(seed=N)` loads the compiler's")

TARGETS: dict[Target, Door] = {
    Target.onnx: Door(".onnx", ONNX_FLAGS, False, {}, write_onnx_file),
    Target.torch: Door(".pt2", {}, True, {}, write_program),
    Target.python: Door(".py", {}, True, {"weights": _NO_WEIGHTS, "seed": _NO_SEED},
                         write_python),
}
"""Every target: adding a backend to the CLI is one row here and its flags."""

_ACCEPTED = ", ".join(f"{door.suffix} (--to {t.value})" for t, door in TARGETS.items())


def target_of(to: Target | None, output: Path | None) -> Target:
    """What to compile to: --to, else -o's extension; an extension of another target is
    refused before any work (E0601). With --to, other extensions are the user's choice."""
    implied = next((t for t, door in TARGETS.items()
                    if output is not None and output.suffix == door.suffix), None)
    if to is None and implied is None:
        what = (f"{output} has no extension it can say" if output is not None
                else "no --to and no -o")
        raise error(E_OPTION, f"what to compile to is not given: {what}",
                    Span.unknown(str(output) if output is not None else "--to"),
                    hint=f"pass --to onnx|torch|python, or an -o ending in one of {_ACCEPTED}")
    if to is not None and implied is not None and implied is not to:
        raise error(E_OPTION, f"{output} does not end in {TARGETS[to].suffix}, the extension "
                    f"of --to {to.value}", Span.unknown(str(output)),
                    hint=f"the accepted extensions are {_ACCEPTED}")
    return to or implied  # type: ignore[return-value]


def checked_door(to: Target, r: Request, flat: bool) -> Door:
    """``to``'s door, once every option given applies to it and can be honoured (E0601
    otherwise, before any work) and what it needs is installed."""
    door = TARGETS[to]
    refused = [(COMMON_FLAGS[k], door.refuses[k]) for k, v in
               {"seed": r.seed, "column": r.column, "weights": r.weights}.items()
               if v is not None and k in door.refuses]
    refused += [(ONNX_FLAGS.get(k) or ONNX_FLAGS[f"{k}=False"], "it is an ONNX option")
                for k in r.options if k not in door.flags and f"{k}=False" not in door.flags]
    if flat and to is not Target.onnx:
        refused.append(("--flat", "it is an ONNX option"))
    if refused:
        flag, why = refused[0]
        raise error(E_OPTION, f"{flag} does not apply to --to {to.value}", Span.unknown(flag),
                    hint=why)
    if to is Target.onnx:
        check_onnx_options(**r.export_options)
    if door.needs_torch:
        require_torch(f"--to {to.value}")
    if r.output is not None:
        check_target(r.output, [r.spec])
    return door
