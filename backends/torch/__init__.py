"""PyTorch backend: the IR becomes readable Python source for an ``nn.Module`` — the module
`to_torch()` returns is that very source, executed — one lowering per op.

The generated ``forward`` is straight-line code in eval mode (no graph walking at run time,
no graph breaks under ``torch.compile``). In training, droppable joins follow FractalNet's
drop-path: in batch mode the paths a mini-batch drops are not computed at all; in sample mode
every path is computed and masked per sample. Submodules sit at the IR's scope paths, so
state_dict keys are names like ``stage2.fractal.col3.unit2.conv.weight``.

Inside: `lower.py` (one lowering per op), `plan.py` (drop-path's plan, from the IR's fractal
facts), `emit.py` (the one emitter every piece of code is written with), `classes.py` (rule
instances as submodule classes), `model.py` (the model's class), `source.py` (the text
around them) and `module.py` (the source made live). Its door: `generate_source`, `to_torch`,
`export_program`."""

from __future__ import annotations

from .lower import LOWERINGS, Lowered, droppable
from .module import (
    build_module,
    example_input,
    example_inputs,
    export_program,
    load_tensors,
    to_torch,
)
from .source import RUNTIME_MARKER, class_name_for, generate_source, runtime_source

__all__ = ["LOWERINGS", "RUNTIME_MARKER", "Lowered", "build_module", "class_name_for",
           "droppable", "example_input", "example_inputs", "export_program",
           "generate_source", "load_tensors", "runtime_source", "to_torch"]
