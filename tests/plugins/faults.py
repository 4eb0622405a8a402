"""Ops whose plugin code fails in each way ssnc must report (E0702, E0703)."""

from __future__ import annotations

from collections.abc import Sequence

from ssnc.plugin import Attrs, OnnxLowering, Shape, TorchLowering, op


def _raises(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    raise ZeroDivisionError("division by zero in the plugin")


def _nonsense(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    return ("N", -3)


def _broken(*args: object) -> None:
    raise RuntimeError("the lowering broke")


raising_shape = op("raising_shape", "Its shape rule raises.", shape=_raises,
                   torch=TorchLowering(expr="{0}"), onnx=OnnxLowering(op_type="Identity"))
wrong_shape = op("wrong_shape", "Its shape rule returns no shape.", shape=_nonsense,
                 torch=TorchLowering(expr="{0}"), onnx=OnnxLowering(op_type="Identity"))
raising_lowering = op("raising_lowering", "Both its lowerings raise.",
                      torch=TorchLowering(expr="{0}", args=_broken),
                      onnx=OnnxLowering(emit=_broken))
torch_only = op("torch_only", "No ONNX lowering.", torch=TorchLowering(expr="torch.neg({0})"))
