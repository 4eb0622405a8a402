"""`check_op`: the harness an op plugin's own tests run (in the spirit of
`torch.library.opcheck`). It compiles a one-op model and checks the op's declaration against
its lowerings: shapes, PyTorch against ONNX Runtime, parameter counts, gradients, fp16.
Needs torch and onnxruntime (`pip install ssnc[torch,onnxruntime]`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .api import Model, loads
from .compiler.literals import ssn_text
from .compiler.ops import OPS, OnnxLowering, OpDecl

__all__ = ["Check", "CheckReport", "check_op"]


@dataclass(frozen=True)
class Check:
    """One check: its name, `passed`, `failed` or `skipped`, and what it found."""

    name: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status.upper():8} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class CheckReport:
    """What `check_op` found, one line per check."""

    op: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no check failed (skipped ones say why)."""
        return all(c.status != "failed" for c in self.checks)

    def add(self, name: str, status: str, detail: str = "") -> None:
        """Record one check."""
        self.checks.append(Check(name, status, detail))

    def __str__(self) -> str:
        return "\n".join([f"check_op({self.op}):", *(f"  {c}" for c in self.checks)])


def check_op(op: OpDecl | str, inputs: str | Sequence[str], *, plugins: Sequence[str] = (),
             batches: Sequence[int] = (1, 3), steps: int = 5, rtol: float = 1e-4,
             atol: float = 1e-5, seed: int = 0, raise_on_failure: bool = True,
             **attrs: Any) -> CheckReport:
    """Check op ``op`` (a declaration, or the name of an installed or ``plugins`` op) on
    inputs of the spec types ``inputs`` (`"tensor[4, 8, 8]"`, one per input), called with
    ``attrs``: the shape its rule gives against the shape PyTorch computes, PyTorch against
    ONNX Runtime at each batch size in the flat and function forms (skipped, saying why,
    for a node of the plugin's own domain with no function body), the declared parameter
    and buffer counts against the module's, finite gradients, and fp16 ONNX where the op
    allows it. Raises AssertionError with the report if a check fails."""
    import torch

    types = [inputs] if isinstance(inputs, str) else list(inputs)
    name = op if isinstance(op, str) else op.name
    given = list(plugins) + ([op] if isinstance(op, OpDecl) and OPS.get(op.name) is not op
                             else [])
    args = ", ".join(f"{k} = {ssn_text(v)}" for k, v in attrs.items())
    wires = [f"x{i}" for i in range(len(types))]
    typed = ", ".join(f"{w}: {t}" for w, t in zip(wires, types, strict=True)) \
        if len(types) > 1 else types[0]
    call = f"{name}({args})" if args else name
    body = f"({', '.join(wires)}) => {call}({', '.join(wires)})" if len(types) > 1 else call
    report = CheckReport(f"{name}({args})")
    try:
        model = loads(f"model check : {typed} = {body}\n", "check_op.ssn",
                      plugins=given).model()
    except Exception as exc:  # the declaration itself does not compile
        report.add("compile", "failed", _said(exc))
        return _done(report, raise_on_failure)
    decl = OPS[name]
    net = model.to_torch(seed=seed).eval()
    feeds = {b: _feeds(model, b, steps, seed) for b in batches}
    outs: dict[int, np.ndarray] = {}
    for b, xs in feeds.items():
        with torch.no_grad():
            out = net(*[torch.from_numpy(x) for x in xs])
        outs[b] = out.numpy()
        want = tuple(b if d == "N" else d for d in model.ir[model.ir.outputs[0]].shape or ())
        got = tuple(out.shape)
        fixed = all(isinstance(d, int) for d in want)
        if fixed and got != want:
            report.add(f"shape at batch {b}", "failed",
                       f"the shape rule gives {list(want)}, PyTorch computed {list(got)}")
        else:
            report.add(f"shape at batch {b}", "passed", str(list(got)))
    _compare_onnx(report, decl, model, feeds, outs, rtol, atol)
    declared = model.ir.tensors()
    trainable = sum(s.numel for s in declared.values() if s.trainable)
    buffers = sum(s.numel for s in declared.values() if not s.trainable)
    have = sum(p.numel() for p in net.parameters())
    have_buffers = sum(b.numel() for b in net.buffers())
    status = "passed" if (trainable, buffers) == (have, have_buffers) else "failed"
    report.add("parameter count", status, f"declared {trainable:,} parameters and {buffers:,} "
               f"buffer values, the module has {have:,} and {have_buffers:,}")
    _gradients(report, net, feeds[batches[-1]])
    _kept(report, model, feeds[batches[-1]], seed)
    _half(report, decl, model, feeds[batches[-1]], outs[batches[-1]])
    return _done(report, raise_on_failure)


def _feeds(model: Model, batch: int, steps: int, seed: int) -> list[np.ndarray]:
    """Random inputs for ``model`` at ``batch`` (time axes ``steps`` long)."""
    rng = np.random.default_rng(seed + batch)
    out = []
    for name, info in model.inputs.items():
        shape = tuple(batch if d == "N" else (steps if isinstance(d, str) else d)
                      for d in info.shape)
        if info.dtype == "i64":
            vocab = model.ir[name].attrs.get("vocab") or 2
            out.append(rng.integers(0, int(vocab), shape).astype(np.int64))  # type: ignore[arg-type]
        else:
            out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def _compare_onnx(report: CheckReport, decl: OpDecl, model: Model,
                  feeds: dict[int, list[np.ndarray]], outs: dict[int, np.ndarray],
                  rtol: float, atol: float) -> None:
    """PyTorch against ONNX Runtime, at every batch size, flat and with functions."""
    import onnxruntime as ort

    how = decl.lowerings.get("onnx")
    if isinstance(how, OnnxLowering) and how.domain and how.function is None:
        report.add("ONNX Runtime", "skipped", f"a node of the domain `{how.domain}` with no "
                   "function body: only a runtime with that domain's kernel runs it")
        return
    for flat in (True, False):
        form = "flat" if flat else "functions"
        try:
            proto = model.to_onnx(flat=flat)
            session = ort.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:
            report.add(f"ONNX Runtime ({form})", "failed", _said(exc))
            continue
        names = [i.name for i in session.get_inputs()]
        for b, xs in feeds.items():
            got = session.run(None, dict(zip(names, xs, strict=True)))[0]
            err = _mismatch(got, outs[b], rtol, atol)
            report.add(f"ONNX Runtime ({form}) at batch {b}", "failed" if err else "passed",
                       err or "equal to PyTorch")


def _gradients(report: CheckReport, net: Any, xs: list[np.ndarray]) -> None:
    """Gradients of the output's sum reach the float inputs and the parameters, finite."""
    import torch

    inputs = [torch.from_numpy(x).requires_grad_(x.dtype == np.float32) for x in xs]
    out = net(*inputs)
    if not out.requires_grad:
        report.add("gradients", "skipped", "the output does not depend on anything trained")
        return
    out.float().sum().backward()
    grads = [t.grad for t in inputs if t.grad is not None]
    grads += [p.grad for p in net.parameters() if p.grad is not None]
    bad = [g for g in grads if not torch.isfinite(g).all()]
    report.add("gradients", "failed" if bad or not grads else "passed",
               f"{len(bad)} of {len(grads)} not finite" if bad or not grads
               else f"{len(grads)} finite")


def autograd_kept(net: Any, inputs: Sequence[Any]) -> int:
    """The bytes autograd keeps for backward in one forward of ``net`` on ``inputs``, each
    storage once, the parameters' and buffers' left out (they are there anyway): what the
    memory estimate's `saves` declarations stand for."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in (*net.parameters(), *net.buffers())}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(*inputs)
    return sum(saved.values())


def _kept(report: CheckReport, model: Model, xs: list[np.ndarray], seed: int) -> None:
    """What autograd keeps for backward in training against what the op declares it
    `saves` (the memory estimate's figure), within 25 % or 64 bytes (an op's small
    statistics, a norm's mean and variance per row or a per-sample scale, are not declared)."""
    import torch

    from .compiler.memory import kept_for_backward

    net = model.to_torch(seed=seed).train()
    inputs = [torch.from_numpy(x).requires_grad_(x.dtype == np.float32) for x in xs]
    steps = next((x.shape[1] for x, (_, i) in zip(xs, model.inputs.items(), strict=True)
                  if any(isinstance(d, str) and d != "N" for d in i.shape)), 1)
    declared = kept_for_backward(model.ir, xs[0].shape[0], steps=steps)
    measured = autograd_kept(net, inputs)
    ok = abs(declared - measured) <= max(0.25 * max(declared, measured), 64)
    report.add("kept for backward", "passed" if ok else "failed",
               f"declared {declared:,} bytes (`saves`), autograd keeps {measured:,}")


def _half(report: CheckReport, decl: OpDecl, model: Model, xs: list[np.ndarray],
          want: np.ndarray) -> None:
    """The fp16 ONNX model in ONNX Runtime, near the fp32 PyTorch output."""
    if not decl.half:
        report.add("fp16", "skipped", "the op declares it does not run in half precision")
        return
    how = decl.lowerings.get("onnx")
    if isinstance(how, OnnxLowering) and how.domain and how.function is None:
        report.add("fp16", "skipped", f"a node of the domain `{how.domain}`")
        return
    import onnxruntime as ort

    try:
        proto = model.to_onnx(precision="fp16")
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, dict(zip(names, xs, strict=True)))[0]
    except Exception as exc:
        report.add("fp16", "failed", _said(exc))
        return
    scale = max(float(np.abs(want).max()), 1.0)
    err = _mismatch(got.astype(np.float32), want, 1e-2, 1e-2 * scale)
    report.add("fp16", "failed" if err else "passed", err or "near the fp32 output")


def _mismatch(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> str:
    """What differs between ``got`` and ``want`` beyond the tolerances ("" if nothing)."""
    if got.shape != want.shape:
        return f"shape {list(got.shape)}, PyTorch's {list(want.shape)}"
    if not np.isfinite(got).all():
        return "not finite"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    limit = atol + rtol * np.abs(want.astype(np.float64))
    if (diff <= limit).all():
        return ""
    return f"max difference {diff.max():.3g} (tolerance {atol:g} + {rtol:g}·|PyTorch|)"


def _said(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _done(report: CheckReport, raise_on_failure: bool) -> CheckReport:
    if raise_on_failure and not report.ok:
        raise AssertionError(str(report))
    return report

