"""Output files are written whole or not at all: into a temporary file beside the target,
then renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .compiler.diagnostics import E_OUTPUT, Span, SsnError, error


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file, then move it to ``path``; on any failure
    nothing is left behind and an existing ``path`` is untouched."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise error(E_OUTPUT, f"cannot write {path}: folder {folder} does not exist",
                    Span.unknown(str(path)))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except SsnError:
        raise
    except OSError as exc:
        raise error(E_OUTPUT, f"cannot write {path}: {exc.strerror or exc}",
                    Span.unknown(str(path))) from None
    finally:
        if tmp.exists():
            tmp.unlink()
