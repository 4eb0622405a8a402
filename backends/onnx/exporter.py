"""The ONNX export, whole: lowering, the deploy rewrites and precision, in the one order that
is right (rewrites before precision, so fp16 and bf16 apply to the rewritten graph; fixed and
named dimensions last)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx

from ...base.diagnostics import E_OPTION, error
from ...base.options import option_span, spell
from ...compiler.inference import fold_for_inference
from ...compiler.initializers import initial_state
from ...compiler.ir import Graph
from ...compiler.spatial import spatial_axes
from ...compiler.stats import time_lengths
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
    if options.fold_bn:
        state = dict(tensors) if tensors is not None else initial_state(graph, seed)
        graph, folded, _ = fold_for_inference(graph, state)
        tensors = folded
    fixed = {"N": options.batch} if options.batch is not None else {}
    lengths = time_lengths(graph, options.steps) if options.steps is not None else {}
    fixed.update(lengths)
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
        if len(set(lengths.values())) != 1:
            raise error(E_OPTION, f"{spell('unroll')} writes every time loop out to one "
                        f"length, but the model's time axes are given {sorted(lengths.values())}"
                        if lengths else f"{spell('unroll')} needs a fixed sequence length",
                        option_span("unroll"), hint=f"give every input the same "
                        f"{spell('steps')}")
        proto = unroll_scans(proto, next(iter(lengths.values())))
    if options.fold_weights:
        step("folding")
        proto = fold_weights(proto)
    return name_dims(fix_dims(convert(proto, options.precision, options.io), fixed), names)
