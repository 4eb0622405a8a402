"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2` (gloo, CPU): a narrow
FractalNet with drop-path, parallelized by `ssnc.distributed.parallelize` (FSDP2 per fractal,
then checkpointed too, then compiled too), a narrow Hyper-WRN (its generator shared by every
group) and an HM-RNN language model (a loop), trained 3 SGD steps with each rank on its own
data. Each rank also trains the reference, one unsharded process: every rank's batch run
separately with the same drop-path draws, the gradients averaged (BatchNorm statistics are
per rank, as under FSDP). Rank 0 writes the largest parameter difference per case."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from rank_results import finish  # (tests/, this script's folder)

import ssnc
from ssnc.distributed import Regions, parallelize

SPECS = Path(__file__).resolve().parent.parent / "specs"

SPEC = """
def unit(w) = conv(w, 3, bias = false) >> bn >> relu
model net : tensor[3, 8, 8] =
    fractal(3, unit(8), drop_path = 0.3) >> maxpool(2) >> fractal(2, unit(16), drop_path = 0.3)
    >> gap >> linear(10)
"""
HMRNN = ("model lm(vocab = 20) : tokens[vocab] = embedding(vocab, 8) >> "
         "hmrnn(layers = 2, dim = 8, out_dim = 8) >> linear(vocab)\n")
STEPS, BATCH, LR = 3, 4, 0.05


@dataclass(frozen=True)
class Subject:
    """A model, its data (per rank, per step) and its loss."""

    model: Any
    inputs: Callable[[torch.Generator], torch.Tensor]
    classes: int
    regions: Any


def _subjects() -> dict[str, Subject]:
    return {
        "fractalnet": Subject(ssnc.loads(SPEC).model(),
                              lambda g: torch.randn(BATCH, 3, 8, 8, generator=g), 10,
                              Regions(depth=1)),
        "hyper_wrn": Subject(ssnc.load(SPECS / "hyper_wrn.ssn").model(depth=10, k=1, z_dim=8),
                             lambda g: torch.randn(2, 3, 32, 32, generator=g), 10,
                             Regions(depth=2)),  # groups share the generator: no units
        "hmrnn": Subject(ssnc.loads(HMRNN).model(),
                         lambda g: torch.randint(0, 20, (BATCH, 6), generator=g), 20,
                         Regions(depth=1)),
    }


def _data(subject: Subject, rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1000 + rank)
    out = []
    for _ in range(STEPS):
        x = subject.inputs(gen)
        out.append((x, torch.randint(0, subject.classes, x.shape[:1] if x.dtype != torch.int64
                                     else x.shape, generator=gen)))
    return out


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _recording(net: Any, plans: list[Any]) -> None:
    draw = net.ssnc_drop_path.draw

    def recorded(n: int, device: object = "cpu") -> Any:
        plan = draw(n, device)
        plans.append(plan)
        return plan
    net.ssnc_drop_path.draw = recorded


def _reference(subject: Subject, plans: list[Any], world: int) -> dict[str, torch.Tensor]:
    """One process: each step, every rank's batch with that step's draw, gradients averaged."""
    net = subject.model.to_torch(seed=0)
    replay = iter(plans)
    step_plan: list[Any] = []
    net.ssnc_drop_path.draw = lambda n, device="cpu": step_plan[0]
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    data = [_data(subject, r) for r in range(world)]
    net.train()
    for step in range(STEPS):
        step_plan[:] = [next(replay, None)]
        opt.zero_grad()
        for r in range(world):
            x, y = data[r][step]
            (_loss(net(x), y) / world).backward()
        opt.step()
    return {k: v.detach() for k, v in net.named_parameters()}


def _train(net: Any, subject: Subject, rank: int) -> None:
    """3 SGD steps on this rank's data."""
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    net.train()
    for x, y in _data(subject, rank):
        opt.zero_grad()
        _loss(net(x), y).backward()
        opt.step()


def _case(subject: Subject, rank: int, world: int, **options: Any) -> dict[str, Any]:
    """The largest difference to the reference after training, and what shows the case
    is real: parameters moved, columns were dropped, the share of the parameters this rank
    holds."""
    base = subject.model.to_torch(seed=0, drop_seed=1)  # (seed 0's first draws: all global)
    initial = {k: v.detach().clone() for k, v in base.named_parameters()}
    net = parallelize(base, regions=subject.regions, **options)
    plans: list[Any] = []
    _recording(net, plans)
    _train(net, subject, rank)
    got = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach()
           for k, v in net.named_parameters()}
    want = _reference(subject, plans, world)
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:4]
    return {"max_difference": max(float((got[k] - want[k]).abs().max()) for k in want),
            "moved": sum(not torch.equal(got[k], initial[k]) for k in want) / len(want),
            "dropped": sum(not all(flags) for p in plans for flags in p.keep),
            "local_share": sum(v.to_local().numel() for v in net.parameters())
            / sum(v.numel() for v in net.parameters()),  # (no collective: ranks may differ)
            "units": [c.path for c in net.ssnc_plan.choices]}


def _ddp_case(subject: Subject, rank: int, world: int) -> dict[str, Any]:
    """DDP without `find_unused_parameters`, drop-path in "sample" mode (every column
    computed and masked, so every parameter is used): the same comparison."""
    from torch.nn.parallel import DistributedDataParallel

    base = subject.model.to_torch(seed=0, drop_seed=1, drop_mode="sample")
    plans: list[Any] = []
    _recording(base, plans)
    net = DistributedDataParallel(base)
    _train(net, subject, rank)
    got = {k: v.detach() for k, v in base.named_parameters()}
    want = _reference(subject, plans, world)
    return {"max_difference": max(float((got[k] - want[k]).abs().max()) for k in want),
            "masked": sum(float((m < 1).sum()) for p in plans for m in p.masks)}


def main(out: str) -> None:
    dist.init_process_group("gloo")
    results: dict[str, Any]
    rank, world = dist.get_rank(), dist.get_world_size()
    subjects = _subjects()
    fractalnet = subjects["fractalnet"]
    results = {
        "shard": _case(fractalnet, rank, world),
        "shard+checkpoint": _case(fractalnet, rank, world, checkpoint=True),
        "shard+checkpoint+compile": _case(fractalnet, rank, world, checkpoint=True,
                                          compile="eager"),
        "columns": _case(Subject(fractalnet.model, fractalnet.inputs, 10,
                                 Regions(rule="unit")),
                         rank, world),  # units in columns: one a draw drops is not called
        "hyper_wrn": _case(subjects["hyper_wrn"], rank, world, checkpoint=True),
        "hmrnn": _case(subjects["hmrnn"], rank, world, checkpoint=True),
        "ddp_sample": _ddp_case(fractalnet, rank, world),
    }
    plan = str(parallelize(fractalnet.model.to_torch(seed=0), checkpoint=True).ssnc_plan)
    from torch.distributed.device_mesh import init_device_mesh

    try:
        parallelize(fractalnet.model.to_torch(seed=0), init_device_mesh("cpu", (1, world)))
    except ssnc.SsnError as exc:
        results["two_d_mesh"] = exc.diagnostics[0].message
    finish(results, out, plan=plan)

if __name__ == "__main__":
    main(sys.argv[1])
