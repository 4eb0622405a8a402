"""BlurPool (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"), declared for
ssnc: a fixed binomial low-pass filter applied to each channel alone, then the stride. In
place of a strided pooling or convolution, `maxpool(2, stride = 1) >> blurpool(stride = 2)`
keeps a network's output nearly unchanged when its input shifts by a pixel.

This module imports only ssnc's op API and numpy: the PyTorch module it names lives in
`ssnc_blurpool.torch_module`, imported only by the PyTorch code ssnc generates."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any

import numpy as np

from ssnc.plugin import (
    POSITIVE,
    Attr,
    Attrs,
    Axes,
    OnnxLowering,
    OpCall,
    ParamSpec,
    Range,
    Shape,
    ShapeMismatch,
    TorchLowering,
    fmt_shape,
    op,
    roles_of,
)

__version__ = "0.1.0"

PADS = ("reflect", "zero")


def _pads(k: int) -> tuple[int, int]:
    """Padding before and after each axis: the window's k - 1, the extra one after."""
    return (k - 1) // 2, k // 2


def _image(inputs: Sequence[Shape]) -> Shape:
    (x,) = inputs
    if roles_of(x) != "NCHW":
        raise ShapeMismatch(f"blurpool takes an image [N, C, H, W], got {fmt_shape(x)}",
                            inputs=(0,))
    return x


def _shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    x = _image(inputs)
    k, stride = int(attrs["k"]), int(attrs["stride"])  # type: ignore[arg-type]
    size = [(int(d) - 1) // stride + 1 for d in x[2:]]  # padded by k - 1, filtered, strided
    if min(int(d) for d in x[2:]) <= max(_pads(k)) and attrs["pad"] == "reflect":
        raise ShapeMismatch(f"blurpool's reflected padding {max(_pads(k))} needs an image "
                            f"larger than that, got {fmt_shape(x)}", inputs=(0,),
                            hint='use pad = "zero", or a smaller `k`')
    return Axes((x[0], x[1], *size), roles_of(x))


def _params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    channels, k = int(_image(inputs)[1]), int(attrs["k"])  # type: ignore[arg-type]
    return (ParamSpec("filter", (channels, 1, k, k), "binomial", trainable=False),)


def _macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    k = int(attrs["k"])  # type: ignore[arg-type]
    return int(out[1]) * int(out[2]) * int(out[3]) * k * k


def binomial(spec: ParamSpec, rng: Any) -> np.ndarray:
    """The filter: binomial coefficients of row k - 1, their outer product normalised to sum
    to one (a box for k = 2, [1 2 1] for k = 3), one copy per channel."""
    k = spec.shape[-1]
    row = np.array([comb(k - 1, i) for i in range(k)], dtype=np.float64)
    kernel = np.outer(row, row) / row.sum() ** 2
    return np.broadcast_to(kernel, spec.shape).astype(np.float32)


def _saves(inputs: Sequence[Shape], attrs: Attrs) -> tuple[str | Shape, ...]:
    """What backward keeps (the memory estimate's): the padded copy the filter reads, and
    the input where reflected padding's backward reads it."""
    x, grow = _image(inputs), int(attrs["k"]) - 1  # type: ignore[arg-type]
    padded = (x[0], x[1], int(x[2]) + grow, int(x[3]) + grow)
    return ("inputs", padded) if attrs["pad"] == "reflect" else (padded,)


def _torch_args(call: OpCall) -> dict[str, Any]:
    return {"channels": int(call.inputs[0][1]), "k": call.attrs["k"],
            "stride": call.attrs["stride"], "pad": call.attrs["pad"]}


def _onnx(e: Any, call: OpCall, xs: Sequence[str], ws: Sequence[str], out: str) -> None:
    """Pad (reflect or zeros), then a depthwise Conv with the filter, strided."""
    k, stride = int(call.attrs["k"]), int(call.attrs["stride"])  # type: ignore[arg-type]
    before, after = _pads(k)
    pads = e.constant(f"{call.name}.pads", np.array([0, 0, before, before, 0, 0, after, after],
                                                    np.int64))
    padded = e.fresh(call.name)
    mode = "reflect" if call.attrs["pad"] == "reflect" else "constant"
    e.add("Pad", [xs[0], pads], [padded], f"{call.name}/pad", mode=mode)
    e.add("Conv", [padded, ws[0]], [out], call.name, group=int(call.inputs[0][1]),
          kernel_shape=[k, k], strides=[stride, stride])


blurpool = op(
    "blurpool",
    "Anti-aliased downsampling (Zhang 2019): a fixed binomial low-pass filter on each "
    "channel alone, then the stride.",
    attrs=[Attr("stride", (int,), 2, "the step of the downsampling", POSITIVE),
           Attr("k", (int,), 3, "the filter's size (binomial row k - 1)",
                Range(1, 7, words="from 1 to 7")),
           Attr("pad", (str,), "reflect", '"reflect" (as the paper) or "zero"',
                check=lambda v: None if v in PADS else 'must be "reflect" or "zero"')],
    shape=_shape, weights=("filter",), params=_params, macs=_macs,
    initializers={"binomial": binomial},
    torch=TorchLowering(module="ssnc_blurpool.torch_module:BlurPool2d", args=_torch_args),
    onnx=OnnxLowering(emit=_onnx),
    saves=_saves,
)
"""The op: `blurpool(stride = 2, k = 3, pad = "reflect")`."""
