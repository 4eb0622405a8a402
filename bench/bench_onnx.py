"""ssnc's ONNX backend against torch.onnx.export (dynamo) of the same torch module with the
same weights: ONNX Runtime latency of the two models, and compile time of
`ssnc compile --to onnx` against the export. Writes the ratios to BENCHMARKS.md.

    python bench/bench_onnx.py [--reps 20] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, paired, report

import ssnc


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    # two sessions timed back to back: spinning worker threads of one would steal the cores
    # of the other, so neither spins
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


NARROW = [16, 32, 32, 64, 64]
"""Widths for the compile-time rows by depth: at full width, C = 7's weights alone would be
gigabytes, and compile time follows the structure, not the widths."""


def compile_pair(spec: Path, c: int, work: Path, reps: int) -> dict[str, float]:
    """`ssnc compile --to onnx` (the whole command) against `torch.onnx.export` (dynamo) of
    the same model at depth ``c``, narrow widths."""
    sets = ["classes=10", f"C={c}", f"widths={NARROW}".replace(" ", "")]
    ours, theirs = work / f"ssnc{c}.onnx", work / f"dynamo{c}.onnx"
    net = ssnc.load(spec).model(classes=10, C=c, widths=NARROW).to_torch(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)

    def compile_ssnc() -> None:
        subprocess.run([str(Path(sys.executable).with_name("ssnc")), "compile", str(spec),
                        "--to", "onnx", "-o", str(ours),
                        *[a for s in sets for a in ("--set", s)]], check=True,
                       capture_output=True)

    def export_dynamo() -> None:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(net, (x,), str(theirs), dynamo=True, external_data=False,
                          dynamic_shapes=({0: batch},), input_names=["input"])
    return paired(compile_ssnc, export_dynamo, reps=reps, warmup=0)


def main() -> None:
    args = arguments(__doc__, reps=20)
    spec = ROOT / "specs" / "fractalnet.ssn"
    sets = ["classes=10"] + (["widths=[8,16,16,32,32]"] if args.quick else [])
    params = {"classes": 10, **({"widths": [8, 16, 16, 32, 32]} if args.quick else {})}
    model = ssnc.load(spec).model(**params)
    work = Path(tempfile.mkdtemp())
    ours, theirs = work / "ssnc.onnx", work / "dynamo.onnx"

    def compile_ssnc() -> None:  # the whole CLI, as a user runs it (process start included)
        subprocess.run([str(Path(sys.executable).with_name("ssnc")), "compile", str(spec),
                        "--to", "onnx", "-o", str(ours), *[a for s in sets for a in ("--set", s)]],
                       check=True, capture_output=True)

    net = model.to_torch(seed=0).eval()
    x = torch.randn(2, 3, 32, 32)

    def export_dynamo() -> None:  # only the export call, torch already imported and built
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(net, (x,), str(theirs), dynamo=True, external_data=False,
                          dynamic_shapes=({0: batch},), input_names=["input"])

    compile_times = paired(compile_ssnc, export_dynamo, reps=3 if not args.quick else 1)

    rows = []
    for batch in (1, 16):
        inp = {"input": np.random.default_rng(0).standard_normal(
            (batch, 3, 32, 32)).astype(np.float32)}
        a, b = session(ours), session(theirs)
        name_b = b.get_inputs()[0].name
        got_a = a.run(None, inp)[0]
        got_b = b.run(None, {name_b: inp["input"]})[0]
        np.testing.assert_allclose(got_a, got_b, rtol=1e-4, atol=1e-4 * np.abs(got_b).max())
        rows.append((f"ONNX Runtime latency, batch {batch}",
                     paired(lambda a=a, inp=inp: a.run(None, inp),
                            lambda b=b, inp=inp, n=name_b: b.run(None, {n: inp["input"]}),
                            args.reps, warmup=3)))
    rows.append(("compile time (ssnc compile --to onnx, whole command, vs the export call)",
                 compile_times))
    for c, reps in ((3, 2), (4, 1)) if args.quick else ((3, 3), (5, 2), (7, 1)):
        rows.append((f"compile time at C = {c}, widths {NARROW}",
                     compile_pair(spec, c, work, reps)))
    lines = [
        "## ONNX backend: ssnc vs torch.onnx.export (dynamo)",
        "",
        f"`python bench/bench_onnx.py{' --quick' if args.quick else ''}` — FractalNet "
        f"(PyTorch-port layout, C=3, {'narrow widths' if args.quick else 'full widths'}, "
        f"10 classes; ssnc's default flat form), same weights on both sides (outputs checked "
        f"equal first); {machine()}; "
        f"onnxruntime {ort.__version__} (2 intra-op threads, no spinning, for both); "
        f"paired repetitions ({args.reps} for latency, "
        f"{3 if not args.quick else 1} for compile time). ssnc's compile time is the whole "
        "`ssnc compile` process (start-up, parsing, elaboration, writing); the export's is the "
        "`torch.onnx.export(dynamo=True)` call alone, with torch imported and the module built.",
    ]
    report("onnx" + ("-quick" if args.quick else ""), lines,
           ("ssnc", "torch.onnx.export dynamo", "ssnc/dynamo"), rows, args.out, digits=4)


if __name__ == "__main__":
    main()
