"""Which runtimes load ssnc's ONNX, in each form: every shipped spec is compiled flat (the
default), with functions (`--functions`) and for runtimes without loops or computed kernels
(`--steps T --unroll --fold-weights`), run in each runtime installed here, and compared with
ONNX Runtime on the flat model. The table goes into docs/onnx.md between its
`compat` markers; a runtime that is not installed is listed as such, with how to get it.

    .venv/bin/python bench/compat.py    # prints the table and updates docs/onnx.md

OpenVINO and tract come with the `dev` (and `runtimes`) extra. onnx2torch is measured where
it is installed (`pip install --no-deps onnx2torch`: its torchvision dependency pulls a CUDA
torch, and is stubbed where it cannot load), TensorRT where a GPU and its provider are.

Every runtime is asked for float32 computation explicitly, and the table says so: a runtime
whose default precision depends on the machine would otherwise make the same model "equal" on
one CPU and "differs" on another (OpenVINO's CPU plugin computes in bf16 by default where the
CPU has AVX512-BF16 or AMX; TensorRT and cuDNN use TF32 for float32 on Ampere and later)."""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

import ssnc
from ssnc.compiler.ir import Graph
from ssnc.compiler.stats import example_shape

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
DOC = ROOT / "docs" / "onnx.md"
STEPS = 7
"""The sequence length of the inputs (fixed by the third form)."""
FORMS: dict[str, Callable[[bool], dict[str, object]]] = {
    "flat (default)": lambda timed: {},
    "functions (`--functions`)": lambda timed: {"flat": False},
    "`--unroll --fold-weights` (fixed `--steps`)":
        lambda timed: {"fold_weights": True, **({"steps": STEPS, "unroll": True} if timed
                                               else {})},
}
"""Each form's `to_onnx` options, given whether the model has a time axis."""
TOLERANCE = 1e-4
"""Largest |difference| from ONNX Runtime, relative to the largest |output|, that counts as
equal (float32 kernels sum in different orders)."""

Feed = np.ndarray | Sequence[np.ndarray]
"""A model's input, or one array per input in order (a model with several)."""
Runner = Callable[[str, Feed], np.ndarray]


def arrays(x: Feed) -> list[np.ndarray]:
    """``x`` as one array per model input."""
    return [x] if isinstance(x, np.ndarray) else list(x)


def _ort() -> Runner:
    import onnxruntime as ort

    def run(path: str, x: Feed) -> np.ndarray:
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = dict(zip((i.name for i in s.get_inputs()), arrays(x), strict=True))
        return np.asarray(s.run(None, feeds)[0])
    return run


def openvino_compile(path: str) -> object:
    """``path`` compiled by OpenVINO's CPU plugin to compute in float32. Its default
    `INFERENCE_PRECISION_HINT` is bf16 on CPUs with AVX512-BF16 or AMX (measured: NiN then
    differs from ONNX Runtime by 5.9e-4 of its largest logit, and by 1.5e-7 in f32)."""
    import openvino as ov
    from openvino.properties import hint

    core = ov.Core()
    return core.compile_model(core.read_model(path), "CPU",
                              {hint.inference_precision: ov.Type.f32})


def _openvino() -> Runner:
    def run(path: str, x: Feed) -> np.ndarray:
        compiled = openvino_compile(path)
        return np.asarray(compiled(arrays(x))[compiled.output(0)])  # type: ignore[operator, attr-defined]
    return run


def _tract() -> Runner:
    import tract

    def run(path: str, x: Feed) -> np.ndarray:
        runnable = tract.onnx().load(path).into_model().into_runnable()
        return np.asarray(runnable.run(arrays(x))[0].to_numpy())
    return run


def _torchvision_or_stub() -> None:
    """onnx2torch imports torchvision, for its NMS and RoIAlign converters alone. PyPI's
    torchvision needs a CUDA build of torch; where it cannot load, a stub whose functions
    refuse to run stands in for it (ssnc emits neither op, so the measurement is the same)."""
    try:
        import torchvision  # noqa: F401
        return
    except (ImportError, OSError, RuntimeError):
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]

    def unavailable(*_: object, **__: object) -> None:
        raise NotImplementedError("torchvision is stubbed here (bench/compat.py)")

    package, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.box_convert = ops.roi_align = unavailable  # type: ignore[attr-defined]
    package.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})


def _onnx2torch() -> Runner:
    import onnx
    import torch

    _torchvision_or_stub()
    from onnx2torch import convert

    def run(path: str, x: Feed) -> np.ndarray:
        module = convert(onnx.load(path)).eval()
        with torch.no_grad():
            out = module(*(torch.from_numpy(a) for a in arrays(x)))
        first = out[0] if isinstance(out, list | tuple) else out  # several outputs: the first
        return np.asarray(first.numpy())
    return run


def _tensorrt() -> Runner:
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise ImportError("ONNX Runtime here has no TensorRT provider")
    # TensorRT computes float32 layers in TF32 by default on Ampere and later GPUs; this
    # switch (read by the NVIDIA libraries when they start) keeps them in float32.
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"

    def run(path: str, x: Feed) -> np.ndarray:
        s = ort.InferenceSession(path, providers=["TensorrtExecutionProvider"])
        feeds = dict(zip((i.name for i in s.get_inputs()), arrays(x), strict=True))
        return np.asarray(s.run(None, feeds)[0])
    return run


class Runtime(NamedTuple):
    """How to get a runner, how to install the runtime, and the precision it computes in."""

    make: Callable[[], Runner]
    how: str
    precision: str


RUNTIMES: dict[str, Runtime] = {
    "ONNX Runtime": Runtime(_ort, "pip install onnxruntime",
                            "CPU provider, float32 (its only float32 mode)"),
    "OpenVINO": Runtime(_openvino, "pip install openvino",
                        "CPU plugin with `INFERENCE_PRECISION_HINT` f32; without it, OpenVINO "
                        "computes in bf16 on CPUs with AVX512-BF16 or AMX"),
    "tract": Runtime(_tract, "pip install tract", "float32 (it has no lower-precision mode "
                     "for a float32 model)"),
    "onnx2torch": Runtime(_onnx2torch, "pip install --no-deps onnx2torch (torchvision is "
                          "stubbed where it cannot load)",
                          "PyTorch on the CPU, float32 (torch's default matmul precision "
                          "`highest`)"),
    "TensorRT (via ONNX Runtime)": Runtime(_tensorrt, "a GPU and onnxruntime-gpu with TensorRT",
                                           "float32 with TF32 off (`NVIDIA_TF32_OVERRIDE=0`)"),
}


def feed(graph: Graph, batch: int = 2, steps: int = STEPS, seed: int = 0) -> Feed:
    """Deterministic inputs of the model's types (images, or token ids below the
    vocabulary): one array, or one per input where the model has several."""
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        node = graph[name]
        shape = example_shape(node, batch, steps)
        if node.dtype == "i64":
            out.append(rng.integers(0, int(node.attrs.get("vocab") or 2), shape)
                       .astype(np.int64))
        else:
            out.append(rng.standard_normal(shape).astype(np.float32))
    return out[0] if len(out) == 1 else tuple(out)


@dataclass
class Cell:
    """One runtime and form over every spec."""

    passed: list[str]
    failed: dict[str, str]
    worst: float = 0.0

    def text(self, total: int) -> str:
        if not self.failed and self.worst == 0:
            return f"runs all {total}, identical to ORT"
        if not self.failed:
            exponent = math.ceil(math.log10(self.worst))
            return f"runs all {total}, equal to ORT within 1e{exponent} (relative)"
        first = next(iter(self.failed.values()))
        return f"{len(self.passed)} of {total} run; e.g. {first}"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.split("Stack backtrace:")[0]
    head, _, causes = text.partition(" Caused by: ")  # tract: the first cause says where
    first = re.split(r" \d+: ", " " + causes)
    text = f"{head}: {first[1]}" if len(first) > 1 else head
    m = re.search(r"(No conversion rule found for operations: \S+|Unimplemented\([^)]*\)|"
                  r"is not a registered function/op|[Cc]onverter is not implemented[^.]*)", text)
    return (m.group(1) if m else text[:90]).replace("|", "/")


def measure(specs: list[Path]) -> tuple[dict[str, dict[str, Cell]], dict[str, str]]:
    """Every installed runtime on every spec in both forms; the missing runtimes and why."""
    runners: dict[str, Runner] = {}
    missing: dict[str, str] = {}
    for name, (make, how, _) in RUNTIMES.items():
        try:
            runners[name] = make()
        except ImportError as exc:
            missing[name] = f"not installed here ({how}): {exc}"
    cells = {r: {f: Cell([], {}) for f in FORMS} for r in runners}
    reference = runners["ONNX Runtime"]
    with tempfile.TemporaryDirectory() as tmp:
        for path in specs:
            program = ssnc.load(path)
            for name in program.models:
                model = program.model(name)
                x = feed(model.ir)
                timed = any(isinstance(d, str) and d != "N"
                            for d in model.ir[model.ir.inputs[0]].shape or ())
                files = {}
                for k, (form, options) in enumerate(FORMS.items()):
                    files[form] = str(Path(tmp) / f"{name}-{k}.onnx")
                    proto = model.to_onnx(**options(timed))  # type: ignore[arg-type]
                    Path(files[form]).write_bytes(proto.SerializeToString())
                want = reference(files["flat (default)"], x)
                scale = max(float(np.abs(want).max()), 1e-6)
                for runtime, run in runners.items():
                    for form in FORMS:
                        cell = cells[runtime][form]
                        try:
                            got = run(files[form], x)
                            diff = float(np.abs(got - want).max()) / scale
                            if got.shape != want.shape or not diff <= TOLERANCE:
                                raise ValueError(f"differs: shape {got.shape}, rel. {diff:.1e}")
                            cell.passed.append(name)
                            cell.worst = max(cell.worst, diff)
                        except Exception as exc:  # a runtime's refusal is the finding
                            cell.failed[name] = _short(exc)
    return cells, missing


def table(cells: dict[str, dict[str, Cell]], missing: dict[str, str], total: int) -> str:
    """The Markdown table (runtime × form) and the runtimes not measured."""
    lines = ["| runtime | " + " | ".join(FORMS) + " |",
             "|---|" + "---|" * len(FORMS)]
    for runtime, row in cells.items():
        lines.append(f"| {runtime} | " + " | ".join(row[f].text(total) for f in FORMS) + " |")
    for runtime in missing:
        lines.append(f"| {runtime} | " + " | ".join("not measured" for _ in FORMS) + " |")
    notes = [f"- {runtime}: {why.split(':')[0]}." for runtime, why in missing.items()]
    precision = [f"- {runtime}: {RUNTIMES[runtime].precision}." for runtime in cells]
    return "\n".join([*lines, "", "Measured in float32 everywhere:", "", *precision, "",
                      *notes]).rstrip() + "\n"


BEGIN, END = "<!-- compat:begin (bench/compat.py) -->", "<!-- compat:end -->"


def main() -> None:
    specs = sorted(SPECS.glob("*.ssn"))
    cells, missing = measure(specs)
    text = table(cells, missing, len(specs))
    print(text)
    doc = DOC.read_text(encoding="utf-8")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                 lambda _: f"{BEGIN}\n{text}{END}", doc, flags=re.S)
    DOC.write_text(new, encoding="utf-8")
    print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
