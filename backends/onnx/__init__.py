"""The ONNX backend. Its one door: `OnnxOptions` say how (checked by `check()`, naming the
option at fault), `export(graph, options, ...)` builds the model. Inside: `lower.py` (one
lowering per op), `build.py` (the model, flat or with functions), `deploy.py` (rewrites for
runtimes without loops or computed kernels), `precision.py` (fp16 and bf16) and
`exporter.py` (the order they run in). Nothing here imports torch, and importing this package
imports no onnx until `export` is called, so options are checked before any heavy import."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .options import BF16_OPSET, DEFAULT_OPSET, OPSETS, PRECISIONS, OnnxOptions

if TYPE_CHECKING:
    import numpy as np

    from ...compiler.ir import Graph

__all__ = ["BF16_OPSET", "DEFAULT_OPSET", "OPSETS", "PRECISIONS", "OnnxOptions", "export"]


def export(graph: Graph, options: OnnxOptions, *,
           tensors: Mapping[str, np.ndarray] | None = None, seed: int = 0,
           spec_text: str = "", version: str = "",
           progress: Callable[..., None] | None = None) -> Any:
    """``graph`` as an ``onnx.ModelProto`` in inference form (see `exporter.export_model`)."""
    from .exporter import export_model

    return export_model(graph, options, tensors=tensors, seed=seed, spec_text=spec_text,
                        version=version, progress=progress)
