"""Reading trained weights (torch state_dict, .npz, .safetensors) and checking them against a
model's IR: missing, extra and mis-shaped tensors are one diagnostic that lists them all."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..compiler.diagnostics import E_WEIGHTS, Note, Span, error
from ..compiler.initializers import expected_tensors
from ..compiler.ir import Graph

# torch adds this buffer to every BatchNorm; ssnc's IR does not model it.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def read_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Tensors by key from ``path``: a torch state_dict (.pt/.pth/.bin, loaded with
    ``weights_only=True``), an .npz archive, or a .safetensors file."""
    p = Path(path)
    where = Span.unknown(str(path))
    if not p.is_file():
        raise error(E_WEIGHTS, f"cannot read weights from {path}: no such file", where)
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if p.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(p)))
        import torch

        state = torch.load(p, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise error(E_WEIGHTS, f"cannot read {path}: {exc}", where,
                    hint="install the package named above, or save the weights as .npz") from None
    except Exception as exc:
        raise error(E_WEIGHTS, f"cannot read weights from {path}: {type(exc).__name__}: {exc}",
                    where, hint="expected a state_dict saved with torch.save, an .npz or a "
                    ".safetensors file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise error(E_WEIGHTS, f"{path} holds a {type(state).__name__}, not a state_dict",
                    where, hint="save `model.state_dict()`, not the model")
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            out[str(key)] = value.detach().cpu().numpy()
    return out


def check_weights(graph: Graph, tensors: dict[str, np.ndarray],
                  source: str) -> dict[str, np.ndarray]:
    """The tensors the model needs, as float32, or a diagnostic listing every mismatch."""
    expected = expected_tensors(graph)
    given = {k: v for k, v in tensors.items() if not k.endswith(_IGNORED_SUFFIXES)}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(given)
                       if tuple(given[k].shape) != expected[k].shape)
    if missing or extra or misshaped:
        notes = [Note(f"missing: {k} {list(expected[k].shape)}") for k in missing[:20]]
        notes += [Note(f"unexpected: {k} {list(given[k].shape)}") for k in extra[:20]]
        notes += [Note(f"mis-shaped: {k} is {list(given[k].shape)}, the model needs "
                       f"{list(expected[k].shape)}") for k in misshaped[:20]]
        counts = ", ".join(f"{n} {what}" for n, what in ((len(missing), "missing"),
                                                          (len(extra), "unexpected"),
                                                          (len(misshaped), "mis-shaped")) if n)
        raise error(E_WEIGHTS, f"the weights in {source} do not fit model `{graph.model}` "
                    f"({counts})", Span.unknown(source), notes=notes,
                    hint="were they saved from the same spec with the same --set values?")
    return {k: np.asarray(given[k], dtype=np.float32) for k in expected}
