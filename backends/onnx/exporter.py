"""The ONNX export, whole: lowering, the deploy rewrites and precision, in the one order that
is right (rewrites before precision, so fp16 and bf16 apply to the rewritten graph; fixed and
named dimensions last)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx

from ...compiler.ir import Graph
from ...compiler.spatial import spatial_axes
from ...compiler.stats import sequence_steps
from .build import build_model, fix_dims, name_dims
from .deploy import fold_weights, unroll_scans
from .options import OnnxOptions
from .precision import convert


def export_model(graph: Graph, options: OnnxOptions, *,
                 tensors: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                 spec_text: str = "", version: str = "",
                 progress: Callable[..., None] | None = None) -> onnx.ModelProto:
    """``graph`` as an ONNX model in inference form, with ``tensors`` (by state_dict key;
    default: the compiler's initial weights at ``seed``)."""
    options.check()
    fixed = {"N": options.batch} if options.batch is not None else {}
    if options.steps is not None:
        fixed["T"] = sequence_steps(graph, options.steps)
    names: dict[str, dict[int, str]] = {}
    if options.symbolic_hw:
        axes = spatial_axes(graph)
        names = dict(zip(graph.output_labels(), axes.outputs, strict=True))
        names.update(axes.inputs)
    proto = build_model(graph, dict(tensors) if tensors is not None else None, seed=seed,
                        flat=options.flat, opset=options.chosen_opset, spec_text=spec_text,
                        version=version, progress=progress)
    step = progress or (lambda *_: None)
    if options.unroll:
        step("unrolling")
        proto = unroll_scans(proto, fixed["T"])
    if options.fold_weights:
        step("folding")
        proto = fold_weights(proto)
    return name_dims(fix_dims(convert(proto, options.precision, options.io), fixed), names)
