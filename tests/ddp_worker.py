"""Run by tests/test_training.py under `torchrun --nproc_per_node=2`: a few DDP training steps
of a compiled FractalNet on the gloo backend, each rank on different data. Rank 0 writes
whether the drop-path draws and the final parameters agree across ranks."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from torch.nn.parallel import DistributedDataParallel

import ssnc

SPEC = """
def unit(w) = conv(w, 3, bias = false) >> bn >> relu
model net : tensor[3, 8, 8] =
    fractal(3, unit(8), drop_path = 0.3) >> maxpool(2) >> flatten >> linear(10)
"""


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    net = ssnc.loads(SPEC).model().to_torch(seed=0)  # same weights and draw seed on all ranks
    initial = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    draws: list[object] = []
    dp = net.ssnc_drop_path
    draw = dp.draw

    def recording_draw(n: int, device: object = "cpu"):  # type: ignore[no-untyped-def]
        plan = draw(n, device)
        draws.append(plan.keep)
        return plan

    dp.draw = recording_draw  # type: ignore[method-assign]
    model = DistributedDataParallel(net, find_unused_parameters=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = torch.Generator().manual_seed(1000 + rank)  # each rank sees other data
    for _ in range(6):
        x = torch.randn(8, 3, 8, 8, generator=data)
        y = torch.randint(0, 10, (8,), generator=data)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    params = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(params, flat)
    all_draws: list[object] = [None, None]
    dist.all_gather_object(all_draws, draws)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"params_equal": bool(torch.equal(params[0], params[1])),
                       "draws_equal": all_draws[0] == all_draws[1],
                       "draws": len(draws),
                       "changed": not bool(torch.equal(initial, flat))}, f)
    dist.barrier()
    dist.destroy_process_group()
    # Everything is written. Under CPU load, torch 2.13's gloo occasionally aborts a process
    # during interpreter shutdown ("terminate called without an active exception"), after
    # destroy_process_group returned; skip that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
