"""Train the FractalNet of specs/fractalnet_digits.ssn on scikit-learn's bundled digits (no
download), with drop-path, then evaluate the whole network and each column alone.

    python examples/train_digits.py [--epochs 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ssnc

SPEC = Path(__file__).resolve().parent.parent / "specs" / "fractalnet_digits.ssn"


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits as [N, 1, 8, 8] floats in [0, 1]; a fixed stratified 80/20 split."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.2,
                                              stratify=digits.target, random_state=0)
    return (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(),
            torch.from_numpy(x_te), torch.from_numpy(y_te).long())


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def fit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """Adam at 3e-3 with a cosine schedule, batches of 64; the seconds it took."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return time.perf_counter() - start


def train(epochs: int = 30, seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = data()
    model = ssnc.load(SPEC).model()
    net = model.to_torch(seed=seed)  # drop-path: local/global mix, one draw per batch
    seconds = fit(net, x_tr, y_tr, epochs)
    columns = {}
    widths = int(model.ir.params["C"])  # type: ignore[arg-type]
    for k in range(1, widths + 1):
        column = model.to_torch(column=k)
        column.load_state_dict(net.state_dict(), strict=False)  # a column's keys are a subset
        columns[k] = accuracy(column, x_te, y_te)
    return {"test_accuracy": accuracy(net, x_te, y_te), "column_accuracy": columns,
            "deepest_column_accuracy": columns[widths], "train_seconds": round(seconds, 1),
            "parameters": model.total_params, "epochs": epochs}


def arguments(doc: str | None, epochs: int) -> argparse.Namespace:
    """The digits examples' options: --epochs, --seed, --json (one JSON line, for CI)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__, 30)
    result = train(args.epochs, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    print(f"FractalNet on digits: {result['parameters']:,} parameters, "
          f"{result['epochs']} epochs in {result['train_seconds']} s")
    print(f"  test accuracy, all columns: {result['test_accuracy']:.2%}")
    for k, acc in result["column_accuracy"].items():  # type: ignore[attr-defined]
        print(f"  column {k} alone: {acc:.2%}")


if __name__ == "__main__":
    main()
