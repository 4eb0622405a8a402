"""Values given on the command line: `--set KEY=VALUE` (evaluated as .ssn literals, never
names) and `--steps T` or `--steps INPUT=T`."""

from __future__ import annotations

from typing import Any

from ..base.diagnostics import E_OPTION, E_TYPE, Kind, Span, SsnError, error, excerpt
from ..base.options import positive
from ..grammar.parser import parse_expr, shift
from .elaborate import Elaborator
from .guard import guarded
from .values import Env, Value


def parse_value(text: str, where: str, offset: int = 0) -> Value:
    """A literal given on the command line (`--set widths=[16,32]`), evaluated safely:
    only literals, lists and arithmetic, never names. ``offset`` shifts reported columns."""
    def evaluate() -> Value:
        expr = shift(parse_expr(text, where), -offset)
        return Elaborator(Env({})).eval(expr, Env({"true": True, "false": False}))

    try:
        return guarded(evaluate, where)
    except SsnError as exc:
        first = exc.diagnostics[0]
        if first.code.kind is Kind.LIMIT:
            raise
        raise error(E_TYPE, f"`{excerpt(text)}` is not a value", first.span,
                    hint="write a number, true/false, a \"string\" or a [list]") from None


def parse_sets(sets: list[str] | None) -> tuple[dict[str, Any], dict[str, Span], dict[str, str]]:
    """`--set KEY=VALUE` options as values, the spans of their keys and their source texts."""
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    sources: dict[str, str] = {}
    for item in sets or []:
        key, eq, text = item.partition("=")
        key = key.strip()
        where = f"<--set {key or item}>"
        sources[where] = item
        if not eq or not key.isidentifier():
            raise error(E_OPTION, f"`--set {item}` is not KEY=VALUE", Span(
                file=where, line=1, col=1, end_line=1, end_col=len(item) + 1),
                hint="for example --set C=4 --set widths=[16,32]").with_sources(sources)
        try:
            values[key] = parse_value(text, where, offset=len(item) - len(text))
        except SsnError as exc:
            raise exc.with_sources(sources) from None
        spans[key] = Span(file=where, line=1, col=1, end_line=1, end_col=len(key) + 1)
    return values, spans, sources


def parse_steps(given: list[str] | None) -> int | dict[str, int] | None:
    """`--steps 12` (every time axis), or `--steps src=12 --steps tgt=9` (per input)."""
    if not given:
        return None
    if len(given) == 1 and "=" not in given[0] and given[0].strip().lstrip("-").isdigit():
        return positive("steps", int(given[0]))
    out: dict[str, int] = {}
    for item in given:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise error(E_OPTION, f"--steps {item}: give one length, or INPUT=LENGTH for each "
                        "input", Span.unknown("--steps"), hint="--steps src=12 --steps tgt=9")
        out[name.strip()] = positive("steps", int(value) if value.strip().lstrip("-").isdigit()
                                     else value)
    return out
