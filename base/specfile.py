"""Reading a spec file: a regular file of bounded size, UTF-8, every failure a diagnostic
naming the file (or the import that asked for it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .diagnostics import (
    E_IMPORT_MISSING,
    E_SYNTAX,
    E_VALUE_LIMIT,
    Span,
    error,
    normalize_line_ends,
    position,
)

MAX_SPEC_BYTES = 16 * 1024 * 1024
"""The largest spec (or imported) file read; larger ones are refused before reading."""


def read_spec(path: Path, display: str, span: Span | None = None) -> str:
    """The text of a spec file: a regular file of at most MAX_SPEC_BYTES, UTF-8 (a BOM is
    allowed). Anything else is a diagnostic at ``span`` (an import) or naming the file."""
    where = span or Span.unknown(display)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(E_IMPORT_MISSING, f"cannot read {display}: not a regular file", where)
        if info.st_size > MAX_SPEC_BYTES:
            raise error(E_VALUE_LIMIT, f"{display} is {info.st_size:,} bytes, more than the "
                        f"limit of {MAX_SPEC_BYTES:,} for a spec", where)
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise error(E_IMPORT_MISSING, f"cannot read {display}: "
                    f"{getattr(exc, 'strerror', None) or exc}", where) from None
    if len(data) > MAX_SPEC_BYTES:
        raise error(E_VALUE_LIMIT, f"{display} is larger than the limit of "
                    f"{MAX_SPEC_BYTES:,} bytes for a spec", where)
    return decode_spec(data, display)


def decode_spec(data: bytes, display: str) -> str:
    """UTF-8 text (without a leading BOM); a bad byte is E0001 at its line and column."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8", errors="replace").removeprefix("\ufeff")
        line, col = position(before, len(before))
        text = normalize_line_ends(data.decode("utf-8", errors="replace"))
        raise error(E_SYNTAX, f"byte 0x{data[exc.start]:02x} is not valid UTF-8",
                    Span(file=display, line=line, col=col, end_line=line, end_col=col + 1),
                    hint="save the spec as UTF-8").with_sources({display: text}) from None
