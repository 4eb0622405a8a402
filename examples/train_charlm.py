"""Train a small HM-RNN character-level language model (the standard library's `hmrnn`) on
text that ships with Python itself (the source of the standard library's `textwrap` and
`string` modules), then report the held-out loss against the text's unigram entropy and how
often each layer's boundary detector fires.

    python examples/train_charlm.py [--steps 300] [--json]

The model has two named outputs: at each step, the logits over the characters and the
boundaries z^1, z^2 (0 or 1) of `hmrnn(..., boundaries = true)`. The boundary detectors'
slope is annealed as in the paper, a = min(5, 1 + 0.04 * epoch), through `net.set_slope`.
"""

from __future__ import annotations

import argparse
import json
import math
import string
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

import ssnc

SPEC = """
model charlm(vocab, dim = 64, layers = 3) : tokens[vocab] =
    embedding(vocab, 32)
    >> hmrnn(layers = layers, dim = dim, out_dim = dim, boundaries = true)
    >> ((h) => outputs(logits = linear(vocab)(slice(-1, 0, dim)(h)),
                       boundaries = slice(-1, dim)(h)))
"""


def corpus() -> str:
    """Python's own source for two standard-library modules: no download."""
    return "".join(Path(m.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
                   for m in (textwrap, string))


def batches(ids: torch.Tensor, steps: int, batch: int,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random windows of ``steps + 1`` characters: inputs and next characters."""
    starts = torch.randint(0, len(ids) - steps - 1, (batch,), generator=gen)
    window = torch.stack([ids[s:s + steps + 1] for s in starts.tolist()])
    return window[:, :-1], window[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 2))

    text = corpus()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    cut = int(len(ids) * 0.9)
    train, held = ids[:cut], ids[cut:]
    counts = torch.bincount(train, minlength=len(chars)).float()
    p = counts / counts.sum()
    unigram = float(-(p[p > 0] * p[p > 0].log2()).sum())  # bits per character

    model = ssnc.loads(SPEC, "charlm.ssn").model(vocab=len(chars))
    net = model.to_torch(seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    vocab = len(chars)
    start = time.perf_counter()
    net.train()
    per_epoch = max(1, len(train) // (48 * 32))  # steps that read the training text once
    for i in range(args.steps):
        net.set_slope(ssnc.anneal_slope(i / per_epoch))  # a buffer: no recompiling
        x, y = batches(train, 48, 32, gen)
        logits = net(x).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start

    net.eval()
    with torch.no_grad():
        x, y = held[:-1][None, :2000], held[1:][None, :2000]
        out = net(x)
        held_bits = float(F.cross_entropy(out.logits[0], y[0])) / math.log(2)
        rates = out.boundaries[0].mean(0).tolist()
    result = {"unigram_bits": round(unigram, 3), "held_out_bits": round(held_bits, 3),
              "gain_bits": round(unigram - held_bits, 3),
              "boundary_rate": {f"z{i + 1}": round(r, 3) for i, r in enumerate(rates)},
              "steps": args.steps, "train_seconds": round(seconds, 1),
              "final_slope": round(ssnc.anneal_slope((args.steps - 1) / per_epoch), 3),
              "parameters": model.total_params, "characters": len(text)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(text):,} characters, {vocab} distinct; {model.total_params:,} parameters; "
              f"{args.steps} steps in {seconds:.0f} s")
        print(f"held-out {held_bits:.3f} bits/char vs unigram entropy {unigram:.3f} "
              f"(gain {unigram - held_bits:.3f})")
        for name, rate in result["boundary_rate"].items():  # type: ignore[union-attr]
            print(f"boundary rate {name}: {rate:.3f} (1 = the layer above updates every step)")
    assert unigram - held_bits >= 0.5, f"held-out loss fell only {unigram - held_bits:.3f} bits"


if __name__ == "__main__":
    main()
