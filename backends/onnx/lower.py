"""ONNX lowering: one row per op (`LOWERINGS`), each writing the op's nodes through an
`Emitter`, built directly with ``onnx.helper``, never by tracing, so dynamic batch and time
dimensions stay dynamic. Nothing here imports torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...compiler.ir import Graph, Node
from ...compiler.ops import (
    LINEAR_MODES,
    OnnxLowering,
    OpCall,
    channel_axis,
    concat_broadcasts,
    concat_reference,
    conv_t_values,
    linear_axis,
    pad_pairs,
    per_axis,
    permute_axes,
    pool_window,
    reshape_lead,
    slice_bounds,
    sliding_axes,
    unsqueeze_axis,
)
from .options import DEFAULT_OPSET

DOMAIN = "ssnc.functions"

_DTYPES = {"f32": TensorProto.FLOAT, "i64": TensorProto.INT64, "bool": TensorProto.BOOL}


@dataclass
class Emitter:
    """Collects the nodes of one graph or function body. ``source`` is the spec location
    attached to every node it emits."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    source: str = ""
    counter: int = 0
    node_names: set[str] = field(default_factory=set)
    lower_body: Callable[[Emitter, Graph], None] | None = None
    opset: int = DEFAULT_OPSET
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    domains: dict[str, int] = field(default_factory=dict)
    """Plugins' own domains used (with their opsets), shared by a model's emitters."""
    functions: dict[tuple[str, str], onnx.FunctionProto] = field(default_factory=dict)
    """Plugins' ONNX functions, by (domain, name), shared by a model's emitters."""

    def body(self, graph: Graph) -> Emitter:
        """A fresh emitter holding a body graph (a node's ``body``) lowered by the same rows,
        with its typed ``inputs`` and ``outputs``; the op's lowering adds what its ONNX
        construct needs around them and makes the attribute with ``subgraph``."""
        assert self.lower_body is not None
        sub = Emitter(counter=self.counter, node_names=self.node_names, opset=self.opset,
                      domains=self.domains, functions=self.functions)
        self.lower_body(sub, graph)
        self.counter = sub.counter
        return sub

    def subgraph(self, name: str, inputs: Sequence[onnx.ValueInfoProto] = (),
                 outputs: Sequence[onnx.ValueInfoProto] = ()) -> onnx.GraphProto:
        """This body as a graph attribute (a Loop or Scan body), ``inputs`` and ``outputs``
        before its own; values of the enclosing graphs, weights included, are read by name."""
        return helper.make_graph(self.nodes, name, [*inputs, *self.inputs],
                                 [*outputs, *self.outputs])

    def fresh(self, base: str) -> str:
        """A new value name derived from ``base``."""
        self.counter += 1
        return f"{base}__{self.counter}"

    def add(self, op: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
            domain: str = "", **attrs: Any) -> None:
        """Append one node, tagged with its spec location."""
        unique, k = name, 1
        while unique in self.node_names:
            k += 1
            unique = f"{name}#{k}"
        self.node_names.add(unique)
        node = helper.make_node(op, list(inputs), list(outputs), name=unique, domain=domain,
                                **attrs)
        if self.source:
            entry = node.metadata_props.add()
            entry.key, entry.value = "ssnc.source", self.source
        self.nodes.append(node)

    def constant(self, name: str, value: np.ndarray) -> str:
        """A Constant node holding ``value``."""
        out = self.fresh(name)
        self.add("Constant", [], [out], out, value=numpy_helper.from_array(value, out))
        return out


Lowering = Callable[[Emitter, Node, Sequence[str], Sequence[str], str, Sequence[Node]], None]
"""(emitter, node, input values, weight values, output value, input nodes) -> None."""


def _int(value: object) -> int:
    assert isinstance(value, int), value
    return value


def _ints(*values: object) -> list[int]:
    return [_int(v) for v in values]


def _moved(e: Emitter, n: Node, x: str, out: str, rank: int, axis: int, to: int,
           emit: Callable[[str, str], None]) -> None:
    """``emit(input, output)`` (which writes the op for its axis at ``to``) on ``x``, whose
    axis is at ``axis``: Transposes around it where they differ."""
    axis, to = axis % rank, to % rank
    if axis == to:
        emit(x, out)
        return
    order = [i for i in range(rank) if i != axis]
    order.insert(to, axis)
    back = [order.index(i) for i in range(rank)]
    before, after = e.fresh(n.name), e.fresh(n.name)
    e.add("Transpose", [x], [before], f"{n.name}/to", perm=order)
    emit(before, after)
    e.add("Transpose", [after], [out], f"{n.name}/back", perm=back)


def _channels_first(e: Emitter, n: Node, x: str, out: str, ins: Sequence[Node],
                    emit: Callable[[str, str], None]) -> None:
    """``emit`` (written for channels first) on an input whose channel axis is last."""
    shape = ins[0].shape or ()
    c, _ = sliding_axes(shape, n.op)
    _moved(e, n, x, out, len(shape), c, 1, emit)


def _pads(pairs: Sequence[tuple[int, int]]) -> list[int]:
    """ONNX's `pads`: every axis's start, then every axis's end."""
    return [b for b, _ in pairs] + [a for _, a in pairs]


def lower_conv(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
               ins: Sequence[Node]) -> None:
    a = n.attrs
    shape = ins[0].shape or ()
    _, sliding = sliding_axes(shape, "conv")
    rank = len(sliding)

    def emit(x: str, y: str) -> None:
        e.add("Conv", [x, *ws], [y], n.name, kernel_shape=list(per_axis(a["k"], rank)),
              strides=list(per_axis(a["stride"], rank)),
              pads=_pads(pad_pairs(shape, a, "conv")),
              dilations=list(per_axis(a["dilation"], rank)), group=_int(a["groups"]))
    _channels_first(e, n, xs[0], out, ins, emit)


def lower_conv_t(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                 ins: Sequence[Node]) -> None:
    a = n.attrs
    ks, ss, ps, extras, ds = conv_t_values(ins[0].shape or (), a)
    dilated: dict[str, Any] = {"dilations": list(ds)} if a["dilation"] != 1 else {}

    def emit(x: str, y: str) -> None:
        e.add("ConvTranspose", [x, *ws], [y], n.name, kernel_shape=list(ks), strides=list(ss),
              pads=list(ps) * 2, output_padding=list(extras), group=_int(a["groups"]),
              **dilated)
    _channels_first(e, n, xs[0], out, ins, emit)


def lower_upsample(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                   ins: Sequence[Node]) -> None:
    """Resize as PyTorch's interpolate: nearest is asymmetric with floor; the linear modes
    are align_corners or pytorch_half_pixel."""
    a = n.attrs
    _, sliding = sliding_axes(ins[0].shape or (), "upsample")
    rank = len(sliding)
    linear = a["mode"] in LINEAR_MODES
    how = ("align_corners" if a["align_corners"] else "pytorch_half_pixel") if linear \
        else "asymmetric"

    def emit(x: str, y: str) -> None:
        if a["size"] is not None:
            shape = e.fresh(n.name)
            e.add("Shape", [x], [shape], f"{n.name}/shape", end=2)
            sizes = e.fresh(n.name)
            e.add("Concat", [shape, e.constant(f"{n.name}.size",
                                               np.array(per_axis(a["size"], rank), np.int64))],
                  [sizes], f"{n.name}/sizes", axis=0)
            inputs = [x, "", "", sizes]
        else:
            scales = [1.0, 1.0, *(float(v) for v in per_axis(a["scale"], rank))]
            inputs = [x, "", e.constant(f"{n.name}.scales", np.array(scales, np.float32))]
        e.add("Resize", inputs, [y], n.name, mode="linear" if linear else "nearest",
              coordinate_transformation_mode=how, nearest_mode="floor")
    _channels_first(e, n, xs[0], out, ins, emit)


def lower_pixel_shuffle(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                        ins: Sequence[Node]) -> None:
    """DepthToSpace in CRD order, PyTorch's channel layout."""
    e.add("DepthToSpace", [xs[0]], [out], n.name, blocksize=_int(n.attrs["r"]), mode="CRD")


def lower_pad(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
    """ONNX Pad (constant): every axis's starts, then every axis's ends."""
    rank = len(ins[0].shape or ())
    axis = _int(n.attrs["axis"]) % rank
    pads = [0] * (2 * rank)
    pads[axis], pads[rank + axis] = _int(n.attrs["before"]), _int(n.attrs["after"])
    e.add("Pad", [xs[0], e.constant(f"{n.name}.pads", np.array(pads, np.int64)),
                  e.constant(f"{n.name}.value",
                             np.array(float(n.attrs["value"]), np.float32))],  # type: ignore[arg-type]
          [out], n.name, mode="constant")


def lower_unsqueeze(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                    ins: Sequence[Node]) -> None:
    axis = unsqueeze_axis(ins[0].shape or (), n.attrs)
    e.add("Unsqueeze", [xs[0], e.constant(f"{n.name}.axes", np.array([axis], np.int64))],
          [out], n.name)


def lower_squeeze(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                  ins: Sequence[Node]) -> None:
    axis = _int(n.attrs["axis"]) % len(ins[0].shape or ())
    e.add("Squeeze", [xs[0], e.constant(f"{n.name}.axes", np.array([axis], np.int64))],
          [out], n.name)


def lower_bn(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
             ins: Sequence[Node]) -> None:
    shape = n.shape or ()
    axis = channel_axis(shape, "bn")
    if n.attrs["affine"]:
        scale, bias, mean, var = ws
    else:
        c = int(shape[axis])
        scale = e.constant(f"{n.name}.weight", np.ones(c, np.float32))
        bias = e.constant(f"{n.name}.bias", np.zeros(c, np.float32))
        mean, var = ws

    def emit(x: str, y: str) -> None:
        e.add("BatchNormalization", [x, scale, bias, mean, var], [y], n.name,
              epsilon=float(n.attrs["eps"]))  # type: ignore[arg-type]
    _moved(e, n, xs[0], out, len(shape), axis, 1, emit)


def lower_layernorm(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                    ins: Sequence[Node]) -> None:
    """LayerNormalization from opset 17; before it, the same arithmetic in basic ops; over
    an axis other than the last, Transposes around it."""
    shape = n.shape or ()
    axis = _int(n.attrs["axis"]) % len(shape)
    _moved(e, n, xs[0], out, len(shape), axis, -1,
           lambda x, y: _layernorm_last(e, n, x, ws, y, _int(shape[axis])))


def _layernorm_last(e: Emitter, n: Node, x: str, ws: Sequence[str], out: str, d: int) -> None:
    eps = float(n.attrs["eps"])  # type: ignore[arg-type]
    xs = [x]
    scale, bias = ws if ws else (e.constant(f"{n.name}.weight", np.ones(d, np.float32)),
                                 e.constant(f"{n.name}.bias", np.zeros(d, np.float32)))
    if e.opset >= 17:
        e.add("LayerNormalization", [xs[0], scale, bias], [out], n.name, axis=-1, epsilon=eps)
        return
    mean, centred, square, var, shifted, std, normed, scaled = (
        e.fresh(n.name) for _ in range(8))
    e.add("ReduceMean", [xs[0]], [mean], f"{n.name}/mean", axes=[-1], keepdims=1)
    e.add("Sub", [xs[0], mean], [centred], f"{n.name}/centre")
    e.add("Mul", [centred, centred], [square], f"{n.name}/square")
    e.add("ReduceMean", [square], [var], f"{n.name}/var", axes=[-1], keepdims=1)
    e.add("Add", [var, e.constant(f"{n.name}.eps", np.array(eps, np.float32))], [shifted],
          f"{n.name}/eps")
    e.add("Sqrt", [shifted], [std], f"{n.name}/std")
    e.add("Div", [centred, std], [normed], f"{n.name}/normed")
    e.add("Mul", [normed, scale], [scaled], f"{n.name}/scale")
    e.add("Add", [scaled, bias], [out], n.name)


def _simple(op: str, **attrs: Any) -> Lowering:
    def lower(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
        e.add(op, list(xs), [out], n.name, **attrs)
    return lower


def _pool(op: str, **extra: Any) -> Lowering:
    def lower(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
        a = n.attrs
        ks, ss, pads = pool_window(ins[0].shape or (), a, n.op)
        counted: dict[str, Any] = ({"count_include_pad": int(bool(a["count_pad"]))}
                                   if "count_pad" in a else {})
        if a.get("dilation", 1) != 1:
            counted["dilations"] = list(per_axis(a["dilation"], len(ks)))

        def emit(x: str, y: str) -> None:
            e.add(op, [x], [y], n.name, kernel_shape=list(ks), strides=list(ss),
                  pads=_pads(pads), ceil_mode=int(bool(a["ceil"])), **counted, **extra)
        _channels_first(e, n, xs[0], out, ins, emit)
    return lower


def _reduce(op: str, axes_input_from: int = 18) -> Lowering:
    """A Reduce* node over one axis: its axes an input from ``axes_input_from`` (opset 13 for
    ReduceSum, 18 for the others), an attribute before."""
    def lower(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
        axis, keep = _int(n.attrs["axis"]), int(bool(n.attrs["keep"]))
        if e.opset >= axes_input_from:
            axes = e.constant(f"{n.name}.axes", np.array([axis], np.int64))
            e.add(op, [xs[0], axes], [out], n.name, keepdims=keep)
        else:
            e.add(op, [xs[0]], [out], n.name, axes=[axis], keepdims=keep)
    return lower


def lower_pad_mask(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                   ins: Sequence[Node]) -> None:
    pad = e.constant(f"{n.name}.pad", np.array(_int(n.attrs["pad"]), np.int64))
    e.add("Equal", [xs[0], pad], [out], n.name)


def lower_masked_fill(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                      ins: Sequence[Node]) -> None:
    """Where(mask, value, x): the mask broadcasts to x."""
    value = e.constant(f"{n.name}.value", np.array(float(n.attrs["value"]),  # type: ignore[arg-type]
                                                   np.float32))
    e.add("Where", [xs[1], value, xs[0]], [out], n.name)


def lower_gap(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
    pooled = e.fresh(n.name)
    _channels_first(e, n, xs[0], pooled, ins,
                    lambda x, y: e.add("GlobalAveragePool", [x], [y], f"{n.name}/pool"))
    e.add("Flatten", [pooled], [out], n.name, axis=1)


def lower_linear(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                 ins: Sequence[Node]) -> None:
    """Gemm on [N, C]; else MatMul with the transposed weight, over the last axis (the axis
    it maps moved there and back)."""
    shape = ins[0].shape or ()
    _moved(e, n, xs[0], out, len(shape), linear_axis(shape, n.attrs), -1,
           lambda x, y: _linear_last(e, n, [x], ws, y, ins))


def _linear_last(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                 ins: Sequence[Node]) -> None:
    if len(ins[0].shape or ()) == 2:
        e.add("Gemm", [xs[0], *ws], [out], n.name, transB=1)
        return
    wt = e.fresh(n.name)
    e.add("Transpose", [ws[0]], [wt], f"{n.name}/transpose", perm=[1, 0])
    if len(ws) == 1:
        e.add("MatMul", [xs[0], wt], [out], n.name)
        return
    prod = e.fresh(n.name)
    e.add("MatMul", [xs[0], wt], [prod], f"{n.name}/matmul")
    e.add("Add", [prod, ws[1]], [out], n.name)


def lower_embedding(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                    ins: Sequence[Node]) -> None:
    e.add("Gather", [ws[0], xs[0]], [out], n.name, axis=0)


def lower_concat(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                 ins: Sequence[Node]) -> None:
    """Concat; an input that broadcasts is Expanded first to a full-size input's shape with
    its own size on the joined axis."""
    shapes = [i.shape or () for i in ins]
    shape = n.shape or ()
    axis = _int(n.attrs["axis"]) % len(shape)
    wide = concat_broadcasts(shapes, shape, axis)
    parts = list(xs)
    if any(wide):
        full = e.fresh(n.name)
        e.add("Shape", [xs[concat_reference(shapes, shape, axis)]], [full], f"{n.name}/shape")
        for k, s in enumerate(shapes):
            if wide[k]:
                parts[k] = _expanded(e, n, xs[k], full, k, int(s[axis - len(shape) + len(s)]),
                                     axis, len(shape))
    e.add("Concat", parts, [out], n.name, axis=_int(n.attrs["axis"]))


def _expanded(e: Emitter, n: Node, x: str, full: str, k: int, own: int, axis: int,
              rank: int) -> str:
    """``x`` Expanded to the shape ``full`` but for ``own`` on ``axis``."""
    def ints(name: str, *values: int) -> str:
        return e.constant(f"{n.name}.{name}", np.array(values, np.int64))
    pieces = [ints(f"size{k}", own)]
    if axis > 0:
        before = e.fresh(n.name)
        e.add("Slice", [full, ints("zero", 0), ints("axis", axis)], [before],
              f"{n.name}/before{k}")
        pieces.insert(0, before)
    if axis + 1 < rank:
        after = e.fresh(n.name)
        e.add("Slice", [full, ints("next", axis + 1), ints("end", rank)], [after],
              f"{n.name}/after{k}")
        pieces.append(after)
    target, wide = e.fresh(n.name), e.fresh(n.name)
    e.add("Concat", pieces, [target], f"{n.name}/target{k}", axis=0)
    e.add("Expand", [x, target], [wide], f"{n.name}/expand{k}")
    return wide


def lower_mean(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
               ins: Sequence[Node]) -> None:
    """An Add chain divided by the input count, like the PyTorch backend's `(a + b) / 2`:
    ONNX Runtime keeps Add in its blocked (NCHWc) conv layout, where `Mean` forces layout
    round trips around every join (measured: ~25 % slower on FractalNet)."""
    if len(xs) == 1:
        e.add("Identity", [xs[0]], [out], n.name)
        return
    acc = xs[0]
    for i, x in enumerate(xs[1:], 1):
        nxt = e.fresh(n.name)
        e.add("Add", [acc, x], [nxt], f"{n.name}/add{i}")
        acc = nxt
    count = e.constant(f"{n.name}.count", np.array(len(xs), np.float32))
    e.add("Div", [acc, count], [out], n.name)


def _join(op: str) -> Lowering:
    def lower(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
              ins: Sequence[Node]) -> None:
        e.add(op if len(xs) > 1 else "Identity", list(xs), [out], n.name)
    return lower


def lower_affine(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                 ins: Sequence[Node]) -> None:
    scale, shift = float(n.attrs["scale"]), float(n.attrs["shift"])  # type: ignore[arg-type]
    value = xs[0]
    if scale != 1:
        value_out = out if shift == 0 else e.fresh(n.name)
        k = e.constant(f"{n.name}.scale", np.array(scale, np.float32))
        e.add("Mul", [value, k], [value_out], n.name if shift == 0 else f"{n.name}/scale")
        value = value_out
    if shift != 0:
        b = e.constant(f"{n.name}.shift", np.array(shift, np.float32))
        e.add("Add", [value, b], [out], n.name)
    if scale == 1 and shift == 0:
        e.add("Identity", [value], [out], n.name)


def lower_hard_sigmoid(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                       ins: Sequence[Node]) -> None:
    """``clip(x * slope / 2 + 1/2, 0, 1)``, the slope read from its buffer (ONNX's
    HardSigmoid takes it as a constant attribute)."""
    half = e.constant(f"{n.name}.half", np.array(0.5, np.float32))
    scale, scaled, shifted = e.fresh(n.name), e.fresh(n.name), e.fresh(n.name)
    e.add("Mul", [ws[0], half], [scale], f"{n.name}/scale")
    e.add("Mul", [xs[0], scale], [scaled], f"{n.name}/mul")
    e.add("Add", [scaled, half], [shifted], f"{n.name}/add")
    low, high = (e.constant(f"{n.name}.{b}", np.array(v, np.float32))
                 for b, v in (("low", 0.0), ("high", 1.0)))
    e.add("Clip", [shifted, low, high], [out], n.name)


def lower_step(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
               ins: Sequence[Node]) -> None:
    """Inference form of the straight-through step: 1 where x > 0.5."""
    half = e.constant(f"{n.name}.threshold", np.array(0.5, np.float32))
    above = e.fresh(n.name)
    e.add("Greater", [xs[0], half], [above], f"{n.name}/greater")
    e.add("Cast", [above], [out], n.name, to=TensorProto.FLOAT)


def lower_slice(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                ins: Sequence[Node]) -> None:
    shape = ins[0].shape or ()
    axis = _int(n.attrs["axis"]) % len(shape)
    start, stop = slice_bounds(_int(shape[axis]), n.attrs)
    starts, ends, axes = (e.constant(f"{n.name}.{what}", np.array([v], np.int64))
                          for what, v in (("start", start), ("stop", stop), ("axis", axis)))
    e.add("Slice", [xs[0], starts, ends, axes], [out], n.name)


def lower_zeros(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                ins: Sequence[Node]) -> None:
    """[N, size] zeros, N read from the input at run time."""
    shape, batch, dims = e.fresh(n.name), e.fresh(n.name), e.fresh(n.name)
    e.add("Shape", [xs[0]], [shape], f"{n.name}/shape")
    first, second = (e.constant(f"{n.name}.at", np.array([i], np.int64)) for i in (0, 1))
    e.add("Slice", [shape, first, second], [batch], f"{n.name}/batch")
    size = e.constant(f"{n.name}.size", np.array([_int(n.attrs["size"])], np.int64))
    e.add("Concat", [batch, size], [dims], f"{n.name}/dims", axis=0)
    e.add("ConstantOfShape", [dims], [out], n.name,
          value=numpy_helper.from_array(np.zeros(1, np.float32), f"{n.name}.zero"))


def lower_scan(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
               ins: Sequence[Node]) -> None:
    """An ONNX Scan over the time axis (1), never unrolled: the states are carried, the step
    input is scanned, the step outputs are stacked."""
    assert n.body is not None
    body = e.body(n.body)
    step, *states = body.inputs
    outputs = []
    body.source = e.source  # the copies below are the scan's own nodes
    for value in body.outputs:  # each body output a fresh value, as Scan's outputs must be
        fresh = e.fresh(value.name)
        body.add("Identity", [value.name], [fresh], f"{n.name}/out")
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value)
        copy.name = fresh
        outputs.append(copy)
    y, *new_states = outputs
    graph = helper.make_graph(body.nodes, n.name, [*states, step], [*new_states, y])
    finals = [tuple_item(out, k) for k in range(1, len(states) + 1)]
    e.add("Scan", [*xs[1:], xs[0]], [*finals, out], n.name, body=graph, num_scan_inputs=1,
          scan_input_axes=[1], scan_output_axes=[1],
          scan_input_directions=[1 if n.attrs["reverse"] else 0],
          scan_output_directions=[1 if n.attrs["reverse"] else 0])


def lower_reshape(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                  ins: Sequence[Node]) -> None:
    """ONNX Reshape: 0 keeps an input axis (the batch and time axes), the rest are known."""
    lead = reshape_lead(ins[0].shape or ())
    sizes = [0] * lead + [int(d) for d in (n.shape or ())[lead:]]
    shape = e.constant(f"{n.name}.shape", np.array(sizes, np.int64))
    e.add("Reshape", [xs[0], shape], [out], n.name)


def lower_softmax(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                  ins: Sequence[Node]) -> None:
    e.add("Softmax", [xs[0]], [out], n.name, axis=_int(n.attrs["axis"]))


def lower_causal_mask(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                      ins: Sequence[Node]) -> None:
    """Where(column > row, -inf, x), rows and columns counted with Range over the run-time
    sizes of the last two axes."""
    shape = e.fresh(n.name)
    e.add("Shape", [xs[0]], [shape], f"{n.name}/shape")
    zero, step = (e.constant(f"{n.name}.{k}", np.array(v, np.int64))
                  for k, v in (("zero", 0), ("step", 1)))
    ranges = []
    for axis in (-2, -1):
        size, index = e.fresh(n.name), e.fresh(n.name)
        e.add("Gather", [shape, e.constant(f"{n.name}.axis", np.array(axis, np.int64))],
              [size], f"{n.name}/size")
        e.add("Range", [zero, size, step], [index], f"{n.name}/range")
        ranges.append(index)
    rows, mask = e.fresh(n.name), e.fresh(n.name)
    e.add("Unsqueeze", [ranges[0], e.constant(f"{n.name}.last", np.array([-1], np.int64))],
          [rows], f"{n.name}/rows")
    e.add("Greater", [ranges[1], rows], [mask], f"{n.name}/future")
    e.add("Where", [mask, e.constant(f"{n.name}.inf", np.array(-np.inf, np.float32)), xs[0]],
          [out], n.name)


def lower_permute(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
                  ins: Sequence[Node]) -> None:
    e.add("Transpose", [xs[0]], [out], n.name,
          perm=list(permute_axes(ins[0].shape or (), n.attrs)))


def tuple_item(value: str, index: int) -> str:
    """The ONNX value holding output ``index`` of the tuple-valued node whose first output
    is ``value`` (a node and its `item`s share a scope, so a function)."""
    return value if index == 0 else f"{value}#{index}"


def lower_item(e: Emitter, n: Node, xs: Sequence[str], ws: Sequence[str], out: str,
               ins: Sequence[Node]) -> None:
    e.add("Identity", [tuple_item(xs[0], _int(n.attrs["index"]))], [out], n.name)


def lower_declared(e: Emitter, how: OnnxLowering, call: OpCall, xs: Sequence[str],
                   ws: Sequence[str], out: str) -> None:
    """An op's declared lowering: its emit, or one node of a standard op or of the plugin's
    domain (whose function, where given, is added to the model once per distinct use)."""
    if how.emit is not None:
        how.emit(e, call, xs, ws, out)
        return
    assert how.op_type is not None
    attrs = dict(how.args(call)) if how.args is not None else {}
    op_type = how.op_type
    if how.domain:
        e.domains[how.domain] = how.opset
        if how.function is not None:
            op_type = _plugin_function(e, how, call, len(xs), len(ws), attrs)
            attrs = {}
    e.add(op_type, [*xs, *ws], [out], call.name, domain=how.domain, **attrs)


def _plugin_function(e: Emitter, how: OnnxLowering, call: OpCall, n_in: int, n_w: int,
                     attrs: dict[str, Any]) -> str:
    """The name of the plugin function computing ``call`` (its body written by the
    declared ``function`` for these attributes and shapes; one per distinct body)."""
    assert how.function is not None and how.op_type is not None
    body = Emitter(opset=e.opset, domains=e.domains, functions=e.functions)
    ins = [f"in{i}" for i in range(n_in)] + [f"w{i}" for i in range(n_w)]
    how.function(body, call, ins[:n_in], ins[n_in:], "out")
    for node in body.nodes:
        del node.metadata_props[:]
        node.name = ""
    same = [f for (d, _), f in e.functions.items() if d == how.domain
            and f.name.split("__")[0] == how.op_type and list(f.node) == list(body.nodes)]
    if same:
        return str(same[0].name)
    count = sum(1 for d, _ in e.functions if d == how.domain)
    name = how.op_type if not any(n == how.op_type for _, n in e.functions) \
        else f"{how.op_type}__{count + 1}"
    opsets = [helper.make_opsetid("", e.opset),
              *(helper.make_opsetid(d, v) for d, v in sorted(e.domains.items()))]
    e.functions[(how.domain, name)] = helper.make_function(
        how.domain, name, ins, ["out"], body.nodes, opsets)
    return name


LOWERINGS: dict[str, Lowering] = {
    "conv": lower_conv,
    "bn": lower_bn,
    "layernorm": lower_layernorm,
    "conv_transpose": lower_conv_t,
    "upsample": lower_upsample,
    "pad": lower_pad,
    "unsqueeze": lower_unsqueeze,
    "squeeze": lower_squeeze,
    "pixel_shuffle": lower_pixel_shuffle,
    "softmax": lower_softmax,
    "div": _simple("Div"),
    "matmul": _simple("MatMul"),
    "causal_mask": lower_causal_mask,
    "dropout": _simple("Identity"),  # inference: dropout is off
    "pad_mask": lower_pad_mask,
    "masked_fill": lower_masked_fill,
    "stochastic_depth": _simple("Identity"),  # inference: every branch kept, unscaled
    "maxpool": _pool("MaxPool"),
    "avgpool": _pool("AveragePool"),
    "gap": lower_gap,
    "flatten": _simple("Flatten", axis=1),
    "reduce_mean": _reduce("ReduceMean"),
    "reduce_sum": _reduce("ReduceSum", axes_input_from=13),
    "reduce_max": _reduce("ReduceMax"),
    "linear": lower_linear,
    "embedding": lower_embedding,
    "mean": lower_mean,  # inference: drop-path is off, a join is the mean of all inputs
    "sum": _join("Sum"),
    "max": _join("Max"),
    "concat": lower_concat,
    "mul": _simple("Mul"),
    "sub": _simple("Sub"),
    "affine": lower_affine,
    "hard_sigmoid": lower_hard_sigmoid,
    "step": lower_step,
    "slice": lower_slice,
    "zeros": lower_zeros,
    "scan": lower_scan,
    "item": lower_item,
    "reshape": lower_reshape,
    "permute": lower_permute,
}
