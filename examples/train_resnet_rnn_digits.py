"""Train specs/resnet_rnn.ssn (a ResNet whose blocks within a stage share their weights, as
an unrolled RNN) and the same network untied, on scikit-learn's bundled digits (no
download), with train_digits.py's split and loop; print both accuracies and sizes.

    python examples/train_resnet_rnn_digits.py [--epochs 15] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from train_digits import accuracy, arguments, data, fit

import ssnc

SPEC = Path(__file__).resolve().parent.parent / "specs" / "resnet_rnn.ssn"


def run(tied: bool, epochs: int, seed: int) -> dict[str, float | int]:
    """One variant on 8 x 8 digits (two stages of three blocks: 16 and 32 channels)."""
    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = data()
    model = ssnc.load(SPEC).model(tied=tied, widths=(16, 32), in_channels=1, size=8)
    net = model.to_torch(seed=seed)
    seconds = fit(net, x_tr, y_tr, epochs)
    return {"test_accuracy": accuracy(net, x_te, y_te), "parameters": model.total_params,
            "train_seconds": round(seconds, 1)}


def main() -> None:
    args = arguments(__doc__, 15)
    result = {"tied": run(True, args.epochs, args.seed),
              "untied": run(False, args.epochs, args.seed), "epochs": args.epochs}
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("tied", "untied"):
            r = result[name]
            print(f"{name:7}: {r['test_accuracy']:.2%} test accuracy, "  # type: ignore[index]
                  f"{r['parameters']:,} parameters, {r['train_seconds']} s")  # type: ignore[index]
    assert result["tied"]["test_accuracy"] >= 0.9, result  # type: ignore[index]


if __name__ == "__main__":
    main()
