"""Compiled FractalNet (ssnc's PyTorch backend) against a hand-written PyTorch FractalNet of
the same layout and weights: eval forward, and training steps under drop-path, at batch 64 on
32x32 images. Writes the ratios (compiled / hand-written; < 1 is faster) to BENCHMARKS.md.

    python bench/bench_torch.py [--reps 5] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, paired, report, write_section
from handwritten_fractalnet import FractalNet

import ssnc


def copy_weights(compiled: torch.nn.Module, baseline: FractalNet) -> None:
    """Give the baseline the compiled module's weights (keys mapped by structure)."""
    src = compiled.state_dict()
    dst = baseline.state_dict()
    for key in dst:
        parts = key.split(".")
        if parts[0] == "fc":
            name = "linear." + parts[1]
        else:  # blocks.B.columns.C.I.(conv|bn).param
            b, c, i = int(parts[1]), int(parts[3]), int(parts[4])
            name = f"stage{b + 1}.fractal.col{c + 1}.unit{i + 1}.{'.'.join(parts[5:])}"
        dst[key].copy_(src[name])


def folded_rows(compiled: torch.nn.Module, baseline: torch.nn.Module, x: torch.Tensor,
                args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    """`ssnc.optimize_for_inference` against the hand-written model (batch 64 and 1,
    channels-last too), and against the unfolded compiled module for NiN and WRN-40-2."""
    reps = int(args.reps)
    fast = ssnc.optimize_for_inference(compiled)
    last = ssnc.optimize_for_inference(compiled, channels_last=True)

    def forward(net: torch.nn.Module, data: torch.Tensor) -> object:
        with torch.no_grad():
            return net(data)
    one = x[:1]
    rows = [("eval forward, optimize_for_inference", paired(
                lambda: forward(fast, x), lambda: forward(baseline, x), reps)),
            ("eval forward, optimize_for_inference, channels_last", paired(
                lambda: forward(last, x), lambda: forward(baseline, x), reps)),
            ("eval forward, optimize_for_inference, batch 1", paired(
                lambda: forward(fast, one), lambda: forward(baseline, one), reps * 4))]
    quick = bool(args.quick)
    for name, params, shape in (
            ("NiN", {}, (64, 3, 32, 32)),
            ("WRN-40-2", {"depth": 16, "k": 1} if quick else {}, (64, 3, 32, 32))):
        spec = "nin_cifar10.ssn" if name == "NiN" else "wrn.ssn"
        net = ssnc.load(ROOT / "specs" / spec).model(**params).to_torch(0).eval()
        folded = ssnc.optimize_for_inference(net)
        data = torch.randn(*shape)
        rows.append((f"{name} eval forward: optimize_for_inference / unfolded (not "
                     f"hand-written); {folded.ssnc_folded}", paired(
                         lambda f=folded, d=data: forward(f, d),
                         lambda n=net, d=data: forward(n, d), reps)))
    return rows


def local_profile(compiled: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  steps: int = 3) -> list[str]:
    """Where a training step with local drop-path spends its time: the compiled module's
    top ops by their own CPU time over ``steps`` steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    draw = compiled.ssnc_drop_path
    draw.global_ratio = 0.0
    opt = torch.optim.SGD(compiled.parameters(), lr=1e-4)

    def step() -> None:
        compiled.train()
        loss = F.cross_entropy(compiled.forward_dropping(x, draw.draw(x.shape[0]).keep), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = ["### Where a local drop-path training step's time goes", "",
             f"`torch.profiler` over {steps} steps of the compiled FractalNet above, local "
             "draws only; each op's own CPU time.", "",
             "| op | share | calls per step |", "|---|---:|---:|"]
    for e in events[:10]:
        lines.append(f"| `{e.key}` | {e.self_cpu_time_total / total:.1%} | "
                     f"{e.count / steps:.0f} |")
    return lines


def per_block(keep: tuple[tuple[bool, ...], ...], blocks: int) -> list[list[list[bool]]]:
    joins = len(keep) // blocks
    return [[list(k) for k in keep[b * joins:(b + 1) * joins]] for b in range(blocks)]


def main() -> None:
    args = arguments(__doc__, reps=5)
    torch.manual_seed(0)
    widths = [8, 16, 16, 32, 32] if args.quick else [64, 128, 256, 512, 512]
    spec = ssnc.load(ROOT / "specs" / "fractalnet.ssn").model(classes=10, C=3, widths=widths)
    compiled = spec.to_torch(seed=0)
    baseline = FractalNet(10, 3, tuple(widths))
    copy_weights(compiled, baseline)
    x = torch.randn(64, 3, 32, 32)
    y = torch.randint(0, 10, (64,))
    compiled.eval(), baseline.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), baseline(x), rtol=1e-4, atol=1e-4)

    rows = []

    def forward(net: torch.nn.Module) -> object:
        with torch.no_grad():
            return net(x)

    rows.append(("eval forward", paired(lambda: forward(compiled), lambda: forward(baseline),
                                        args.reps)))
    rows += folded_rows(compiled, baseline, x, args)
    compiled.train(), baseline.train()
    opt_c = torch.optim.SGD(compiled.parameters(), lr=1e-4)
    opt_b = torch.optim.SGD(baseline.parameters(), lr=1e-4)
    draw = compiled.ssnc_drop_path

    def step_compiled(keep: tuple[tuple[bool, ...], ...]) -> None:
        loss = F.cross_entropy(compiled.forward_dropping(x, keep), y)
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()

    def step_baseline(keep: tuple[tuple[bool, ...], ...]) -> None:
        loss = F.cross_entropy(baseline(x, per_block(keep, 5)), y)
        opt_b.zero_grad()
        loss.backward()
        opt_b.step()

    for label, ratio in (("training step, global drop-path", 1.0),
                         ("training step, local drop-path", 0.0),
                         ("training step, 50/50 local/global mix", 0.5)):
        draw.global_ratio = ratio
        plan: dict[str, object] = {"keep": draw.draw(64).keep, "calls": 0}

        def run(which: str, plan: dict[str, object] = plan) -> None:
            keep = plan["keep"]
            (step_compiled if which == "compiled" else step_baseline)(keep)  # type: ignore[arg-type]
            plan["calls"] = int(plan["calls"]) + 1  # type: ignore[call-overload]
            if plan["calls"] % 2 == 0:  # both sides ran this draw: a fresh one for the next pair
                plan["keep"] = draw.draw(64).keep

        rows.append((label, paired(lambda run=run: run("compiled"),
                                   lambda run=run: run("baseline"), args.reps)))

    profiled = local_profile(compiled, x, y)
    lines = [
        "## PyTorch backend: compiled FractalNet vs hand-written",
        "",
        f"`python bench/bench_torch.py{' --quick' if args.quick else ''}` — FractalNet "
        f"(PyTorch-port layout, C=3, widths {widths}), batch 64, 32x32, CPU; {machine()}; "
        f"{args.reps} paired repetitions. Both sides get the same weights and, per pair, the "
        "same drop-path draw; the hand-written baseline computes every column and masks "
        "dropped ones, as public ports do.",
    ]
    report("torch" + ("-quick" if args.quick else ""), lines,
           ("compiled", "hand-written", "compiled/hand-written"), rows, args.out)
    write_section("torch-profile" + ("-quick" if args.quick else ""), "\n".join(profiled),
                  args.out)
    print("\n".join(profiled))


if __name__ == "__main__":
    main()
