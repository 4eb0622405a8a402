"""Generated source made live: executed into a module (`build_module`), loaded with the
compiler's initial or given weights (`to_torch`), exported with `torch.export`, and fed with
deterministic example inputs."""

from __future__ import annotations

import linecache
import sys
import types

import numpy as np
import torch
from torch import nn

from ...base.diagnostics import E_OPTION, Span, error
from ...compiler.initializers import expected_tensors, initial_state
from ...compiler.ir import Graph
from ...compiler.stats import example_shape, time_symbols
from .model import Units
from .source import generate_source

_counter = [0]


def build_module(graph: Graph, *, origin: str = "", version: str = "", drop_mode: str = "batch",
                 global_ratio: float = 0.5, drop_seed: int = 0,
                 units: Units | None = None) -> nn.Module:
    """Execute the generated source and instantiate its class (weights as torch makes them);
    ``units`` as `generate_source` takes them."""
    source = generate_source(graph, origin=origin, version=version, units=units)
    _counter[0] += 1
    filename = f"<ssnc:{graph.model}:{_counter[0]}>"  # graph.model is an ssn NAME
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"ssnc_generated_{_counter[0]}")
    module.__dict__["__file__"] = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code
    sys.modules[module.__name__] = module  # importable: torch.export and pickle look it up
    cls = module.__dict__["MODEL"]
    instance: nn.Module = cls(drop_mode=drop_mode, global_ratio=global_ratio,
                              drop_seed=drop_seed)
    return instance


def load_tensors(module: nn.Module, tensors: dict[str, np.ndarray]) -> None:
    """Copy ``tensors`` (by state_dict key) into ``module``; every key must exist with its shape."""
    state = module.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            target = state[key]
            if tuple(target.shape) != value.shape:
                raise ValueError(f"{key}: expected {tuple(target.shape)}, got {value.shape}")
            target.copy_(torch.from_numpy(np.require(value, requirements="C")))  # 0-d stays 0-d


def to_torch(graph: Graph, *, seed: int = 0, tensors: dict[str, np.ndarray] | None = None,
             origin: str = "", version: str = "", drop_mode: str = "batch",
             global_ratio: float = 0.5, drop_seed: int | None = None,
             units: Units | None = None) -> nn.Module:
    """The model as an nn.Module holding the compiler's initial weights at ``seed`` (or
    ``tensors``, checked by the caller); ``units``: rule instances emitted as submodules
    whose own forward computes them (`generate_source`)."""
    module = build_module(graph, origin=origin, version=version, drop_mode=drop_mode,
                          global_ratio=global_ratio,
                          drop_seed=seed if drop_seed is None else drop_seed, units=units)
    values = tensors if tensors is not None else initial_state(graph, seed)
    expected = set(expected_tensors(graph))
    present = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    assert present == expected, sorted(present ^ expected)[:5]
    load_tensors(module, values)
    object.__setattr__(module, "ssnc_ir", graph)  # what ssnc.distributed plans from
    return module



def generated_ir(module: object, caller: str) -> Graph:
    """The IR a live module was generated from (`Model.to_torch` keeps it); E0601 naming
    ``caller`` for any other module."""
    graph = getattr(module, "ssnc_ir", None)
    if not isinstance(graph, Graph):
        raise error(E_OPTION, f"{caller}() takes a module that ssnc generated (from "
                    f"`Model.to_torch`), not a {type(module).__name__}",
                    Span.unknown(f"<{caller}>"),
                    hint="build it with ssnc.load(spec).model().to_torch()")
    return graph


def example_inputs(graph: Graph, batch: int = 2, steps: int = 5) -> tuple[torch.Tensor, ...]:
    """Deterministic inputs of the model's types, one per input in order (token ids below
    the vocabulary for `tokens`)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for name in graph.inputs:
        node = graph[name]
        shape = example_shape(node, batch, steps)
        if node.dtype == "i64":
            vocab = node.attrs.get("vocab")
            out.append(torch.randint(0, vocab if isinstance(vocab, int) else 2, shape,
                                     generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


def example_input(graph: Graph, batch: int = 2, steps: int = 5) -> torch.Tensor:
    """The deterministic input of a model that has one (`example_inputs` for several)."""
    if len(graph.inputs) != 1:
        raise ValueError(f"model `{graph.model}` has {len(graph.inputs)} inputs: use "
                         "example_inputs")
    return example_inputs(graph, batch, steps)[0]


def export_program(graph: Graph, module: nn.Module) -> torch.export.ExportedProgram:
    """A ``torch.export`` program of ``module`` (compiled from ``graph``) in eval mode, with
    a dynamic batch (and time) dimension. Named outputs come out as a dict: a saved program
    is loaded without the generated class, so it cannot hold that named tuple."""
    module.eval()
    xs = example_inputs(graph)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    times = {symbol: torch.export.Dim(f"time_{symbol}", min=1, max=1 << 20)
             for symbol in time_symbols(graph).values()}  # one per input's own time axis
    dims = tuple({0: batch, **{k: times[d] for k, d in enumerate(graph[i].shape or ())
                               if isinstance(d, str) and d in times}}
                 for i in graph.inputs)
    shapes: tuple[object, ...] = dims
    if graph.output_names:  # on the instance, so the state_dict keys stay the model's
        named = type(module).forward
        module.forward = types.MethodType(
            lambda self, *xs: named(self, *xs)._asdict(), module)
        shapes = (dims,)  # the wrapper takes the inputs as one `*xs`
    try:
        return torch.export.export(module, xs, dynamic_shapes=shapes)
    finally:
        module.__dict__.pop("forward", None)
