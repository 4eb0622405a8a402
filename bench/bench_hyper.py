"""The compiled Hyper-WRN (specs/hyper_wrn.ssn) against a hand-written PyTorch Hyper-WRN of
the same size with the same weights (bench/handwritten_hyper_wrn.py): a training step
(forward, backward, SGD) of WRN-40-2 with generated kernels. Writes the ratio to
BENCHMARKS.md.

    python bench/bench_hyper.py [--reps 5] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, paired, report, sgd_step
from handwritten_hyper_wrn import HyperWRN

import ssnc


def main() -> None:
    args = arguments(__doc__, reps=5)
    depth, k, batch = (10, 1, 8) if args.quick else (40, 2, 32)
    model = ssnc.load(ROOT / "specs" / "hyper_wrn.ssn").model(depth=depth, k=k)
    net = model.to_torch(seed=0)
    hand = HyperWRN(depth, k)
    hand.load_from(net.state_dict())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    net.eval()
    hand.eval()
    with torch.no_grad():
        gap = float((net(x) - hand(x)).abs().max())
    assert gap < 1e-4, f"the two models differ by {gap}"

    def loss(module: torch.nn.Module) -> torch.Tensor:
        return F.cross_entropy(module(x), y)

    rows = [(f"training step (forward, backward, SGD), Hyper-WRN-{depth}-{k}, batch {batch}",
             paired(sgd_step(net, loss, momentum=0.9), sgd_step(hand, loss, momentum=0.9),
                    args.reps))]
    report("hyper-quick" if args.quick else "hyper", [
        "## HyperNetworks: the compiled Hyper-WRN vs a hand-written PyTorch Hyper-WRN",
        "",
        f"`python bench/bench_hyper.py` — `specs/hyper_wrn.ssn` (depth {depth}, k = {k}; "
        f"{model.total_params:,} parameters, {len(model.ir.generated())} generated kernels) "
        "and `bench/handwritten_hyper_wrn.py` with the same weights (outputs checked equal "
        f"first); {machine()}; {args.reps} paired repetitions. A time ratio below 1 means "
        "the compiled side is faster.",
    ], ("compiled", "hand-written", "compiled / hand-written"), rows, args.out)


if __name__ == "__main__":
    main()
