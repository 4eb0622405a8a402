"""Source spans, diagnostics and the one exception tree every user-facing error goes through.

A diagnostic renders like rustc's: ``file:line:col: error[CODE]: message``, the source
line with a caret span, notes pointing at related spans, and a hint where one helps.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import PurePath

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ADVICE",
    "ALL_CODES",
    "CALL_CHAIN",
    "E_ARGUMENT",
    "E_BUDGET",
    "E_DUPLICATE",
    "E_EXPANSION",
    "E_EXTRA",
    "E_FAIL",
    "E_IMPORT_CYCLE",
    "E_IMPORT_ESCAPE",
    "E_IMPORT_MISSING",
    "E_INTERNAL",
    "E_NESTING",
    "E_NO_BASE_CASE",
    "E_NO_LOWERING",
    "E_NO_MODEL",
    "E_OPTION",
    "E_OUTPUT",
    "E_PLUGIN_FAULT",
    "E_PLUGIN_LOAD",
    "E_RECURSION_DEPTH",
    "E_RESERVED",
    "E_SHAPE",
    "E_SYNTAX",
    "E_TYPE",
    "E_UNKNOWN_NAME",
    "E_VALUE_LIMIT",
    "E_WEIGHTS",
    "LINE_END",
    "MAX_EXCERPT",
    "MAX_INT",
    "MAX_LINE",
    "MAX_MESSAGE",
    "MAX_NESTING",
    "STDLIB_PREFIX",
    "SYNONYMS",
    "W_UNREAD",
    "Code",
    "Diagnostic",
    "Kind",
    "Note",
    "Span",
    "SsnError",
    "SsnImportError",
    "SsnInternalError",
    "SsnLimitError",
    "SsnNameError",
    "SsnPluginError",
    "SsnShapeError",
    "SsnSyntaxError",
    "SsnTypeError",
    "SsnUsageError",
    "SsnWarning",
    "bounded",
    "call_note",
    "collect",
    "did_you_mean",
    "error",
    "excerpt",
    "lowering_error",
    "normalize_line_ends",
    "note_call_site",
    "position",
    "source_lines",
    "warning",
    "within"
]


class Span(BaseModel):
    """A half-open region of one source file; lines and columns are 1-based."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def position(self) -> str:
        """`fractalnet.ssn:7:18`, the file by name only: what compiled outputs record, so
        that they are the same from any working directory and path spelling ("" if none)."""
        if self.line <= 0:
            return ""
        name = self.file if self.file.startswith("<") else PurePath(self.file).name
        return f"{name}:{self.line}:{self.col}"

    @staticmethod
    def unknown(file: str = "<unknown>") -> Span:
        """A span for things with no source text (command-line values, built-ins)."""
        return Span(file=file, line=0, col=0, end_line=0, end_col=0)


class Kind(Enum):
    """The families of error; each code belongs to one, and each has an exception class."""

    SYNTAX = "syntax"
    NAME = "name"
    TYPE = "type"
    SHAPE = "shape"
    LIMIT = "limit"
    IMPORT = "import"
    USAGE = "usage"
    PLUGIN = "plugin"
    INTERNAL = "internal"
    WARNING = "warning"
    """Not an error: compilation goes on (exit status 0) and the diagnostic is shown."""


@dataclass(frozen=True)
class Code:
    """An error code: a stable identifier, its family and a one-line summary for the docs."""

    id: str
    kind: Kind
    summary: str

    @property
    def severity(self) -> str:
        """`warning` for W codes, which do not stop compilation; `error` for the rest."""
        return "warning" if self.kind is Kind.WARNING else "error"


# The registry of codes. docs/language.md lists them and tests/golden/diagnostics holds
# one rendered example per code.
E_SYNTAX = Code("E0001", Kind.SYNTAX, "the text is not valid .ssn")
E_UNKNOWN_NAME = Code("E0101", Kind.NAME, "a name that is not defined")
E_DUPLICATE = Code("E0102", Kind.NAME, "a name defined twice in one file")
E_NO_MODEL = Code("E0103", Kind.NAME, "the requested model does not exist")
E_RESERVED = Code("E0104", Kind.NAME, "a name that the chosen backend reserves")
E_ARGUMENT = Code("E0201", Kind.TYPE, "a call's arguments do not fit its parameters")
E_TYPE = Code("E0202", Kind.TYPE, "a value of the wrong kind")
# E0203 (an op declared but not lowered) is retired: every op is lowered. Not to be reused.
E_FAIL = Code("E0204", Kind.TYPE, "a rule's own check (`fail`) rejected its arguments")
E_SHAPE = Code("E0301", Kind.SHAPE, "tensor shapes that do not fit together")
E_NO_BASE_CASE = Code("E0401", Kind.LIMIT, "recursion without a reachable base case")
E_RECURSION_DEPTH = Code("E0402", Kind.LIMIT, "recursion deeper than the limit")
E_EXPANSION = Code("E0403", Kind.LIMIT, "a model that expands beyond the node limit")
E_VALUE_LIMIT = Code("E0404", Kind.LIMIT, "a number, list or file too large to use")
E_BUDGET = Code("E0405", Kind.LIMIT, "an evaluation that exceeds its step budget")
E_NESTING = Code("E0406", Kind.LIMIT, "text nested too deeply to parse or evaluate")
E_IMPORT_MISSING = Code("E0501", Kind.IMPORT, "an imported file that does not exist")
E_IMPORT_ESCAPE = Code("E0502", Kind.IMPORT, "an import that leaves the spec's folder tree")
E_IMPORT_CYCLE = Code("E0503", Kind.IMPORT, "files that import each other")
E_OPTION = Code("E0601", Kind.USAGE, "a command-line option or library argument that is wrong")
E_WEIGHTS = Code("E0602", Kind.USAGE, "a weights file that cannot be read or does not fit")
E_OUTPUT = Code("E0603", Kind.USAGE, "an output file that cannot be written")
E_EXTRA = Code("E0604", Kind.USAGE, "a feature whose optional dependency is not installed")
E_PLUGIN_LOAD = Code("E0701", Kind.PLUGIN, "an op plugin that cannot be loaded, or whose op "
                     "clashes with another")
E_PLUGIN_FAULT = Code("E0702", Kind.PLUGIN, "an op plugin whose rule or lowering failed")
E_NO_LOWERING = Code("E0703", Kind.PLUGIN, "an op with no lowering for the backend asked for")
E_INTERNAL = Code("E9001", Kind.INTERNAL, "a bug in ssnc")
W_UNREAD = Code("W0001", Kind.WARNING, "a value computed and never read: it is removed")

ALL_CODES: tuple[Code, ...] = (
    E_SYNTAX,
    E_UNKNOWN_NAME,
    E_DUPLICATE,
    E_NO_MODEL,
    E_RESERVED,
    E_ARGUMENT,
    E_TYPE,
    E_FAIL,
    E_SHAPE,
    E_NO_BASE_CASE,
    E_RECURSION_DEPTH,
    E_EXPANSION,
    E_VALUE_LIMIT,
    E_BUDGET,
    E_NESTING,
    E_IMPORT_MISSING,
    E_IMPORT_ESCAPE,
    E_IMPORT_CYCLE,
    E_OPTION,
    E_WEIGHTS,
    E_OUTPUT,
    E_EXTRA,
    E_PLUGIN_LOAD,
    E_PLUGIN_FAULT,
    E_NO_LOWERING,
    E_INTERNAL,
    W_UNREAD,
)

# Limits every phase shares (docs/language.md, "Limits").
MAX_INT = 2**63 - 1
"""The largest integer a spec may hold: no tensor size, count or attribute needs more."""

MAX_NESTING = 12_000
"""The deepest parse tree accepted (a 10,000-term `>>` chain nests this deep). Deeper text is
refused with E0406 before anything recursive walks it."""

MAX_EXCERPT = 40
"""Characters of a token or value echoed in a message; longer ones are cut."""

MAX_LINE = 100
"""Characters of a source line shown under a diagnostic (a window around its span)."""

LINE_END = re.compile(r"\r\n?|\n")
"""A line end in spec text: `\\n`, `\\r\\n` or a lone `\\r` (old Mac files), the three that
editors and the Language Server Protocol count. Other Unicode breaks (form feed, U+2028) are
not line ends in .ssn, so every part of ssnc counts lines with this, never `str.splitlines`."""


def normalize_line_ends(text: str) -> str:
    """``text`` with each `\\r\\n` and lone `\\r` written as `\\n`. Every line and column
    stays where an editor shows it in the original, so positions need no mapping back."""
    return LINE_END.sub("\n", text) if "\r" in text else text


def source_lines(text: str) -> list[str]:
    """The lines of ``text`` without their ends (as `str.splitlines`, for `LINE_END` only)."""
    lines = LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character ``offset`` of ``text``."""
    before = LINE_END.split(text[:offset])
    return len(before), len(before[-1]) + 1


MAX_MESSAGE = 400
"""Characters of one message, note or hint; longer texts are cut."""


def bounded(text: str) -> str:
    """``text`` cut to MAX_MESSAGE characters."""
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def excerpt(text: str) -> str:
    """``text`` for a message: cut to a bounded length, non-printable characters escaped."""
    if len(text) > MAX_EXCERPT:
        text = text[:MAX_EXCERPT - 1] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


@dataclass(frozen=True)
class Note:
    """A secondary message, optionally pointing at a related span."""

    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    """One error: its code, message, primary span, related notes and an optional hint."""

    code: Code
    message: str
    span: Span
    notes: tuple[Note, ...] = ()
    hint: str | None = None

    def __post_init__(self) -> None:
        # texts are bounded: a message never echoes a megabyte-long name in full
        object.__setattr__(self, "message", bounded(self.message))
        object.__setattr__(self, "notes", tuple(
            n if len(n.message) <= MAX_MESSAGE else Note(bounded(n.message), n.span)
            for n in self.notes))
        if self.hint is not None:
            object.__setattr__(self, "hint", bounded(self.hint))

    def render(self, sources: Mapping[str, str]) -> str:
        """Render as text: the header line, the source excerpt with carets, notes, hint."""
        where = str(self.span) if self.span.line > 0 else self.span.file
        out = [f"{where}: {self.code.severity}[{self.code.id}]: {self.message}"]
        out.extend(_excerpt(self.span, sources))
        for note in self.notes:
            if note.span is not None and note.span.line > 0:
                out.append(f"  = note: {note.message} ({note.span})")
                out.extend(_excerpt(note.span, sources))
            else:
                out.append(f"  = note: {note.message}")
        if self.hint:
            out.append(f"  = hint: {self.hint}")
        return "\n".join(out)


def _excerpt(span: Span, sources: Mapping[str, str]) -> list[str]:
    text = sources.get(span.file)
    if text is None or span.line <= 0:
        return []
    lines = source_lines(text)
    if span.line > len(lines):
        return []
    line = lines[span.line - 1].rstrip().expandtabs(1)
    line = "".join(c if c.isprintable() else "\ufffd" for c in line)  # one column each
    width = len(str(span.line))
    start = max(span.col, 1)
    end = span.end_col if span.end_line == span.line and span.end_col > start else start + 1
    end = min(max(end, start + 1), max(len(line) + 2, start + 1))
    if len(line) > MAX_LINE:  # a window around the span, so huge lines stay readable
        first = max(0, min(start - 1 - MAX_LINE // 4, len(line) - MAX_LINE))
        shown = line[first:first + MAX_LINE]
        lead = "…" if first > 0 else ""
        line = lead + shown + ("…" if first + MAX_LINE < len(line) else "")
        start = start - first + len(lead)
        end = min(end - first + len(lead), len(lead) + len(shown) + 2)
    gutter = " " * width
    return [
        f"{gutter} |",
        f"{span.line} | {line}",
        f"{gutter} | {' ' * (start - 1)}{'^' * max(end - start, 1)}",
    ]


class SsnError(Exception):
    """Raised with one or more diagnostics; the CLI renders them and exits with status 1."""

    kind: Kind = Kind.INTERNAL

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: Mapping[str, str] | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources: dict[str, str] = dict(sources or {})
        super().__init__("\n".join(d.message for d in self.diagnostics))

    @property
    def code(self) -> str:
        """The code of the first diagnostic, which tests and callers usually match on."""
        return self.diagnostics[0].code.id

    def render(self, action: str = "compile") -> str:
        """All diagnostics rendered, separated by blank lines, with a closing count (``could
        not <action>``)."""
        parts = [d.render(self.sources) for d in self.diagnostics]
        n = len(self.diagnostics)
        parts.append(f"error: could not {action} ({n} error{'s' if n != 1 else ''})")
        return "\n\n".join(parts[:-1]) + "\n\n" + parts[-1]

    def with_sources(self, sources: Mapping[str, str]) -> SsnError:
        """Attach the texts the spans point into (added where missing) and return self."""
        for name, text in sources.items():
            self.sources.setdefault(name, text)
        return self


class SsnSyntaxError(SsnError):
    """The text does not parse."""

    kind = Kind.SYNTAX


class SsnNameError(SsnError):
    """A name is unknown or defined twice."""

    kind = Kind.NAME


class SsnTypeError(SsnError):
    """A value of the wrong kind, or a call whose arguments do not fit."""

    kind = Kind.TYPE


class SsnShapeError(SsnError):
    """Tensor shapes that do not fit together."""

    kind = Kind.SHAPE


class SsnLimitError(SsnError):
    """A recursion or expansion limit exceeded."""

    kind = Kind.LIMIT


class SsnImportError(SsnError):
    """An import that is missing, cyclic, or outside the spec's folder tree."""

    kind = Kind.IMPORT


class SsnUsageError(SsnError):
    """A wrong option given on the command line or to a library call."""

    kind = Kind.USAGE


class SsnPluginError(SsnError):
    """An op plugin that cannot be loaded, that clashes, that fails, or that lacks a
    lowering."""

    kind = Kind.PLUGIN


class SsnInternalError(SsnError):
    """A bug in ssnc, reported as a diagnostic instead of a traceback."""

    kind = Kind.INTERNAL


_CLASSES: dict[Kind, type[SsnError]] = {
    Kind.SYNTAX: SsnSyntaxError,
    Kind.NAME: SsnNameError,
    Kind.TYPE: SsnTypeError,
    Kind.SHAPE: SsnShapeError,
    Kind.LIMIT: SsnLimitError,
    Kind.IMPORT: SsnImportError,
    Kind.USAGE: SsnUsageError,
    Kind.PLUGIN: SsnPluginError,
    Kind.INTERNAL: SsnInternalError,
}


def lowering_error(backend: str, node_name: str, op: str, span: Span,
                   exc: Exception) -> SsnError:
    """A lowering that failed (a bug), as torch.fx reports it: "while lowering %node", at the
    node's spec position."""
    return error(E_INTERNAL, f"internal error in the {backend} backend while lowering "
                 f"%{node_name} ({op}): {type(exc).__name__}: {exc}", span,
                 notes=[Note("please report this with the spec and command that caused it")])


def error(
    code: Code,
    message: str,
    span: Span,
    *,
    notes: Iterable[Note] = (),
    hint: str | None = None,
) -> SsnError:
    """Build the exception of the code's family holding one diagnostic."""
    diag = Diagnostic(code, message, span, tuple(notes), hint)
    return _CLASSES[code.kind]([diag])


def warning(code: Code, message: str, span: Span, *, notes: Iterable[Note] = (),
            hint: str | None = None) -> Diagnostic:
    """A diagnostic that does not stop compilation (a W code)."""
    assert code.kind is Kind.WARNING, code
    return Diagnostic(code, message, span, tuple(notes), hint)


class SsnWarning(UserWarning):
    """A W-code diagnostic, as the library reports it (`warnings.warn`); ``diagnostic``
    holds it, and the message is its rendered text."""

    def __init__(self, diagnostic: Diagnostic, sources: Mapping[str, str]):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.render(sources))


def collect(diagnostics: Sequence[Diagnostic]) -> SsnError:
    """One exception for several diagnostics, typed by the first one's family."""
    return _CLASSES[diagnostics[0].code.kind](diagnostics)


SYNONYMS = {
    "deconv": "conv_transpose", "convt": "conv_transpose", "conv_t": "conv_transpose",
    "upconv": "conv_transpose", "transposed_conv": "conv_transpose",
    "conv2d_transpose": "conv_transpose", "interpolate": "upsample", "resize": "upsample",
    "upsampling": "upsample", "swish": "silu", "hard_swish": "hardswish", "clamp": "clip",
    "batchnorm": "bn", "batch_norm": "bn", "layer_norm": "layernorm", "dense": "linear",
    "fc": "linear", "global_avg_pool": "gap", "transpose": "permute", "leakyrelu": "leaky_relu",
    "attention": "mha", "multihead_attention": "mha", "bmm": "matmul",
    "cross_attention": "cross_mha", "transformer_decoder_layer": "decoder_block",
    "droppath": "stochastic_depth", "drop_path": "stochastic_depth",
    "mean_over": "reduce_mean", "amax": "reduce_max",
}
"""Names other frameworks use for an op or rule, and ssnc's name for it."""

ADVICE = {
    "expand": "ssnc broadcasts where values meet: `x + param([C])`, or `concat(param([1, D]), "
              "x, axis = \"T\")` for a class token (docs/language.md, Broadcasting)",
    "broadcast_to": "ssnc broadcasts where values meet (docs/language.md, Broadcasting)",
    "tile": "ssnc broadcasts where values meet (docs/language.md, Broadcasting)",
    "view": "write `reshape([sizes])`",
}
"""Names other frameworks use for what ssnc does another way, and what to write instead:
a hint, never a near name of another kind."""


def did_you_mean(name: str, candidates: Iterable[str], near: bool = True) -> str | None:
    """A hint naming the closest candidate, if one is close enough (``near``), or what other
    frameworks call by that name (`deconv` is `conv_transpose`)."""
    known = set(candidates)
    if name.lower() in ADVICE:
        return ADVICE[name.lower()]
    other = SYNONYMS.get(name.lower())
    if other is not None and other in known:
        return f"did you mean `{other}`?"
    if not near:
        return None
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


STDLIB_PREFIX = "<stdlib>"


CALL_CHAIN = 3
"""How many calls that led to an error inside a rule its diagnostic notes, innermost first."""


def note_call_site(exc: SsnError, rule: str, display: tuple[tuple[str, str], ...], span: Span,
                   verb: str = "called") -> SsnError:
    """An error raised inside a rule (the user's or the standard library's) also points at
    the user's call that led there, and at the calls around it up to `CALL_CHAIN` of them;
    calls inside the standard library are not the user's and are left out."""
    first = exc.diagnostics[0]
    noted = call_note(first, rule, display, span, verb)
    if noted is not first:
        exc.diagnostics = (noted, *exc.diagnostics[1:])
    return exc


def call_note(diag: Diagnostic, rule: str, display: tuple[tuple[str, str], ...], span: Span,
              verb: str = "called") -> Diagnostic:
    """``diag`` with a note at the call of ``rule`` at ``span`` that led to it, unless that
    call is in the standard library, holds the diagnostic's own span, or the chain of such
    notes is `CALL_CHAIN` long already (then ``diag`` itself)."""
    chain = [n for n in diag.notes if n.message.startswith("in `")]
    if span.file.startswith(STDLIB_PREFIX) or within(diag.span, span) \
            or len(chain) >= CALL_CHAIN:
        return diag
    args = ", ".join(f"{k}={v}" for k, v in display)
    return replace(diag, notes=(*diag.notes, Note(f"in `{rule}({args})`, {verb} from here",
                                                  span)))


def within(inner: Span, outer: Span) -> bool:
    """Whether ``inner`` lies inside ``outer`` (an error at a call itself, a call inside a
    value's text)."""
    return (inner.file == outer.file
            and (inner.line, inner.col) >= (outer.line, outer.col)
            and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col))
