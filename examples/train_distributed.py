"""Train specs/fractalnet_digits.ssn on scikit-learn's bundled digits (no download) on
several processes, with `ssnc.distributed.parallelize`: FSDP2 on the regions the spec
chooses, optionally checkpointed and compiled per region. Each rank trains on its share of
every batch; drop-path draws the same columns on every rank.

    torchrun --nproc_per_node 2 examples/train_distributed.py [--epochs 10]
        [--rule unit] [--checkpoint] [--compile eager] [--json]

`--rule NAME` shards every instance of that rule (default: the rule calls in the model's
body); the plan is printed by rank 0. On GPUs use the nccl backend and a CUDA mesh
(docs/distributed.md); here it is gloo on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from train_digits import SPEC, data

import ssnc
from ssnc.distributed import Regions, parallelize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rule", default=None, help="shard every instance of this rule")
    parser.add_argument("--checkpoint", action="store_true", help="checkpoint each region")
    parser.add_argument("--compile", default=None, help="torch.compile each region (backend)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te = data()
    net = ssnc.load(SPEC).model().to_torch(seed=0)  # the same weights and draws on every rank
    net = parallelize(net, regions=Regions(rule=args.rule) if args.rule else Regions(),
                      checkpoint=args.checkpoint, compile=args.compile or False,
                      show=rank == 0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)  # as examples/train_digits.py
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    start = time.perf_counter()
    order = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        net.train()
        for batch in torch.randperm(len(x_tr), generator=order).split(64):
            mine = batch[rank::world]  # this rank's share of the batch
            opt.zero_grad()
            F.cross_entropy(net(x_tr[mine]), y_tr[mine]).backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        correct = (net(x_te).argmax(1) == y_te).float().mean().item()
    if rank == 0:
        result = {"ranks": world, "test_accuracy": round(correct, 4),
                  "train_seconds": round(time.perf_counter() - start, 1),
                  "units": [c.path for c in net.ssnc_plan.choices]}
        print(json.dumps(result) if args.json else
              f"{world} ranks: test accuracy {correct:.3f} in {result['train_seconds']} s")
    dist.barrier()
    dist.destroy_process_group()
    # torch 2.13's gloo may abort a process in interpreter shutdown under load, after
    # everything is done ("terminate called without an active exception"): skip it
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
