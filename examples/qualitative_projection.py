"""Qualitative projection (Simpson 2015): a network trained on the digits 0-4 projects the
digits 5-9, which it never saw, onto its five outputs, the qualities "0-ness" ... "4-ness",
and a linear probe tells the new digits apart from those five numbers alone.

The qualities and the network's features are read from the trained model compiled with
output taps (`Model.with_outputs`, `ssnc compile --tap`), with the trained weights loaded,
in PyTorch and in ONNX Runtime; the two must agree.

    python examples/qualitative_projection.py [--epochs 20] [--json]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.linear_model import LogisticRegression
from train_digits import accuracy, arguments, data, fit

import ssnc

SPEC = Path(__file__).resolve().parent.parent / "specs" / "fractalnet_digits.ssn"
KNOWN = 5  # the classes 0 .. KNOWN - 1 train the network; the others are projected


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray
          ) -> float:
    """Test accuracy of a linear classifier (logistic regression) on standardised inputs."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit((train - mean) / std, y_train)
    return float(clf.score((test - mean) / std, y_test))


def run(epochs: int, seed: int) -> dict[str, object]:
    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = data()
    known_tr, known_te = y_tr < KNOWN, y_te < KNOWN
    model = ssnc.load(SPEC).model(classes=KNOWN)
    net = model.to_torch(seed=seed)
    fit(net, x_tr[known_tr], y_tr[known_tr], epochs)
    known_accuracy = accuracy(net, x_te[known_te], y_te[known_te])

    # the trained weights, loaded into the model with a tap on its features
    tapped = model.with_outputs(features="flatten")
    new_tr, new_te = x_tr[~known_tr], x_te[~known_te]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "digits_0_4.pt"
        torch.save(net.state_dict(), weights)
        projector = tapped.to_torch(weights=weights).eval()
        session = ort.InferenceSession(tapped.to_onnx(weights=weights).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
    with torch.no_grad():
        out_tr, out_te = projector(new_tr), projector(new_te)
    onnx_logits, onnx_features = session.run(["logits", "features"],
                                             {"input": new_te.numpy()})
    onnx_diff = max(float(np.abs(onnx_logits - out_te.logits.numpy()).max()),
                    float(np.abs(onnx_features - out_te.features.numpy()).max()))
    assert onnx_diff < 1e-4, f"ONNX Runtime and PyTorch disagree by {onnx_diff}"

    labels_tr, labels_te = y_tr[~known_tr].numpy(), y_te[~known_te].numpy()
    qualities_tr, qualities_te = out_tr.logits.numpy(), out_te.logits.numpy()
    chance = 1.0 / (10 - KNOWN)
    result: dict[str, object] = {
        "known_accuracy": known_accuracy,
        "probe_accuracy": probe(qualities_tr, labels_tr, qualities_te, labels_te),
        "chance": chance,
        "feature_probe_accuracy": probe(out_tr.features.numpy(), labels_tr,
                                        out_te.features.numpy(), labels_te),
        "features": int(out_te.features.shape[1]),
        "qualities": {str(d): [round(float(q), 2)
                               for q in qualities_te[labels_te == d].mean(0)]
                      for d in range(KNOWN, 10)},
        "onnx_max_diff": onnx_diff, "epochs": epochs}
    assert result["probe_accuracy"] >= 2 * chance, result  # type: ignore[operator]
    return result


def main() -> None:
    args = arguments(__doc__, 20)
    result = run(args.epochs, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    print(f"trained on digits 0-{KNOWN - 1}: {result['known_accuracy']:.2%} test accuracy")
    print(f"digits {KNOWN}-9 projected onto the qualities "
          + ", ".join(f"{q}-ness" for q in range(KNOWN)) + " (mean outputs):")
    for digit, mean in result["qualities"].items():  # type: ignore[attr-defined]
        print(f"  {digit}: " + "  ".join(f"{q:+6.2f}" for q in mean))
    print(f"a linear probe on the {KNOWN} qualities: {result['probe_accuracy']:.2%} "
          f"(chance {result['chance']:.0%}); on the {result['features']} tapped features: "
          f"{result['feature_probe_accuracy']:.2%}")


if __name__ == "__main__":
    main()
