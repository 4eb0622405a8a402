"""The activations, declared through the public op API (`ssnc.op`) as a plugin declares its
ops: each with its PyTorch and ONNX lowering beside it, so the API is the real mechanism."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .ops import (
    FINITE,
    REQUIRED,
    Attr,
    Attrs,
    OnnxLowering,
    OpCall,
    OpDecl,
    Shape,
    ShapeMismatch,
    TorchLowering,
    op,
)

_ELEMENTWISE = "Element-wise; shape unchanged."
_NUMBER, _BOOL = (int, float), (bool,)


def _clip_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    low, high = attrs["min"], attrs["max"]
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if low > high:
        raise ShapeMismatch(f"clip's min {low:g} is above its max {high:g}")
    return inputs[0]


def _onnx_clip(e: object, call: OpCall, xs: Sequence[str], ws: Sequence[str],
               out: str) -> None:
    """Clip with its bounds as inputs (opset 11 on)."""
    low, high = (e.constant(f"{call.name}.{k}",  # type: ignore[attr-defined]
                            np.array(float(call.attrs[k]), np.float32))  # type: ignore[arg-type]
                 for k in ("min", "max"))
    e.add("Clip", [xs[0], low, high], [out], call.name)  # type: ignore[attr-defined]


def _onnx_gelu(e: object, call: OpCall, xs: Sequence[str], ws: Sequence[str],
               out: str) -> None:
    """0.5 x (1 + erf(x / sqrt 2)), or with `tanh` 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715
    x^3))): basic ops at every opset (ONNX's Gelu needs opset 20)."""
    x, n, add = xs[0], call.name, e.add  # type: ignore[attr-defined]

    def const(what: str, value: float) -> str:
        return e.constant(f"{n}.{what}", np.array(value, np.float32))  # type: ignore[attr-defined, no-any-return]

    fresh = e.fresh  # type: ignore[attr-defined]
    inner, curve, plus = fresh(n), fresh(n), fresh(n)
    if call.attrs["tanh"]:
        square, cube, scaled, summed = (fresh(n) for _ in range(4))
        add("Mul", [x, x], [square], f"{n}/square")
        add("Mul", [square, x], [cube], f"{n}/cube")
        add("Mul", [cube, const("c", 0.044715)], [scaled], f"{n}/scaled")
        add("Add", [x, scaled], [summed], f"{n}/sum")
        add("Mul", [summed, const("k", math.sqrt(2.0 / math.pi))], [inner], f"{n}/inner")
        add("Tanh", [inner], [curve], f"{n}/tanh")
    else:
        add("Mul", [x, const("k", 1.0 / math.sqrt(2.0))], [inner], f"{n}/inner")
        add("Erf", [inner], [curve], f"{n}/erf")
    half = fresh(n)
    add("Add", [curve, const("one", 1.0)], [plus], f"{n}/plus")
    add("Mul", [x, const("half", 0.5)], [half], f"{n}/half")
    add("Mul", [half, plus], [out], n)


def _simple(name: str, torch: str, onnx: str, homogeneous: bool = False) -> OpDecl:
    return op(name, _ELEMENTWISE, torch=TorchLowering(expr=torch),
              onnx=OnnxLowering(op_type=onnx), saves=("output",), homogeneous=homogeneous)


ACTIVATIONS: dict[str, OpDecl] = {d.name: d for d in (
    _simple("relu", "torch.relu({0})", "Relu", homogeneous=True),
    _simple("sigmoid", "torch.sigmoid({0})", "Sigmoid"),
    _simple("tanh", "torch.tanh({0})", "Tanh"),
    op("gelu", "GELU, x Φ(x) (erf); `tanh`: PyTorch's tanh approximation.",
       attrs=[Attr("tanh", _BOOL, False, "the tanh approximation")],
       torch=TorchLowering(
           expr="torch.nn.functional.gelu({0}, approximate={approximate})",
           args=lambda call: {"approximate": "tanh" if call.attrs["tanh"] else "none"}),
       onnx=OnnxLowering(emit=_onnx_gelu)),
    op("clip", "Clamp to [min, max] (`relu6` is `clip(0, 6)`).",
       attrs=[Attr("min", _NUMBER, REQUIRED, "lower bound", FINITE),
              Attr("max", _NUMBER, REQUIRED, "upper bound", FINITE)],
       shape=_clip_shape, torch=TorchLowering(expr="torch.clamp({0}, {min}, {max})"),
       onnx=OnnxLowering(emit=_onnx_clip)),
    op("leaky_relu", "x where x > 0, else slope * x.",
       attrs=[Attr("slope", _NUMBER, 0.01, "the negative slope", FINITE)],
       torch=TorchLowering(expr="torch.nn.functional.leaky_relu({0}, {slope})"),
       homogeneous=True,
       onnx=OnnxLowering(op_type="LeakyRelu",
                         args=lambda call: {"alpha": float(call.attrs["slope"])})),  # type: ignore[arg-type]
)}
"""The activation family, by name."""
