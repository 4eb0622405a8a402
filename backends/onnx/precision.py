"""Half-precision ONNX: a float32 model rewritten so that its weights and compute are in
float16 or bfloat16, with its inputs and outputs in the IO precision (float32 by default, one
Cast at each boundary). Normalisation statistics and reductions that lose accuracy in half
precision stay in float32 islands (a Cast in, float32 parameters, a Cast out); LayerNormalization
keeps its own float32 statistics (``stash_type``). Function bodies and Scan bodies are
rewritten the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...base.diagnostics import E_VALUE_LIMIT, Span, error
from ...base.options import spell

if TYPE_CHECKING:
    import onnx

FP16_MAX = 65504.0

ISLANDS = {"BatchNormalization", "Softmax", "LogSoftmax", "GlobalAveragePool", "ReduceMean",
           "ReduceSum", "ReduceL2"}
"""Ops computed in float32 in a half-precision model: their first input is cast up, their
float parameters stay float32, their output is cast back."""


def convert(model: onnx.ModelProto, precision: str, io_precision: str) -> onnx.ModelProto:
    """``model`` (float32) with its compute in ``precision`` and its graph inputs and outputs
    in ``io_precision``; fp16 weights beyond ±65504 are refused (E0404), naming the tensor
    (an infinity, such as a causal mask's -inf, stays one)."""
    import onnx
    from onnx import TensorProto

    from .build import all_graphs

    if precision == "fp32" and io_precision == "fp32":
        return model
    types = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16,
             "bf16": TensorProto.BFLOAT16}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    target = types[precision]
    graph = out.graph
    kept = _island_parameters(out, list(all_graphs(out)))
    for tensor in graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in kept:
            _retype(tensor, target)
    # lazily: a rewrite copies a graph's nodes, so its bodies are found after it
    for g in all_graphs(out):
        _rewrite_nodes(g, target)
    for fn in out.functions:
        _rewrite_node_list(fn.node, target)
    _boundaries(graph, target, types[io_precision])
    return out


def _island_parameters(model: onnx.ModelProto, graphs: list[onnx.GraphProto]) -> set[str]:
    """Initializers read only as the float parameters of island ops (they stay float32),
    directly or through the inputs of model-local functions that use them that way."""
    functions = {fn.name: fn for fn in model.functions}
    island_inputs: dict[str, set[int]] = {}

    def kind(node: onnx.NodeProto, i: int) -> bool:
        if node.op_type in ISLANDS:
            return i > 0
        if node.op_type in functions:
            return i in inputs_of(node.op_type)
        return False

    def inputs_of(name: str) -> set[int]:  # ONNX functions never recurse: no cycle here
        if name not in island_inputs:
            fn = functions[name]
            island_inputs[name] = {k for k, formal in enumerate(fn.input)
                                   if _only({kind(n, i) for n in fn.node
                                             for i, x in enumerate(n.input) if x == formal})}
        return island_inputs[name]

    readers: dict[str, set[bool]] = {}
    for g in graphs:
        for node in g.node:
            for i, name in enumerate(node.input):
                readers.setdefault(name, set()).add(kind(node, i))
    return {name for name, kinds in readers.items() if _only(kinds)}


def _only(kinds: set[bool]) -> bool:
    return kinds == {True}


def _retype(tensor: onnx.TensorProto, target: int) -> None:
    """A float32 tensor converted in place to ``target``."""
    from onnx import TensorProto, helper, numpy_helper

    values = numpy_helper.to_array(tensor).astype(np.float32)
    if target == TensorProto.FLOAT16:
        finite = np.abs(values[np.isfinite(values)])  # ±inf (a mask's) is float16's too
        big = float(finite.max()) if finite.size else 0.0
        if big > FP16_MAX:
            raise error(E_VALUE_LIMIT, f"weight `{tensor.name}` holds {big:.6g}, beyond "
                        f"float16's ±{FP16_MAX:g}", Span.unknown(tensor.name),
                        hint=f"use {spell('precision', 'bf16')} (float32's range) or fp32")
        new = numpy_helper.from_array(values.astype(np.float16), tensor.name)
    else:
        new = helper.make_tensor(tensor.name, TensorProto.BFLOAT16, values.shape,
                                 _bfloat16_bits(values).tobytes(), raw=True)
    tensor.CopyFrom(new)


def _bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), as uint16 bits."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    return np.where(nan, np.uint16(0x7FC0), rounded)


def _rewrite_nodes(graph: onnx.GraphProto, target: int) -> None:
    from onnx import TensorProto

    _rewrite_node_list(graph.node, target)
    for info in [*graph.input, *graph.output, *graph.value_info]:
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type == TensorProto.FLOAT:
            tensor_type.elem_type = target


def _rewrite_node_list(nodes: Any, target: int) -> None:
    """Constants, casts and zeros in ``target``; islands wrapped in casts."""
    from onnx import TensorProto, helper

    rewritten: list[onnx.NodeProto] = []
    for node in nodes:
        for attr in node.attribute:
            if attr.type == attr.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                _retype(attr.t, target)  # Constant values, ConstantOfShape's fill
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = target
        if node.op_type not in ISLANDS:
            rewritten.append(node)
            continue
        up, result = f"{node.input[0]}/{node.name}/fp32", node.output[0]
        rewritten.append(helper.make_node("Cast", [node.input[0]], [up], name=f"{node.name}/up",
                                          to=TensorProto.FLOAT))
        node.input[0] = up
        node.output[0] = f"{result}/fp32"
        rewritten.append(node)
        rewritten.append(helper.make_node("Cast", [node.output[0]], [result],
                                          name=f"{node.name}/down", to=target))
    del nodes[:]  # a repeated protobuf field: rewritten in place
    nodes.extend(rewritten)


def _boundaries(graph: onnx.GraphProto, compute: int, io: int) -> None:
    """Graph inputs and outputs in the IO type, with a Cast where it differs from compute."""
    from onnx import helper

    if io == compute:
        return
    casts: list[onnx.NodeProto] = []
    for info in _retyped(graph.input, compute, io):
        _rename_reads(graph, info.name, f"{info.name}/cast")
        casts.append(helper.make_node("Cast", [info.name], [f"{info.name}/cast"],
                                      name=f"{info.name}/cast", to=compute))
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *existing])
    for info in _retyped(graph.output, compute, io):
        inner = f"{info.name}/compute"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == info.name:
                    node.output[i] = inner
        _rename_reads(graph, info.name, inner)
        graph.node.append(helper.make_node("Cast", [inner], [info.name],
                                           name=f"{info.name}/cast", to=io))


def _retyped(values: Any, compute: int, io: int) -> list[onnx.ValueInfoProto]:
    """The values of type ``compute`` among ``values``, now typed ``io``."""
    found = [v for v in values if v.type.tensor_type.elem_type == compute]
    for v in found:
        v.type.tensor_type.elem_type = io
    return found


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every read of value ``old`` in ``graph`` and its subgraphs reads ``new``."""
    todo = [graph]
    while todo:
        g = todo.pop()
        for node in g.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            todo.extend(a.g for a in node.attribute if a.type == a.GRAPH)
