"""An op of its own ONNX domain: `scaled_tanh` with a function body (runs anywhere), and
`fused_tanh` without one (needs the domain's kernel, which no runtime here has)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ssnc.plugin import Attr, OnnxLowering, OpCall, TorchLowering, op


def _body(e: Any, call: OpCall, xs: Sequence[str], ws: Sequence[str], out: str) -> None:
    scale = e.constant("scale", np.array(float(call.attrs["scale"]), np.float32))
    t = e.fresh("t")
    e.add("Tanh", [xs[0]], [t], "tanh")
    e.add("Mul", [t, scale], [out], "scale")


scaled_tanh = op("scaled_tanh", "scale * tanh(x).",
                 attrs=[Attr("scale", (int, float), 1.0, "the scale")],
                 torch=TorchLowering(expr="{scale} * torch.tanh({0})"),
                 onnx=OnnxLowering(op_type="ScaledTanh", domain="org.example.ops", opset=1,
                                   function=_body))
fused_tanh = op("fused_tanh", "tanh(x), as one kernel of a runtime.",
                torch=TorchLowering(expr="torch.tanh({0})"),
                onnx=OnnxLowering(op_type="FusedTanh", domain="org.example.ops", opset=1))
