"""The compiler's own, deterministic parameter initialisation (NumPy only).

Each tensor's values depend only on the seed and its state_dict key, never on the order in
which a backend builds modules, so the PyTorch and ONNX backends hold bit-identical weights.

Initializers (PyTorch's defaults, so training behaves as users expect):
- ``kaiming_uniform``: U(-b, b), b = 1/sqrt(fan_in) — conv and linear weights
  (torch's kaiming_uniform_ with a = sqrt(5));
- ``fan_in_uniform``: U(-b, b), b = 1/sqrt(fan_in) — conv and linear biases;
- ``normal``: N(fill, scale²), N(0, 1) by default — embeddings, `param(...)` values;
- ``uniform``: U(fill, fill + scale) — `param(..., init = uniform(low, high))`;
- ``ones`` / ``zeros`` — BatchNorm scale / shift and running statistics;
- ``constant`` — the spec's ``fill`` value (a hard sigmoid's slope)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import numpy as np

from ..base.diagnostics import E_VALUE_LIMIT, error
from .ir import Graph
from .ops import OPS, ParamSpec
from .plugins import plugin_fault


def _generator(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF,
                                                                       *words])))


def initial_value(spec: ParamSpec, key: str, seed: int) -> np.ndarray:
    """The float32 initial value of one parameter or buffer."""
    if spec.init == "ones":
        return np.ones(spec.shape, dtype=np.float32)
    if spec.init == "zeros":
        return np.zeros(spec.shape, dtype=np.float32)
    if spec.init == "constant":
        return np.full(spec.shape, spec.fill, dtype=np.float32)
    rng = _generator(seed, key)
    op, dot, own = spec.init.partition(".")
    if dot:  # an op's own initializer (`blurpool.binomial`)
        value = np.asarray(OPS[op].initializers[own](spec, rng), dtype=np.float32)
        if value.shape != spec.shape:
            raise ValueError(f"initializer `{own}` gave shape {value.shape}, not {spec.shape}")
        return value
    if spec.init in ("kaiming_uniform", "fan_in_uniform"):
        bound = 1.0 / np.sqrt(max(spec.fan_in, 1))
        return rng.uniform(-bound, bound, spec.shape).astype(np.float32)
    if spec.init == "normal":
        return (spec.fill + spec.scale * rng.standard_normal(spec.shape)).astype(np.float32)
    if spec.init == "uniform":
        return (spec.fill + spec.scale * rng.uniform(0.0, 1.0, spec.shape)).astype(np.float32)
    raise ValueError(f"unknown initializer {spec.init!r}")


def expected_tensors(graph: Graph) -> dict[str, ParamSpec]:
    """Every tensor the model owns (parameters and buffers), by state_dict key: its parameter
    nodes, each once however many instances of a ``shared`` block read it."""
    return graph.tensors()


def initial_state(graph: Graph, seed: int = 0,
                  progress: Callable[..., None] | None = None) -> dict[str, np.ndarray]:
    """All initial values, by state_dict key; refused (E0404) before allocating when they
    would not fit in this machine's memory. ``progress("weights", done, total)`` follows the
    elements made."""
    tensors = expected_tensors(graph)
    need = 4 * sum(spec.numel for spec in tensors.values())
    have = _memory_bytes()
    if need > have:
        raise error(E_VALUE_LIMIT, f"the weights of `{graph.model}` need {need / 2**30:,.1f} "
                    f"GiB, more than this machine's {have / 2**30:,.1f} GiB of memory",
                    graph.scopes[0].span, hint="check the sizes given to conv/linear/embedding")
    out = {}
    done = 0
    for key, spec in tensors.items():
        try:
            out[key] = initial_value(spec, key, seed)
        except Exception as exc:
            op = OPS.get(spec.init.partition(".")[0])
            if "." not in spec.init or op is None or op.origin is None:
                raise
            raise plugin_fault(op, f"initializer `{spec.init}`", graph.first_reader(key).span,
                               exc) from None
        done += spec.numel
        if progress is not None:
            progress("weights", done, need // 4)
    return out


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40
