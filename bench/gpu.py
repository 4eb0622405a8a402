"""The GPU measurements, in one script for a machine borrowed for minutes: forward latency of
torch eager and torch.compile (fp32, and bf16 and fp16 autocast) at batch 1 and 64 for
`fractalnet`, `nin_cifar10` and `hmrnn_charlm`, each checked against the fp32 result; the
eval forward of `ssnc.optimize_for_inference` (FractalNet C=3, fp32) against the hand-written
model; the training step of the compiled FractalNet C=3 (bf16 autocast, batch 128) against the
hand-written one in each drop-path mode, and with every stage checkpointed against without
(peak memory and time, one rank); ONNX Runtime CUDA and TensorRT rows where they are
importable, with the ratios the goals name (ORT CUDA fp16 against torch eager fp16, TensorRT
against ORT CUDA). Every row is appended to `--out` as soon as it is measured, under the GPU's name,
so a run cut short still reports.

    python bench/gpu.py --out FILE              # on the GPU machine (< 4 minutes)
    python bench/gpu.py --dry-run --out FILE    # the same steps on the CPU, tiny

The GPU run's file is committed in the bench/results folder.

It uses the machine's own torch and needs no install: the repository is put on the path as
the package `ssnc`. torch.compile rows stop being measured once the run passes
`--budget` seconds (default 200), and say so. `--dry-run` compiles with the `eager` backend
(graph capture only, no kernel generation) to keep CI short."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _import_ssnc() -> None:
    """Make `import ssnc` work from a checkout that is not installed."""
    try:
        import ssnc  # noqa: F401
    except ImportError:
        link_dir = Path(tempfile.mkdtemp(prefix="ssnc-path-"))
        (link_dir / "ssnc").symlink_to(ROOT, target_is_directory=True)
        sys.path.insert(0, str(link_dir))


_import_ssnc()
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812
from bench_torch import copy_weights, per_block  # noqa: E402
from common import kept_for_backward  # noqa: E402
from handwritten_fractalnet import FractalNet  # noqa: E402

import ssnc  # noqa: E402
from ssnc.backends.torch import example_input  # noqa: E402


class Table:
    """The results file, written again after every row."""

    def __init__(self, path: Path, header: list[str]):
        self.path, self.lines = path, [*header, "", "| measurement | value | note |",
                                       "|---|---:|---|"]
        self.seconds: dict[str, float] = {}
        """The latencies measured so far, by row label (for the comparison rows)."""
        self.flush()

    def row(self, label: str, value: str, note: str = "", seconds: float | None = None
            ) -> None:
        if seconds is not None:
            self.seconds[label] = seconds
        self.lines.append(f"| {label} | {value} | {note} |")
        print(self.lines[-1], flush=True)
        self.flush()

    def flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def latency(fn: Callable[[], object], device: str, reps: int) -> float:
    """Median seconds of ``fn`` after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def strict_fp32() -> None:
    """fp32 rows compute in float32: cuDNN's convolutions default to TF32 on Ampere and later
    GPUs (`torch.backends.cudnn.conv.fp32_precision == "tf32"`), which would make "fp32"
    mean a 10-bit mantissa and its reference inexact."""
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"


def _models(dry: bool) -> dict[str, ssnc.Model]:
    specs = ROOT / "specs"
    if dry:
        return {"fractalnet": ssnc.load(specs / "fractalnet.ssn").model(
                    C=2, classes=10, widths=[4, 4, 8, 8, 8]),
                "nin_cifar10": ssnc.loads(
                    "def stage(w, k, mlp) = mlpconv(w, k, mlp) >> maxpool(3, 2, ceil = true)\n"
                    "model nin(classes = 10) : tensor[3, 32, 32] = nin(stage(8, 5, [8, 8]) >> "
                    "stage(8, 5, [8, 8]) >> mlpconv(8, 3, [8]), classes)\n", "nin.ssn").model(),
                "hmrnn_charlm": ssnc.loads(
                    "model lm(vocab = 50) : tokens[vocab] = embedding(vocab, 8) >> "
                    "hmrnn(layers = 2, dim = 8, out_dim = 8) >> linear(vocab)\n", "lm.ssn"
                ).model()}
    return {"fractalnet": ssnc.load(specs / "fractalnet.ssn").model(classes=10),
            "nin_cifar10": ssnc.load(specs / "nin_cifar10.ssn").model(),
            "hmrnn_charlm": ssnc.load(specs / "hmrnn_charlm.ssn").model()}


def forward_rows(table: Table, args: argparse.Namespace, device: str, start: float) -> None:
    batches = (1, 4) if args.dry_run else (1, 64)
    backend = "eager" if args.dry_run else "inductor"
    for name, model in _models(args.dry_run).items():
        net = model.to_torch(seed=0).to(device).eval()
        compiled = torch.compile(net, fullgraph=True, backend=backend)
        for batch in batches:
            x = example_input(model.ir, batch=batch, steps=16 if args.dry_run else 100).to(device)
            with torch.no_grad():
                want = net(x).float()
            scale = float(want.abs().max())
            for precision, dtype in PRECISIONS.items():
                for kind, module in (("eager", net), ("torch.compile", compiled)):
                    label = f"{name}, batch {batch}, {precision}, {kind}"
                    if kind == "torch.compile" and time.monotonic() - start > args.budget:
                        table.row(label, "skipped", f"past the {args.budget} s budget")
                        continue

                    def run(module: torch.nn.Module = module, dtype: torch.dtype | None = dtype,
                            x: torch.Tensor = x) -> torch.Tensor:
                        with torch.no_grad(), torch.autocast(
                                device, dtype=dtype or torch.float32, enabled=dtype is not None):
                            return module(x)
                    try:
                        got = run().float()
                        err = float((got - want).abs().max()) / max(scale, 1e-12)
                        seconds = latency(run, device, args.reps)
                        table.row(label, f"{seconds * 1e3:.3f} ms",
                                  f"max |Δ| vs fp32 eager: {err:.1e} of the largest logit",
                                  seconds)
                    except Exception as exc:  # a mode this torch or device lacks: say so
                        table.row(label, "failed", f"{type(exc).__name__}: {str(exc)[:120]}")


def training_rows(table: Table, args: argparse.Namespace, device: str) -> None:
    widths = [4, 4, 8, 8, 8] if args.dry_run else [64, 128, 256, 512, 512]
    batch = 8 if args.dry_run else 128
    spec = ssnc.load(ROOT / "specs" / "fractalnet.ssn").model(classes=10, C=3, widths=widths)
    compiled = spec.to_torch(seed=0)
    baseline = FractalNet(10, 3, tuple(widths))
    copy_weights(compiled, baseline)
    compiled.to(device).train()
    baseline.to(device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opts = (torch.optim.SGD(compiled.parameters(), lr=1e-4),
            torch.optim.SGD(baseline.parameters(), lr=1e-4))
    draw = compiled.ssnc_drop_path
    for mode, ratio in (("global", 1.0), ("local", 0.0), ("50/50 mix", 0.5)):
        draw.global_ratio = ratio
        keep = draw.draw(batch).keep

        def step(which: int, keep: tuple[tuple[bool, ...], ...] = keep) -> None:
            with torch.autocast(device, dtype=torch.bfloat16):
                out = (compiled.forward_dropping(x, keep) if which == 0
                       else baseline(x, per_block(keep, 5)))
                loss = F.cross_entropy(out.float(), y)
            opts[which].zero_grad()
            loss.backward()
            opts[which].step()

        ours = latency(lambda: step(0), device, args.reps)
        theirs = latency(lambda: step(1), device, args.reps)
        table.row(f"FractalNet C=3 training step, bf16 autocast, {mode} drop-path",
                  f"{ours / theirs:.2f}",
                  f"ssnc {ours * 1e3:.2f} ms / hand-written {theirs * 1e3:.2f} ms, batch {batch}")


def inference_rows(table: Table, args: argparse.Namespace, device: str) -> None:
    """Issue 33's inference goal where it can be met: FractalNet C=3's eval forward, folded
    (`ssnc.optimize_for_inference`, and channels-last), against the hand-written eager model
    with the same weights, fp32, batch 1 and 64 (as bench_torch measures it on the CPU)."""
    widths = [4, 4, 8, 8, 8] if args.dry_run else [64, 128, 256, 512, 512]
    compiled = ssnc.load(ROOT / "specs" / "fractalnet.ssn").model(
        classes=10, C=3, widths=widths).to_torch(seed=0).eval()
    baseline = FractalNet(10, 3, tuple(widths)).eval()
    copy_weights(compiled, baseline)
    baseline.to(device)
    folds = {"optimize_for_inference": ssnc.optimize_for_inference(compiled).to(device),
             "optimize_for_inference, channels-last": ssnc.optimize_for_inference(
                 compiled, channels_last=True).to(device)}
    for batch in (1, 4) if args.dry_run else (1, 64):
        x = torch.randn(batch, 3, 32, 32, device=device)

        def run(net: torch.nn.Module, x: torch.Tensor = x) -> torch.Tensor:
            with torch.no_grad():
                return net(x)
        want = run(baseline)
        theirs = latency(lambda: run(baseline), device, args.reps)
        for kind, net in folds.items():
            err = float((run(net) - want).abs().max()) / max(float(want.abs().max()), 1e-12)
            ours = latency(lambda net=net: run(net), device, args.reps)
            table.row(f"FractalNet C=3 eval forward, batch {batch}, fp32, {kind} / hand-written",
                      f"{ours / theirs:.2f}", f"ssnc {ours * 1e3:.3f} ms / hand-written "
                      f"{theirs * 1e3:.3f} ms; max |Δ| {err:.1e} of the largest logit")


def checkpoint_rows(table: Table, args: argparse.Namespace, device: str) -> None:
    """One rank: a FractalNet C=3 training step with every stage checkpointed
    (`ssnc.distributed.parallelize(shard=False, checkpoint=True)`) against without: peak
    memory (CUDA's allocator; on the CPU, the bytes autograd keeps for backward) and time."""
    from ssnc.distributed import parallelize

    widths = [4, 4, 8, 8, 8] if args.dry_run else [64, 128, 256, 512, 512]
    batch = 8 if args.dry_run else 128
    model = ssnc.load(ROOT / "specs" / "fractalnet.ssn").model(classes=10, C=3, widths=widths)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    found = {}
    for kept in (False, True):
        net = parallelize(model.to_torch(seed=0, drop_mode="off", device=device),
                          shard=False, checkpoint=kept).train()

        def step(net: torch.nn.Module = net) -> None:
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(net(x).float(), y)
            loss.backward()

        seconds = latency(step, device, args.reps)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step()
            _sync(device)
            memory = torch.cuda.max_memory_allocated()
        else:
            memory = kept_for_backward(step)
        found[kept] = (seconds, memory)
    what = "peak memory" if device == "cuda" else "bytes kept for backward"
    (t0, m0), (t1, m1) = found[False], found[True]
    table.row(f"FractalNet C=3 training step, every stage checkpointed / not, {what}",
              f"{m1 / m0:.2f}", f"{m1 / 2**20:,.1f} MiB / {m0 / 2**20:,.1f} MiB, batch {batch}")
    table.row("FractalNet C=3 training step, every stage checkpointed / not, time",
              f"{t1 / t0:.2f}", f"{t1 * 1e3:.2f} ms / {t0 * 1e3:.2f} ms, batch {batch}")


def runtime_rows(table: Table, args: argparse.Namespace) -> None:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        table.row("ONNX Runtime CUDA, TensorRT", "not available", f"onnxruntime: {exc}")
        return
    providers = ort.get_available_providers()
    model = _models(args.dry_run)["nin_cifar10"]
    proto = model.to_onnx(precision="fp16").SerializeToString()
    x = example_input(model.ir, batch=64).numpy()
    for name, provider in (("ONNX Runtime CUDA fp16", "CUDAExecutionProvider"),
                           ("TensorRT (ORT) fp16", "TensorrtExecutionProvider")):
        if provider not in providers:
            table.row(f"nin_cifar10, batch 64, {name}", "not available",
                      f"onnxruntime {ort.__version__} has {', '.join(providers)}")
            continue
        session = ort.InferenceSession(proto, providers=[provider])
        seconds = latency(lambda s=session: s.run(None, {"input": x}), "cpu", args.reps)
        table.row(f"nin_cifar10, batch 64, {name}", f"{seconds * 1e3:.3f} ms", "", seconds)
    at = "nin_cifar10, batch 64, "
    compare(table, at + "ORT CUDA fp16 / torch eager fp16 (goal ≤ 1.0)",
            at + "ONNX Runtime CUDA fp16", at + "fp16, eager")
    compare(table, at + "TensorRT speed-up over ORT CUDA (fp16)",
            at + "ONNX Runtime CUDA fp16", at + "TensorRT (ORT) fp16")


def compare(table: Table, label: str, a: str, b: str) -> None:
    """A row with the ratio of two measured latencies ``a / b``, or why there is none."""
    missing = [k for k in (a, b) if k not in table.seconds]
    if missing:
        table.row(label, "not available", "not measured: " + "; ".join(missing))
    else:
        table.row(label, f"{table.seconds[a] / table.seconds[b]:.2f}", f"{a} / {b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the results file (Markdown)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps on the CPU with tiny sizes")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--budget", type=float, default=200.0,
                        help="seconds after which torch.compile rows are skipped")
    args = parser.parse_args()
    args.reps = args.reps or (2 if args.dry_run else 20)
    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    strict_fp32()
    if device == "cpu" and not args.dry_run:
        sys.exit("bench/gpu.py: no CUDA device here; use --dry-run for the CPU rehearsal")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run on the CPU)"
    start = time.monotonic()
    table = Table(args.out, [
        f"## GPU: {gpu}", "",
        f"`python bench/gpu.py{' --dry-run' if args.dry_run else ''}`: torch {torch.__version__}, "
        f"Python {platform.python_version()}, ssnc {ssnc.__version__}; median of {args.reps} "
        "runs after two warm-ups. fp32 is IEEE float32 (TF32 off in cuDNN and cuBLAS)."])
    forward_rows(table, args, device, start)
    inference_rows(table, args, device)
    training_rows(table, args, device)
    checkpoint_rows(table, args, device)
    runtime_rows(table, args)
    table.row("total time", f"{time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
