"""How a message names an option: as the library's keyword argument (`` `unroll` ``) or as
the command line's flag (``--unroll``). Checks name options only through `spell`, and the
CLI switches the spelling for the length of a command (`spelling`), so one check serves both
and the library never speaks CLI."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from .diagnostics import E_OPTION, Span, error

_FLAGS: ContextVar[Mapping[str, str]] = ContextVar("ssnc_option_flags",
                                                  default=MappingProxyType({}))


def spell(option: str, value: str | None = None) -> str:
    """``option`` as the user wrote it, with ``value`` if given: `` `steps` `` or
    `` `steps=7` `` from the library, ``--steps`` or ``--steps 7`` on the command line. A
    flag that stands for an option's value (``--functions`` for `flat=False`) is found as
    ``option=value``."""
    flags = _FLAGS.get()
    if value is not None and f"{option}={value}" in flags:
        return flags[f"{option}={value}"]
    flag = flags.get(option)
    if flag is None:
        return f"`{option}`" if value is None else f"`{option}={value}`"
    return flag if value is None else f"{flag} {value}"


def set_param(name: str) -> str:
    """How to give model parameter ``name`` a value: `` `name=VALUE` `` (a keyword argument of
    `Program.model`), or ``--set name=VALUE`` on the command line."""
    return spell("set", f"{name}=VALUE") if "set" in _FLAGS.get() else f"`{name}=VALUE`"


def flag_for(option: str) -> str | None:
    """The flag that gives ``option`` while a command runs, or None from the library."""
    return _FLAGS.get().get(option)


def option_span(option: str, text: str | None = None) -> Span:
    """Where a diagnostic about ``option`` points: the option itself, or the value ``text``
    given to it (shown under the message from the source named `<option>`)."""
    name = spell(option).strip("`")
    if text is None:
        return Span.unknown(name)
    return Span(file=f"<{name}>", line=1, col=1, end_line=1, end_col=len(text) + 1)


def positive(option: str, value: object) -> int:
    """``value`` if it is a positive integer, else E0601 naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(E_OPTION, f"{spell(option)} must be a positive integer, not {value!r}",
                    option_span(option))
    return value


@contextmanager
def spelling(flags: Mapping[str, str]) -> Iterator[None]:
    """Name the options in ``flags`` (option -> flag) by their flags while inside."""
    token = _FLAGS.set({**_FLAGS.get(), **flags})
    try:
        yield
    finally:
        _FLAGS.reset(token)
