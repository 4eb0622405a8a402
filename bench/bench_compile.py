"""torch.compile on every shipped spec at full size, in eval mode: `torch.compile(net,
fullgraph=True)` (inductor, with the machine's C compiler) against the same module in eager
mode. For each model: that it compiles as one graph, how long compiling took, the largest
difference from eager (relative to the largest |output|), and the compiled/eager latency
ratio from paired runs. CI checks the one-graph property for every spec by capture only
(tests/test_compile.py) and compiles three narrow models with inductor; this is the
full-size run, too slow for CI (minutes on 2 cores).

    python bench/bench_compile.py [--reps 5] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

# compile times from scratch: inductor's on-disk cache would replay an earlier run's work
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ssnc-inductor-")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, paired, write_section

import ssnc
from ssnc.backends.torch import example_input

QUICK = {"treenet": {}, "hornn_lm": {"hidden": 16}}
"""`--quick`: two small models, for the smoke test."""
BATCH, STEPS = 8, 32


def measure(model: ssnc.Model, reps: int) -> tuple[str, float]:
    """One table row for ``model`` (compile time, difference, latencies) and its ratio."""
    net = model.to_torch(seed=0).eval()
    x = example_input(model.ir, batch=BATCH, steps=STEPS)
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)  # a graph break would raise here
    with torch.no_grad():
        start = time.perf_counter()
        got = compiled(x)
        seconds = time.perf_counter() - start
        want = net(x)
        scale = max(float(want.abs().max()), 1e-6)
        diff = float((got - want).abs().max()) / scale
        timing = paired(lambda: compiled(x), lambda: net(x), reps)
    return (f"| {model.name} | {model.total_params:,} | {seconds:.1f} | {diff:.1e} | "
            f"{timing['b_s'] * 1e3:.2f} | {timing['a_s'] * 1e3:.2f} | "
            f"**{timing['ratio']:.2f}** |", timing["ratio"])


def main() -> None:
    args = arguments(__doc__, reps=5)
    torch.manual_seed(0)
    lines = [
        "## torch.compile: every shipped spec, eval mode, full size" if not args.quick else
        "## torch.compile (quick)",
        "",
        f"`python bench/bench_compile.py` on {machine()}. Each model compiled with "
        f"`torch.compile(fullgraph=True)` (inductor, CPU) and run on a batch of {BATCH} "
        f"(sequence models: T = {STEPS}); difference from eager relative to the largest "
        "|output|; compile = the first call, from an empty inductor cache; ratio = compiled / "
        "eager latency (median of paired runs; below 1: compiled is faster).",
        "",
        "| model | parameters | compile (s) | difference | eager (ms) | compiled (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    section = "compile-quick" if args.quick else "compile"
    specs = sorted((ROOT / "specs").glob("*.ssn"))
    ratios: list[float] = []
    for spec in specs:
        if args.quick and spec.stem not in QUICK:
            continue
        program = ssnc.load(spec)
        for name in program.models:
            model = program.model(name, **QUICK.get(spec.stem, {}) if args.quick else {})
            row, ratio = measure(model, args.reps)
            lines.append(row)
            ratios.append(ratio)
            print(row, flush=True)
            write_section(section, "\n".join(lines), args.out)  # a cut-short run still reports
    slower = sum(r > 1 for r in ratios)
    lines += ["", f"All {len(ratios)} compile as one graph. Compiled/eager from "
              f"{min(ratios):.2f} to {max(ratios):.2f}; slower than eager in {slower}."]
    write_section(section, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
