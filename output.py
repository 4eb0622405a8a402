"""Output files are written whole or not at all: into a temporary file beside the target,
then renamed over it. Only regular files are ever replaced, never an input of the compile,
and temporary files go away on SIGINT and SIGTERM too.

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
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .compiler.diagnostics import E_OUTPUT, Span, SsnError, error

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
            _publish(tmp, target)
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
               external_data_threshold: int = EXTERNAL_DATA_THRESHOLD) -> list[Path]:
    """Write ``model`` to ``path``; over ``external_data_threshold`` bytes of initializers the
    weights go to a content-named data file beside it. Returns the files written."""
    if external_data_threshold < 0:
        raise error(E_OUTPUT, f"the external-data threshold must be >= 0, not "
                    f"{external_data_threshold}", Span.unknown("--external-data-threshold"))
    target = check_target(path, inputs)
    tensors = list(model.graph.initializer)
    written = [target]
    with _signals_raise():
        data: Path | None = None
        if sum(t.ByteSize() for t in tensors) > external_data_threshold:
            model = _copy(model)
            data = _write_data(model, path, target)
            written.append(data)
        write_atomic(target, lambda tmp: _write_bytes(tmp, model.SerializeToString(
            deterministic=True)), inputs=inputs)
        for old in target.parent.glob(glob_escape(target.name) + ".*.data"):
            if old != data and _DATA_NAME.fullmatch(old.name[len(target.name):]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)  # no model refers to it any more
    return written


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = type(model)()
    out.CopyFrom(model)
    return out


def _write_data(model: onnx.ModelProto, path: str | os.PathLike[str], target: Path) -> Path:
    """Move the initializers' bytes of ``model`` into the content-named data file beside
    ``target`` (in place when this returns) and point ``model`` at it."""
    from onnx import external_data_helper, numpy_helper

    tmp = _temporary(path, target)
    try:
        digest = hashlib.sha256()
        offset = 0
        places = []
        with open(tmp, "wb") as f:
            for tensor in model.graph.initializer:
                blob = tensor.raw_data or numpy_helper.to_array(tensor).tobytes()
                f.write(blob)
                digest.update(blob)
                places.append((tensor, offset, len(blob)))
                offset += len(blob)
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
        _publish(tmp, final)
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


def _publish(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the permissions a new file gets, then rename it onto ``final``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
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
