"""Reading trained weights (torch state_dict, .npz, .safetensors) and checking them against a
model's IR: missing, extra and mis-shaped tensors are one diagnostic that lists them all."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..compiler.diagnostics import E_WEIGHTS, Note, Span, SsnError, error, excerpt
from ..compiler.initializers import expected_tensors
from ..compiler.ir import Graph
from ..compiler.ops import ParamSpec

# torch adds this buffer to every BatchNorm; ssnc's IR does not model it.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def read_weights(path: str | os.PathLike[str],
                 expected: Mapping[str, ParamSpec] | None = None) -> dict[str, np.ndarray]:
    """Tensors by key from ``path``: a torch state_dict (.pt/.pth/.bin, loaded with
    ``weights_only=True``), an .npz archive, or a .safetensors file. An .npz is checked
    against ``expected`` from its headers before anything is decompressed: only tensors the
    model needs, of the shape it needs, are read (others come back as shape-only views)."""
    p = Path(path)
    where = Span.unknown(str(path))
    if not p.is_file():
        why = "not a regular file" if p.exists() else "no such file"
        raise error(E_WEIGHTS, f"cannot read weights from {path}: {why}", where)
    try:
        if p.suffix == ".npz":
            return _read_npz(p, expected or {}, where)
        if p.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(p)))
        import torch

        state = torch.load(p, map_location="cpu", weights_only=True)
    except SsnError:
        raise
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
            out[str(key)] = _from_torch(str(key), value, where)
    return out


def _from_torch(key: str, value: object, where: Span) -> np.ndarray:
    """A torch tensor as NumPy; half and bfloat16 widen to float32 (lossless)."""
    import torch

    assert isinstance(value, torch.Tensor)
    if value.is_meta:
        raise error(E_WEIGHTS, f"`{excerpt(key)}` is a meta tensor: it holds no values", where,
                    hint="save the state_dict after the weights are materialised")
    if value.dtype in (torch.bfloat16, torch.float16):
        value = value.float()
    if value.is_complex() or value.dtype == torch.bool:
        raise error(E_WEIGHTS, f"`{excerpt(key)}` has dtype {value.dtype}, not a real number "
                    "type", where)
    array: np.ndarray = value.detach().cpu().numpy()
    return array


_NPZ_HEADER_BYTES = 1 << 16  # a .npy header is far smaller; more is a malformed member


def _read_npz(p: Path, expected: Mapping[str, ParamSpec], where: Span) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(p) as archive:
        infos = archive.infolist()
        if len(infos) > len(expected) + 1000:
            raise error(E_WEIGHTS, f"{p} holds {len(infos):,} arrays; the model has "
                        f"{len(expected):,} tensors", where)
        for info in infos:
            key = info.filename.removesuffix(".npy")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
            if dtype.kind not in "fiu" or dtype.hasobject:
                raise error(E_WEIGHTS, f"`{excerpt(key)}` in {p} has dtype {dtype}, not a "
                            "real number type", where)
            size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            if not size <= info.file_size <= size + _NPZ_HEADER_BYTES:
                raise error(E_WEIGHTS, f"`{excerpt(key)}` in {p} declares {info.file_size:,} "
                            f"bytes for a {list(shape)} array of {dtype}", where,
                            hint="the archive is damaged or was not written by NumPy")
            spec = expected.get(key)
            if spec is None or tuple(shape) != spec.shape:
                out[key] = np.broadcast_to(np.zeros((), dtype), shape)  # shape only, no data
                continue
            with archive.open(info) as f:
                out[key] = np.lib.format.read_array(f, allow_pickle=False)
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
