"""Shared helpers for benchmarks: paired timing and writing a section of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def arguments(doc: str | None, reps: int) -> argparse.Namespace:
    """The options every benchmark takes: --reps, --quick (narrow widths) and --out."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--quick", action="store_true", help="narrow widths, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    return parser.parse_args()


def paired(a: Callable[[], object], b: Callable[[], object], reps: int,
           warmup: int = 1) -> dict[str, float]:
    """Time ``a`` and ``b`` in alternating order, ``reps`` pairs; report medians and the
    median of the per-pair ratios a/b (robust to drift on a noisy machine)."""
    for _ in range(warmup):
        a(), b()
    ta, tb, ratios = [], [], []
    for r in range(reps):
        order = (a, b) if r % 2 == 0 else (b, a)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        ta.append(times[a])
        tb.append(times[b])
        ratios.append(times[a] / times[b])
    return {"a_s": statistics.median(ta), "b_s": statistics.median(tb),
            "ratio": statistics.median(ratios)}


def kept_for_backward(step: Callable[[], object]) -> int:
    """The bytes autograd keeps for backward while ``step`` runs its forward (by storage,
    each once): what activation checkpointing saves."""
    import torch

    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(saved.values())


def sgd_step(module: Any, loss: Callable[[Any], Any], **sgd: float) -> Callable[[], None]:
    """One training step of ``module`` as a closure: train mode, ``loss(module)``, backward,
    an SGD update (``sgd``: its options; lr 1e-3 by default)."""
    import torch

    opt = torch.optim.SGD(module.parameters(), **{"lr": 1e-3, **sgd})

    def step() -> None:
        module.train()
        value = loss(module)
        opt.zero_grad()
        value.backward()
        opt.step()
    return step


def machine() -> str:
    """One line describing where the figures were measured."""
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def report(name: str, intro: list[str], columns: tuple[str, str, str],
           rows: list[tuple[str, dict[str, float]]], out: Path, digits: int = 3) -> None:
    """Render a results table under ``intro``, print it, and store it as section ``name``."""
    a, b, ratio = columns
    lines = [*intro, "", f"| measurement | {a} (s) | {b} (s) | ratio {ratio} |",
             "|---|---:|---:|---:|"]
    for label, r in rows:
        lines.append(f"| {label} | {r['a_s']:.{digits}f} | {r['b_s']:.{digits}f} | "
                     f"**{r['ratio']:.2f}** |")
    text = "\n".join(lines)
    write_section(name, text, out)
    print(text)


def write_section(name: str, body: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace (or add) the section between `<!-- name -->` markers, keeping the rest."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nFigures are ratios against a baseline measured in the same run, "
        "with paired, alternating repetitions. Regenerate with the commands shown.\n")
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
