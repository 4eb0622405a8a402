"""The compiler's file I/O. Output files are written whole or not at all: into a temporary
file beside the target, then renamed over it. Only regular files are ever replaced, never an
input of the compile, and temporary files go away on SIGINT and SIGTERM too. Weights files
(torch state_dict, .npz, .safetensors) are read and checked against a model's IR: missing,
extra and mis-shaped tensors are one diagnostic that lists them all.

An ONNX model with external data is a pair. The data file is named by a hash of its bytes
(``NAME.onnx.<sha256[:16]>.data``) and moved into place before the ``.onnx`` that names it,
so every point of interruption leaves a consistent pair: the old one or the new one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import stat
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from .base.diagnostics import E_OUTPUT, E_WEIGHTS, Note, Span, SsnError, error, excerpt
from .base.options import flag_for, option_span
from .compiler.initializers import expected_tensors
from .compiler.ir import Graph
from .compiler.legacy import renamed_keys
from .compiler.ops import ParamSpec
from .extras import require_torch

if TYPE_CHECKING:
    import onnx

EXTERNAL_DATA_THRESHOLD = 1_900_000_000
"""Initializer bytes above which ONNX weights go to a data file (protobuf stops at 2 GiB)."""

_DATA_NAME = re.compile(r"\.[0-9a-f]{16}\.data")


def _refuse(path: str | os.PathLike[str], why: str, hint: str | None = None) -> SsnError:
    return error(E_OUTPUT, f"cannot write {path}: {why}", Span.unknown(str(path)), hint=hint)


def check_target(path: str | os.PathLike[str], inputs: Collection[Path] = ()) -> Path:
    """The real file ``path`` names (symlinks followed), refused with E0603 unless it is a
    regular file or absent, in an existing folder, and none of ``inputs``."""
    try:
        real = Path(os.path.realpath(path))
        info = os.stat(real) if os.path.lexists(real) else None
    except (OSError, ValueError) as exc:
        raise _refuse(path, getattr(exc, "strerror", None) or str(exc)) from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "a FIFO" if stat.S_ISFIFO(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise _refuse(path, f"it is {kind}; only regular files are replaced",
                      hint="name a file to create or replace")
    if not real.parent.is_dir():
        shown = real.parent if os.path.islink(path) else Path(path).parent
        raise _refuse(path, f"folder {shown} does not exist")
    for source in inputs:
        if real == Path(os.path.realpath(source)) or (
                info is not None and source.exists() and os.path.samefile(real, source)):
            raise _refuse(path, "it is an input of this compile",
                          hint="choose another output name")
    return real


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None], *,
                 inputs: Collection[Path] = ()) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then move it onto ``path`` (through a
    symlink, onto the file it names); on any failure or signal nothing is left behind and an
    existing file is untouched. Returns the path written."""
    target = check_target(path, inputs)
    with _signals_raise():
        tmp = _temporary(path, target)
        try:
            write(tmp)
            _publish(tmp, target, _mode_for(target))
        except SsnError:
            raise
        except OSError as exc:
            raise _refuse(path, exc.strerror or str(exc)) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return target


def write_onnx(model: onnx.ModelProto, path: str | os.PathLike[str], *,
               inputs: Collection[Path] = (),
               external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
               progress: Callable[..., None] | None = None) -> list[Path]:
    """Write ``model`` to ``path``; over ``external_data_threshold`` bytes of initializers the
    weights go to a content-named data file beside it (``progress("writing", bytes, total)``
    follows it). Returns the files written."""
    if external_data_threshold < 0:
        raise error(E_OUTPUT, f"the external-data threshold must be >= 0, not "
                    f"{external_data_threshold}", option_span("external_data_threshold"))
    target = check_target(path, inputs)
    tensors = list(model.graph.initializer)
    written = [target]
    with _signals_raise():
        data: Path | None = None
        if sum(t.ByteSize() for t in tensors) > external_data_threshold:
            model = _copy(model)
            data = _write_data(model, path, target, progress or (lambda *_: None))
            written.append(data)
        write_atomic(target, lambda tmp: write_bytes(tmp, model.SerializeToString(
            deterministic=True)), inputs=inputs)
        for old in target.parent.glob(glob_escape(target.name) + ".*.data"):
            if old != data and _DATA_NAME.fullmatch(old.name[len(target.name):]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)  # no model refers to it any more
    return written


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a ``write_atomic`` filler)."""
    path.write_bytes(data)


def write_tensors(path: Path, tensors: Mapping[str, np.ndarray], suffix: str) -> None:
    """Write ``tensors`` by key to ``path`` as ``suffix`` says: .safetensors, .npz, or a
    torch state_dict (.pt, .pth); E0603 for another (a ``write_atomic`` filler)."""
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    if suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(arrays, str(path))
    elif suffix == ".npz":
        with path.open("wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
    elif suffix in (".pt", ".pth"):
        require_torch(f"writing {suffix} weights")
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)
    else:
        raise error(E_OUTPUT, f"weights are written as .safetensors, .npz or .pt, not "
                    f"`{excerpt(suffix) or 'no suffix'}`", Span.unknown(str(path)))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = type(model)()
    out.CopyFrom(model)
    return out


def _write_data(model: onnx.ModelProto, path: str | os.PathLike[str], target: Path,
                progress: Callable[..., None]) -> Path:
    """Move the initializers' bytes of ``model`` into the content-named data file beside
    ``target`` (in place when this returns) and point ``model`` at it."""
    from onnx import external_data_helper, numpy_helper

    tmp = _temporary(path, target)
    try:
        digest = hashlib.sha256()
        offset = 0
        places = []
        total = sum(len(t.raw_data) or t.ByteSize() for t in model.graph.initializer)
        with open(tmp, "wb") as f:
            for tensor in model.graph.initializer:
                blob = tensor.raw_data or numpy_helper.to_array(tensor).tobytes()
                f.write(blob)
                digest.update(blob)
                places.append((tensor, offset, len(blob)))
                offset += len(blob)
                progress("writing", min(offset, total), total)
            f.flush()
            os.fsync(f.fileno())
        name = f"{target.name}.{digest.hexdigest()[:16]}.data"
        for tensor, start, length in places:
            external_data_helper.set_external_data(tensor, name, start, length)
            tensor.ClearField("raw_data")
            for field in ("float_data", "int32_data", "int64_data", "double_data",
                          "uint64_data", "string_data"):
                tensor.ClearField(field)
        final = target.with_name(name)
        _publish(tmp, final, _mode_for(target))  # the model's permissions: one pair
        return final
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _temporary(path: str | os.PathLike[str], target: Path) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _refuse(path, f"folder {target.parent} is not writable "
                            f"({exc.strerror or exc})") from None
    os.close(fd)
    return Path(name)


def _mode_for(target: Path) -> int:
    """The permissions an output gets: those of the file it replaces, else a new file's."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _publish(tmp: Path, final: Path, mode: int) -> None:
    """Give ``tmp`` the permissions ``mode``, then rename it onto ``final``."""
    os.chmod(tmp, mode)
    os.replace(tmp, final)


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived while an output was being written."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception while writing, so that cleanup runs (SIGINT
    already raises KeyboardInterrupt). Outside the main thread signals stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------- weights files

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
        require_torch(f"reading {p.name} (a torch checkpoint)")
        import torch

        state = torch.load(p, map_location="cpu", weights_only=True)
    except SsnError:
        raise
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
    """The tensors the model needs, as float32, or a diagnostic listing every mismatch.
    Keys saved before 0.2's naming change are read under their new names."""
    expected = expected_tensors(graph)
    renamed = renamed_keys(graph)
    given = {renamed.get(k, k) if k not in expected else k: v for k, v in tensors.items()
             if not k.endswith(_IGNORED_SUFFIXES)}
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
                    hint="were they saved from the same spec with the same "
                    + (f"{flag_for('set')} values?" if flag_for("set") else "model parameters?"))
    return {k: np.asarray(given[k], dtype=np.float32) for k in expected}


@contextmanager
def progress_display() -> Iterator[Callable[..., None]]:
    """``step(phase, done=None, total=None)``: on a terminal a rich progress bar (a
    percentage, or bytes while writing); otherwise, once the work has taken a second, one
    line per phase on stderr (short work stays quiet, so logs and goldens are stable)."""
    if not sys.stderr.isatty():
        start = time.monotonic()
        shown: list[str] = []

        def line(phase: str, done: int | None = None, total: int | None = None) -> None:
            if (not shown or shown[-1] != phase) and time.monotonic() - start >= 1.0:
                shown.append(phase)
                sys.stderr.write(f"ssnc: {phase} ({time.monotonic() - start:.1f} s)\n")

        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TaskProgressColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("compiling", total=None)

        def update(phase: str, done: int | None = None, total: int | None = None) -> None:
            counted = f"{phase} ({done:,})" if total is None and done else phase
            bar.update(task, description=counted, completed=done or 0, total=total)

        yield update
