"""What a literal token means (numbers, strings, a lambda's head), for both parsers: lark's
transformer and the descent parser read the same text the same way."""

from __future__ import annotations

from ..base.diagnostics import E_VALUE_LIMIT, MAX_INT, Span, SsnError, error, excerpt


def number(text: str) -> int | float | None:
    """The value of a NUMBER token; None for an integer above MAX_INT (a diagnostic)."""
    if any(ch in text for ch in ".eE"):
        return float(text)
    if len(text.lstrip("0")) > len(str(MAX_INT)) or int(text) > MAX_INT:
        return None
    return int(text)


def too_large(text: str, span: Span) -> SsnError:
    """The diagnostic for an integer literal above MAX_INT, at its token."""
    return error(E_VALUE_LIMIT, f"the integer {excerpt(text)} is too large "
                 f"({len(text):,} digits)", span,
                 hint=f"integers in a spec are at most 2**63 - 1 = {MAX_INT:,}")


def unquote(text: str) -> str:
    """The value of a STRING token: quotes removed, `\\"` and `\\\\` unescaped."""
    return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def lambda_params(head: str) -> tuple[str, ...]:
    """The parameters of a `(x, *rest) =>` head, as written (`*` kept)."""
    inner = head[head.index("(") + 1 : head.rindex(")")]
    return tuple(p.strip() for p in inner.split(",") if p.strip())


def lambda_head(head: str) -> tuple[tuple[str, ...], bool] | None:
    """A lambda head's parameter names and whether the last collects the rest; None where a
    `*` is not on the last parameter (a diagnostic)."""
    params = lambda_params(head)
    starred = [i for i, p in enumerate(params) if p.startswith("*")]
    if starred and starred != [len(params) - 1]:
        return None
    return tuple(p.lstrip("*") for p in params), bool(starred)
