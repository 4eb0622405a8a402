"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2` (gloo, CPU): a
narrow FractalNet and a narrow ViT cut into 2 pipeline stages by
`ssnc.distributed.pipeline`, one training step of 4 micro-batches under 1F1B and GPipe.
Each rank compares its stage's loss and gradients with one process that runs the same
micro-batches through the whole model. Rank 0 writes the results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from rank_results import finish  # (tests/, this script's folder)

import ssnc
from ssnc.distributed import pipeline

SPECS = Path(__file__).resolve().parent.parent / "specs"
MICRO, BATCH = 4, 8


def _models() -> dict[str, Any]:
    return {
        "fractalnet": ssnc.load(SPECS / "fractalnet.ssn").model(
            C=2, classes=10, widths=[4, 4, 8, 8, 8], drops=[0.0] * 5),  # (dropout: per stage)
        "vit": ssnc.load(SPECS / "vit.ssn").model(classes=10, size=16, patch=4, dim=16,
                                                  depth=4, heads=2, mlp=32),
    }


def _case(model: Any, schedule: str, rank: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(7)
    shape = [BATCH if d == "N" else int(d) for d in model.ir[model.ir.inputs[0]].shape]
    x, y = torch.randn(shape, generator=gen), torch.randint(0, 10, (BATCH,), generator=gen)
    net = model.to_torch(seed=0, drop_mode="off")
    part = pipeline(net, 2, schedule=schedule, microbatches=MICRO, loss_fn=F.cross_entropy)
    part.module.train()
    losses: list[torch.Tensor] = []
    if rank == 0:
        part.schedule.step(x)
    else:
        part.schedule.step(target=y, losses=losses)
    reference = model.to_torch(seed=0, drop_mode="off").train()
    want_losses = []
    for xm, ym in zip(x.chunk(MICRO), y.chunk(MICRO), strict=True):
        loss = F.cross_entropy(reference(xm), ym)
        (loss / MICRO).backward()  # the schedule averages the micro-batches' gradients
        want_losses.append(float(loss.detach()))
    want = dict(reference.named_parameters())
    got = dict(part.module.named_parameters())
    return {"stage_params": len(got),
            "grad_difference": max(float((p.grad - want[k].grad).abs().max())
                                   for k, p in got.items()),
            "loss_difference": max((abs(float(a) - b) for a, b in zip(
                losses, want_losses, strict=True)), default=0.0) if losses else None,
            "losses": len(losses), "plan": str(part.plan)}


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    models = _models()
    results: dict[str, Any] = {f"{name}/{schedule}": _case(model, schedule, rank)
                               for name, model in models.items()
                               for schedule in ("1f1b", "gpipe")}
    try:  # three stages on two ranks
        pipeline(models["vit"].to_torch(drop_mode="off"), 3)
    except ssnc.SsnError as exc:
        results["wrong_size"] = str(exc.diagnostics[0].message)
    finish(results, out)

if __name__ == "__main__":
    main(sys.argv[1])
