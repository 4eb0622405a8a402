"""Elaboration throughput: IR nodes (parameters included) per second for FractalNet at C = 6, 8
and 10, the whole of `Program.model` (evaluation, instantiation, every pass, verification),
with the time of each phase, and seconds per node at C = 10 against C = 6 (1.0: linear).

    python bench/bench_elaborate.py            # writes the `elaborate` section of BENCHMARKS.md
    python bench/bench_elaborate.py --quick    # C = 4, 5 and 6
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

from common import ROOT, arguments, machine, write_section

sys.path.insert(0, str(ROOT.parent))
import ssnc


def elaborate(program: Any, c: int) -> tuple[int, float, dict[str, float]]:
    """(IR nodes, seconds, seconds per phase) of one `model(C=c)`."""
    marks: list[tuple[str, float]] = []

    def heard(name: str, done: int, total: int) -> None:
        if not marks or marks[-1][0] != name:
            marks.append((name, time.perf_counter()))
    start = time.perf_counter()
    model = program.model(C=c, classes=10, progress=heard)
    end = time.perf_counter()
    phases: dict[str, float] = {}
    edges = [("evaluate and instantiate", start), *marks, ("", end)]
    for (name, at), (_, after) in itertools.pairwise(edges):
        key = "evaluate and instantiate" if name.startswith("elaborat") else name
        phases[key] = phases.get(key, 0.0) + after - at
    nodes = sum(1 for _ in ssnc.compiler.ir.walk(model.ir))
    return nodes, end - start, phases


def main() -> None:
    args = arguments(__doc__, reps=3)
    program = ssnc.load(ROOT / "specs" / "fractalnet.ssn")
    sizes = (4, 5, 6) if args.quick else (6, 8, 10)
    rows = {}
    elaborate(program, 3)  # warm: the standard library's parse, the op tables
    for c in sizes:
        runs = [elaborate(program, c) for _ in range(args.reps)]
        rows[c] = min(runs, key=lambda r: r[1])  # the least disturbed run, phases and all
    first, last = rows[sizes[0]], rows[sizes[-1]]
    linear = (last[1] / last[0]) / (first[1] / first[0])
    phases = list(last[2])
    lines = ["## Elaboration throughput", "",
             f"`python bench/bench_elaborate.py` — `Program.model` of `specs/fractalnet.ssn` "
             f"(classes = 10) at each C, the best of {args.reps} runs; IR nodes count parameters. "
             f"{machine()}", "",
             "| C | IR nodes | seconds | nodes/s | " + " | ".join(phases) + " |",
             "|---:|---:|---:|---:|" + "---:|" * len(phases)]
    for c, (nodes, seconds, split) in rows.items():
        lines.append(f"| {c} | {nodes:,} | {seconds:.2f} | {nodes / seconds:,.0f} | "
                     + " | ".join(f"{split.get(p, 0.0):.2f}" for p in phases) + " |")
    lines += ["", f"Seconds per node at C = {sizes[-1]} over C = {sizes[0]}: **{linear:.2f}** "
              "(1.0 is linear; the goal is at most 1.2)."]
    write_section("elaborate" + ("-quick" if args.quick else ""), "\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
