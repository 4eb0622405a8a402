"""The compiled HM-RNN (specs/hmrnn_charlm.ssn) against a hand-written PyTorch HM-LSTM of the
same size with the same weights (bench/handwritten_hmlstm.py): a training step at sequence
length 100; ONNX Runtime against torch eager at T = 100; and `ssnc compile --to onnx`
against torch.onnx.export (dynamo) of the compiled module. Writes the ratios to
BENCHMARKS.md.

    python bench/bench_rnn.py [--reps 5] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F  # noqa: N812

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, paired, report, sgd_step
from handwritten_hmlstm import CharLM

import ssnc

QUICK_SPEC = """
model hmrnn_charlm(vocab = 50) : tokens[vocab] = embedding(vocab, 16)
    >> hmrnn(layers = 3, dim = 16, out_dim = 16, layer_norm = true) >> linear(vocab)
"""


def main() -> None:
    args = arguments(__doc__, reps=5)
    work = Path(tempfile.mkdtemp())
    spec = ROOT / "specs" / "hmrnn_charlm.ssn"
    if args.quick:
        spec = work / "hmrnn_charlm.ssn"
        spec.write_text(QUICK_SPEC)
    vocab, batch, steps = 50, (4 if args.quick else 16), (20 if args.quick else 100)
    model = ssnc.load(spec).model(vocab=vocab)
    emb = model.ir["embedding"].shape[-1]  # type: ignore[index]
    dim = model.ir.tensors()["hmrnn.scan.hm_cell.hm_layer.linear2.bias"].shape[0] // 4
    out_dim = model.ir.tensors()["linear.weight"].shape[1]
    net = model.to_torch(seed=0)
    ln = any("layernorm" in k for k in model.ir.tensors())
    hand = CharLM(vocab, int(emb), dim, 3, out_dim, ln=ln)
    hand.load_from(net.state_dict())
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, steps), generator=gen)
    y = torch.randint(0, vocab, (batch, steps), generator=gen)
    net.eval()
    hand.eval()
    with torch.no_grad():  # the same arithmetic in the same order: equal on all T steps
        gap = float((net(x) - hand(x)).abs().max())
    assert gap < 1e-4, f"the two models differ by {gap}"

    def loss(module: torch.nn.Module) -> torch.Tensor:
        return F.cross_entropy(module(x).reshape(-1, vocab), y.reshape(-1))

    rows = [(f"training step (forward, backward, SGD), batch {batch}, T = {steps}",
             paired(sgd_step(net, loss), sgd_step(hand, loss), args.reps))]

    proto = model.to_onnx(seed=0)
    ours = work / "ssnc.onnx"
    onnx.save(proto, str(ours))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(ours), opts, providers=["CPUExecutionProvider"])
    fresh = model.to_torch(seed=0).eval()
    feed = {"input": x.numpy()}
    with torch.no_grad():  # checked on 10 steps: over many, a boundary a rounding away from
        # 0.5 may flip between runtimes and send the two down different paths
        np.testing.assert_allclose(sess.run(None, {"input": x[:, :10].numpy()})[0],
                                   fresh(x[:, :10]).numpy(), rtol=1e-3, atol=1e-4)

    def eager() -> None:
        with torch.no_grad():
            fresh(x)

    rows.append((f"inference, ONNX Runtime vs torch eager, batch {batch}, T = {steps}",
                 paired(lambda: sess.run(None, feed), eager, args.reps)))

    theirs = work / "dynamo.onnx"
    export_steps = min(steps, 5 if args.quick else 20)  # dynamo's export time grows with T
    short = x[:, :export_steps]

    def compile_ssnc() -> None:  # the whole CLI, as a user runs it (process start included)
        subprocess.run([str(Path(sys.executable).with_name("ssnc")), "compile", str(spec),
                        "--to", "onnx", "-o", str(work / "cli.onnx"), "--set",
                        f"vocab={vocab}"], check=True, capture_output=True)

    def export_dynamo() -> None:  # only the export call, torch imported and the module built
        torch.onnx.export(fresh, (short,), str(theirs), dynamo=True, external_data=False,
                          input_names=["input"])

    rows.append((f"compile to ONNX: ssnc compile (whole command) vs torch.onnx.export "
                 f"(dynamo, T = {export_steps})", paired(compile_ssnc, export_dynamo, 1)))
    exported = onnx.load(str(theirs))
    loops = sum(n.op_type in ("Loop", "Scan") for n in exported.graph.node)
    other = x[:, :export_steps + 3]  # does dynamo's model take another length?
    try:
        session = ort.InferenceSession(str(theirs), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": other.numpy()})[0]
        with torch.no_grad():
            want = fresh(other)
        other_t = (f"runs at T = {export_steps + 3} (max |Δ| vs eager "
                   f"{float(abs(got - want.numpy()).max()):.1e})")
    except Exception as exc:  # the finding is that it does not run
        other_t = f"refuses T = {export_steps + 3} ({type(exc).__name__})"
    ours_nodes = len(proto.graph.node) + sum(len(f.node) for f in proto.functions)
    report("rnn-quick" if args.quick else "rnn", [
        "## Recurrence: the compiled HM-RNN vs a hand-written PyTorch HM-LSTM",
        "",
        f"`python bench/bench_rnn.py` — `specs/hmrnn_charlm.ssn` (vocabulary {vocab}; "
        f"{model.total_params:,} parameters) and `bench/handwritten_hmlstm.py` with the same "
        f"weights (outputs checked equal first); {machine()}; {args.reps} paired repetitions "
        "(1 for compile time). A time ratio below 1 means the compiled side is faster: its "
        "training throughput in tokens/s is the hand-written one's divided by the ratio.",
        "",
        f"ssnc's ONNX keeps the loop (one `Scan`; {ours_nodes} nodes whatever T). "
        f"torch.onnx.export (dynamo) of the same module at T = {export_steps} has "
        f"{len(exported.graph.node)} nodes and {loops} `Loop`/`Scan`: "
        + ("it keeps the loop (under torch.export the generated module's loop is torch's "
           "scan primitive)" if loops else "it unrolls the loop")
        + f", and its model {other_t}.",
    ], ("compiled", "baseline", "compiled/baseline"), rows, args.out)


if __name__ == "__main__":
    main()
