"""`ssnc.distributed.parallelize` figures on FractalNet: per-rank bytes of parameters,
gradients and optimizer state under FSDP2 (per stage) against DDP on 2 ranks (gloo, CPU,
under torchrun; goal about 0.5), and, in one process, a training step with every stage
checkpointed against without: the activation bytes kept for backward (counted exactly, as
autograd packs them) and the time, paired and alternating.

    python bench/bench_distributed.py [--reps 5] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, kept_for_backward, machine, paired, write_section

import ssnc

WIDTHS = {"quick": [8, 16, 16, 16, 16], "full": [64, 128, 256, 512, 512]}


def _model(quick: bool) -> Any:
    return ssnc.load(ROOT / "specs" / "fractalnet.ssn").model(
        C=3, classes=10, widths=WIDTHS["quick" if quick else "full"])


def _state_bytes(net: Any, opt: Any) -> int:
    """This rank's bytes of parameters, gradients and optimizer state (a DTensor's local
    shard only)."""
    def local(t: Any) -> int:
        t = t.to_local() if hasattr(t, "to_local") else t
        return int(t.numel() * t.element_size())
    total = sum(local(p) + (local(p.grad) if p.grad is not None else 0)
                for p in net.parameters())
    return total + sum(local(v) for s in opt.state.values() for v in s.values()
                       if hasattr(v, "numel") and v.dim() > 0)


def worker(out: str, quick: bool, optimizer: str) -> None:
    """Under torchrun: one training step under DDP and one under FSDP2; rank 0 writes the
    bytes each holds."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F  # noqa: N812
    from torch.nn.parallel import DistributedDataParallel

    from ssnc.distributed import parallelize

    dist.init_process_group("gloo")
    model = _model(quick)
    found = {}
    for kind in ("ddp", "fsdp2"):
        base = model.to_torch(seed=0, drop_mode="off")
        net = (DistributedDataParallel(base) if kind == "ddp" else parallelize(base))
        opt = (torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9) if optimizer == "sgd"
               else torch.optim.Adam(net.parameters(), lr=1e-3))
        x = torch.randn(4, 3, 32, 32)
        y = torch.randint(0, 10, (4,))
        F.cross_entropy(net(x), y).backward()
        opt.step()
        found[kind] = _state_bytes(net, opt)
    if optimizer == "sgd":
        found.update(_ddp_drop_path(model, 3 if quick else 5))
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(found))
    dist.barrier()
    dist.destroy_process_group()
    # torch 2.13's gloo may abort a process in interpreter shutdown under load, after
    # everything is done ("terminate called without an active exception"): skip it
    sys.stdout.flush()
    os._exit(0)


def _ddp_drop_path(model: Any, reps: int) -> dict[str, float]:
    """Median DDP training step, drop-path on: "batch" mode (dropped columns not computed;
    DDP then needs find_unused_parameters=True) against "sample" mode (every column
    computed and masked; no flag needed)."""
    import statistics
    import time

    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch.nn.parallel import DistributedDataParallel

    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    times: dict[str, list[float]] = {"batch_find_unused": [], "sample": []}
    nets = {"batch_find_unused": DistributedDataParallel(
                model.to_torch(seed=0, drop_mode="batch"), find_unused_parameters=True),
            "sample": DistributedDataParallel(model.to_torch(seed=0, drop_mode="sample"))}
    for rep in range(reps + 1):
        for kind in (("batch_find_unused", "sample") if rep % 2 else ("sample",
                                                                      "batch_find_unused")):
            start = time.perf_counter()
            F.cross_entropy(nets[kind](x), y).backward()
            if rep:  # the first round warms up
                times[kind].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def sharded_bytes(quick: bool, optimizer: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bytes.json"
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             __file__, "--worker", str(out), "quick" if quick else "full", optimizer],
            capture_output=True, text=True, timeout=900, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def checkpointing(quick: bool, reps: int) -> dict[str, float]:
    """A training step with every stage checkpointed against without (one process)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from ssnc.distributed import parallelize

    model = _model(quick)
    batch = 4 if quick else 16
    plain = parallelize(model.to_torch(seed=0, drop_mode="off"), shard=False)
    kept = parallelize(model.to_torch(seed=0, drop_mode="off"), shard=False, checkpoint=True)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step(net: Any) -> Any:
        return lambda: F.cross_entropy(net(x), y).backward()

    for net in (plain, kept):
        net.train()
    with torch.no_grad():
        torch.testing.assert_close(kept.eval()(x), plain.eval()(x), rtol=0, atol=0)
    plain.train(), kept.train()
    timing = paired(step(kept), step(plain), reps)
    return {"saved_plain": kept_for_backward(step(plain)),
            "saved_kept": kept_for_backward(step(kept)), **timing}


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3] == "quick", sys.argv[4])
        return
    args = arguments(__doc__, reps=5)
    section = "distributed-quick" if args.quick else "distributed"
    widths = WIDTHS["quick" if args.quick else "full"]
    lines = [f"## Past one device: FSDP2 and checkpointing by region"
             f"{' (quick)' if args.quick else ''}", "",
             f"`python bench/bench_distributed.py` on {machine()}. FractalNet (C = 3, widths "
             f"{widths}, 32×32 inputs), `ssnc.distributed.parallelize` with the default "
             "regions (the five stages).", "",
             "| measure | baseline | compared | ratio |", "|---|---:|---:|---:|"]
    for optimizer in ("sgd", "adam"):
        found = sharded_bytes(args.quick, optimizer)
        label = "SGD with momentum" if optimizer == "sgd" else "Adam"
        ddp, fsdp = found["ddp"], found["fsdp2"]
        lines.append(f"| per-rank parameters, gradients and optimizer state ({label}), 2 ranks:"
                     f" DDP vs FSDP2 | {ddp / 2**20:,.2f} MiB | {fsdp / 2**20:,.2f} MiB | "
                     f"**{fsdp / ddp:.2f}** |")
        print(lines[-1], flush=True)
        if optimizer == "sgd":
            batch, sample = found["batch_find_unused"], found["sample"]
            lines.append("| DDP training step with drop-path, 2 ranks: \"sample\" mode (no flag "
                         "needed) vs \"batch\" mode with find_unused_parameters=True | "
                         f"{batch * 1e3:,.0f} ms | {sample * 1e3:,.0f} ms | "
                         f"**{sample / batch:.2f}** |")
        write_section(section, "\n".join(lines), args.out)
    m = checkpointing(args.quick, args.reps)
    lines += [f"| training step with checkpointing: activation bytes kept for backward | "
              f"{m['saved_plain'] / 2**20:,.1f} MiB | {m['saved_kept'] / 2**20:,.1f} MiB | "
              f"**{m['saved_kept'] / m['saved_plain']:.2f}** |",
              f"| training step with checkpointing: time (median of {args.reps} pairs) | "
              f"{m['b_s'] * 1e3:,.0f} ms | {m['a_s'] * 1e3:,.0f} ms | **{m['ratio']:.2f}** |", "",
              "FSDP2 keeps half of every sharded tensor on each rank (parameters, gradients and "
              "the optimizer's state, which follows the parameters' sharding); DDP keeps all of "
              "them on every rank (and its gradient buckets besides, not counted here). "
              "Checkpointing keeps only each stage's input for backward and computes the "
              "stage again there: the bytes are those autograd packs outside the checkpointed "
              "stages, counted by storage, and the time is a forward more. Under DDP, "
              "drop-path's \"batch\" mode leaves a dropped column's parameters unused, so DDP "
              "needs find_unused_parameters=True (a walk of the autograd graph each step); "
              "\"sample\" mode uses every parameter (each column computed, then masked) and "
              "needs no flag, at the cost of computing the dropped columns."]
    write_section(section, "\n".join(lines), args.out)
    print("\n".join(lines[-4:-2]))


if __name__ == "__main__":
    main()
