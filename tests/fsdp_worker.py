"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2` (gloo, CPU): a narrow
FractalNet with drop-path, parallelized by `ssnc.distributed.parallelize` (FSDP2 per fractal,
then checkpointed too, then compiled too), trained 3 SGD steps with each rank on its own
data. Each rank also trains the reference, one unsharded process: every rank's batch run
separately with the same drop-path draws, the gradients averaged (BatchNorm statistics are
per rank, as under FSDP). Rank 0 writes the largest parameter difference per case."""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812

import ssnc
from ssnc.distributed import parallelize

SPEC = """
def unit(w) = conv(w, 3, bias = false) >> bn >> relu
model net : tensor[3, 8, 8] =
    fractal(3, unit(8), drop_path = 0.3) >> maxpool(2) >> fractal(2, unit(16), drop_path = 0.3)
    >> gap >> linear(10)
"""
STEPS, BATCH, LR = 3, 4, 0.05


def _data(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1000 + rank)
    return [(torch.randn(BATCH, 3, 8, 8, generator=gen),
             torch.randint(0, 10, (BATCH,), generator=gen)) for _ in range(STEPS)]


def _recording(net: Any, plans: list[Any]) -> None:
    draw = net.ssnc_drop_path.draw

    def recorded(n: int, device: object = "cpu") -> Any:
        plan = draw(n, device)
        plans.append(plan)
        return plan
    net.ssnc_drop_path.draw = recorded


def _reference(model: Any, plans: list[Any], world: int) -> dict[str, torch.Tensor]:
    """One process: each step, every rank's batch with that step's draw, gradients averaged."""
    net = model.to_torch(seed=0)
    replay = iter(plans)
    step_plan: list[Any] = []
    net.ssnc_drop_path.draw = lambda n, device="cpu": step_plan[0]
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    data = [_data(r) for r in range(world)]
    net.train()
    for step in range(STEPS):
        step_plan[:] = [next(replay)]
        opt.zero_grad()
        for r in range(world):
            x, y = data[r][step]
            (F.cross_entropy(net(x), y) / world).backward()
        opt.step()
    return {k: v.detach() for k, v in net.named_parameters()}


def _case(model: Any, rank: int, world: int, **options: Any) -> dict[str, Any]:
    """The largest difference to the reference after training, and what shows the case
    is real: parameters moved, columns were dropped, parameters are sharded."""
    base = model.to_torch(seed=0, drop_seed=1)  # (seed 0's first draws are all global)
    initial = {k: v.detach().clone() for k, v in base.named_parameters()}
    net = parallelize(base, regions=ssnc.distributed.Regions(depth=1), **options)
    plans: list[Any] = []
    _recording(net, plans)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    net.train()
    for x, y in _data(rank):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    got = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach()
           for k, v in net.named_parameters()}
    want = _reference(model, plans, world)
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:4]
    return {"max_difference": max(float((got[k] - want[k]).abs().max()) for k in want),
            "moved": sum(not torch.equal(got[k], initial[k]) for k in want) / len(want),
            "dropped": sum(not all(flags) for p in plans for flags in p.keep),
            "sharded": all(v.to_local().numel() < v.full_tensor().numel()
                           for k, v in net.named_parameters() if v.numel() >= world),
            "units": [c.path for c in net.ssnc_plan.choices]}


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = ssnc.loads(SPEC).model()
    results = {
        "shard": _case(model, rank, world),
        "shard+checkpoint": _case(model, rank, world, checkpoint=True),
        "shard+checkpoint+compile": _case(model, rank, world, checkpoint=True,
                                          compile="eager"),
    }
    plan = str(parallelize(model.to_torch(seed=0), checkpoint=True).ssnc_plan)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, results)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"ranks": gathered, "plan": plan}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
