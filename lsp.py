"""`ssnc lsp`: a Language Server Protocol server over stdio (pygls, the `lsp` extra).

`Analysis` does the work without pygls (and is tested so): the same diagnostics as `ssnc
check`, for the open file and the files it imports; hover on an op, a rule or an op's use
in a model (its output shape, parameters and MACs, each place a rule puts it); go to
definition into the file, imported files and the standard library; the outline; `ssnc
fmt`'s layout. Positions are converted to LSP's 0-based lines and UTF-16 columns. The
server keeps serving whatever one request does: a failure is logged and answered empty."""

from __future__ import annotations

import itertools
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .api import Model, Program, format_spec, loads
from .base.diagnostics import (
    E_SYNTAX,
    STDLIB_PREFIX,
    Diagnostic,
    Span,
    SsnError,
    source_lines,
    within,
)
from .compiler.elaborate import Limits
from .compiler.guard import guarded
from .compiler.ops import OPS, fmt_shape
from .compiler.stats import macs, param_count, summarize, time_symbols
from .compiler.values import Rule
from .grammar import ast
from .grammar.parser import parse
from .lsp_text import (
    Range,
    attr_detail,
    depth0_commas,
    from_utf16,
    head,
    open_call,
    path_of,
    uri_of,
    uses,
    utf16,
    walk,
)

__all__ = ["DOCS", "LOG", "Analysis", "Found", "Range", "Superseded", "from_utf16", "path_of",
           "serve", "uri_of", "utf16"]

LOG = logging.getLogger("ssnc.lsp")
DOCS = "https://github.com/ssnc/ssnc/blob/main/docs/language.md#diagnostics"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ITEM = re.compile(r"(def|model|import)\b")
_HEAD = re.compile(r"(def|model)\s+([A-Za-z_][A-Za-z0-9_]*)")


class Superseded(Exception):  # noqa: N818 (a signal, not an error)
    """A check stopped because a newer version of its document came."""


@dataclass
class Found:
    """What the analysis says of one document: its diagnostics by file, and the last good
    compilation (kept while the text does not compile)."""

    diagnostics: dict[str, list[Diagnostic]] = field(default_factory=dict)
    program: Program | None = None
    models: list[Model] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)
    """The document's items as this compilation parsed them."""


class Analysis:
    """The compiler's view of open documents, under the CLI's budgets."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.texts: dict[str, str] = {}
        self.last_good: dict[str, Found] = {}
        self._parsed: dict[str, tuple[str, list[Any]]] = {}  # uri: (text, its items)
        self._unparsed: dict[str, str] = {}  # uri: a text of it known not to parse

    # ------------------------------------------------------------ diagnostics
    def check(self, uri: str, text: str) -> Found:
        """Take ``text`` as the document at ``uri`` and compile it: its diagnostics, by
        file path, and its models where it compiles."""
        self.texts[uri] = text
        return self.compile(uri, text)

    def forget(self, uri: str) -> None:
        """Drop what is known of a closed document."""
        for table in (self.texts, self.last_good, self._parsed, self._unparsed):
            table.pop(uri, None)

    def compile(self, uri: str, text: str, wanted: Callable[[], bool] | None = None) -> Found:
        """Compile ``text`` (a version of the document at ``uri``). ``wanted`` is asked at
        the compiler's budget checkpoints; once it says no (a newer edit came), the work
        stops with `Superseded` and nothing of it is kept."""
        path = path_of(uri)
        found = Found()

        def checkpoint(*_: Any) -> None:
            if wanted is not None and not wanted():
                raise Superseded(uri)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program = loads(text, str(path), root=path.parent)
                found.items = list(program._main.program.items)
                self._parsed[uri] = (text, found.items)
                found.program = program
                found.sources = program.sources
                for name in program.models:
                    checkpoint()
                    try:
                        model = program.model(name, limits=self.limits, progress=checkpoint)
                    except SsnError as exc:
                        self._add(found, exc.diagnostics, exc.sources, str(path))
                        continue
                    found.models.append(model)
                    self._add(found, model.warnings, program.sources, str(path))
            except SsnError as exc:
                found.sources = exc.sources
                self._add(found, exc.diagnostics, exc.sources, str(path))
                if any(d.code is E_SYNTAX and d.span.file == str(path) for d in exc.diagnostics):
                    self._unparsed[uri] = text  # its items are parsed one by one
        found.diagnostics.setdefault(str(path), [])
        if found.program is not None and not any(
                d.code.severity == "error" for ds in found.diagnostics.values() for d in ds):
            self.last_good[uri] = found
        return found

    @staticmethod
    def _add(found: Found, diags: Any, sources: dict[str, str], main: str) -> None:
        """File each diagnostic under the file it points into; one inside the standard
        library (read-only) goes to the user's call that led there, else the main file."""
        found.sources.update(sources)
        for d in diags:
            where = d.span.file
            if where.startswith(STDLIB_PREFIX) or d.span.line <= 0:
                user = next((n.span for n in d.notes if n.span is not None and n.span.line > 0
                             and not n.span.file.startswith(STDLIB_PREFIX)), None)
                where = user.file if user is not None else main
                if user is not None:
                    d = Diagnostic(d.code, d.message, user, d.notes, d.hint)
            found.diagnostics.setdefault(where, []).append(d)

    def range_of(self, span: Span, sources: dict[str, str]) -> Range:
        """``span`` as an LSP range."""
        lines = source_lines(sources.get(span.file, ""))
        if span.line <= 0:
            return Range((0, 0), (0, 0))

        def at(line: int, col: int) -> tuple[int, int]:
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            return line - 1, utf16(text, col)
        return Range(at(span.line, span.col), at(span.end_line, span.end_col))

    # ------------------------------------------------------------ positions
    def word_at(self, uri: str, line: int, character: int) -> tuple[str, int] | None:
        """The name under the cursor (0-based line, UTF-16 column) and its 1-based
        character column."""
        lines = source_lines(self.texts.get(uri, ""))
        if not 0 <= line < len(lines):
            return None
        text = lines[line]
        col = from_utf16(text, character)
        for m in _WORD.finditer(text):
            if m.start() < col <= m.end() + 1 and (m.start() + 1 <= col <= m.end()):
                return m.group(), m.start() + 1
        return None

    # ------------------------------------------------------------ hover
    def hover(self, uri: str, line: int, character: int) -> str | None:
        """Markdown for the name under the cursor: an op's signature and documentation, a
        rule's signature, and what the op or rule makes at this place in each model."""
        word = self.word_at(uri, line, character)
        if word is None:
            return None
        name, col = word
        found = self.last_good.get(uri)
        parts: list[str] = []
        decl = OPS.get(name)
        rule = self._rule(uri, name)
        about = self._parameter(uri, line, col, name, found)
        if about is not None:
            return about
        if rule is not None:
            parts.append(f"```ssn\n{self._def_head(rule, found)}\n```")
        elif decl is not None and not decl.source:
            from .plugin import signature

            parts.append(f"```ssn\n{signature(decl)}\n```\n{decl.doc}")
        if found is not None:
            rows = self._made_here(found, str(path_of(uri)), line + 1, col,
                                   name if rule is not None else None)
            if rows:
                stale = "" if self.texts.get(uri) == found.sources.get(
                    str(path_of(uri))) else " (from the last version that compiled)"
                parts.append(f"**here**{stale}:\n" + "\n".join(f"- {r}" for r in rows))
        return "\n\n".join(parts) or None

    def _parameter(self, uri: str, line: int, col: int, name: str,
                   found: Found | None) -> str | None:
        """Markdown for a parameter: a keyword argument in a call (`stride = 2`: the op's
        attribute, or the rule's parameter), or a parameter of the rule around the cursor,
        with the values it takes where the rule is applied."""
        text = source_lines(self.texts.get(uri, ""))[line]
        callee = open_call(text[:col - 1])
        if callee is not None and re.match(r"\s*=(?![=>])", text[col - 1 + len(name):]):
            rule, decl = self._rule(uri, callee), OPS.get(callee)
            if rule is not None and any(p.name == name for p in rule.params):
                return (f"`{name}`: a parameter of\n```ssn\n{self._def_head(rule, found)}"
                        "\n```")
            attr = next((a for a in decl.attrs if a.name == name), None) if decl else None
            if attr is not None:
                return f"`{callee}`'s attribute `{name}`: {attr_detail(attr)}"
            return None
        around = next((item for item in self._items(uri) if isinstance(item, ast.Def)
                       and item.span.line <= line + 1 <= item.span.end_line
                       and any(p.name == name for p in item.params)), None)
        if around is None:
            return None
        out = f"`{name}`: a parameter of\n```ssn\n{self._def_head(around, found)}\n```"
        values = [v for m in (found.models if found else []) for sc in m.ir.scopes.values()
                  if sc.rule == around.name for k, v in sc.args if k == name]
        if values:
            counted = {v: values.count(v) for v in values}
            out += "\n\n**values**: " + ", ".join(
                f"`{name} = {v}`" + (f" ({n} places)" if n > 1 else "")
                for v, n in counted.items())
        return out

    @staticmethod
    def _def_head(rule: ast.Def, found: Found | None) -> str:
        """`def unit(w, k = 3)`: a rule's head as written (defaults from its source)."""
        lines = source_lines((found.sources if found else {}).get(rule.span.file, ""))

        def written(p: ast.Param) -> str:
            d = p.default.span if p.default is not None else None
            if d is None or d.line != d.end_line or not 0 < d.line <= len(lines):
                return p.name if d is None else f"{p.name} = …"
            return f"{p.name} = {lines[d.line - 1][d.col - 1:d.end_col - 1]}"
        return f"def {rule.name}({', '.join(written(p) for p in rule.params)})"

    def _made_here(self, found: Found, file: str, line: int, col: int,
                   rule: str | None) -> list[str]:
        """`ssnc info`'s row for each op instance applied at this position, in each model,
        and for a rule, each instance of it (a rule applied in several places: each)."""
        rows: list[str] = []
        lines = source_lines(found.sources.get(file, ""))
        word = _WORD.match(lines[line - 1], col - 1) if 0 < line <= len(lines) else None
        for model in found.models:
            g = model.ir
            if rule is None and word is not None:  # a wire's name: its shape, each place
                rows += self._wire_rows(g, file, line, col, word.group())
            for scope in g.scopes.values():
                if scope.parent is not None and scope.rule == rule and not scope.transparent:
                    rows.append(self._scope_row(model, scope.id))
            for node in g.all_nodes().values():
                s = node.span
                if not node.is_param and s.file == file and s.line == line and \
                        s.col <= col < s.col + len(node.op) + 1 and node.shape is not None:
                    params = param_count(g, node)
                    rows.append(f"`{node.name}` ({node.op}) → {fmt_shape(node.shape)}, "
                                f"{params:,} parameters, {macs(g, node):,} MACs"
                                f"{' per step' if self._timed(model) else ''}")
        return list(dict.fromkeys(rows))[:8]

    @staticmethod
    def _wire_rows(g: Any, file: str, line: int, col: int, name: str) -> list[str]:
        """The shapes of the wires ``name`` means at this position: bound by the innermost
        `let` or `=>` block around it that binds ``name`` (once per place it is made)."""
        def around(b: Any) -> bool:
            s = b.scope
            return (b.name == name and s.file == file and (s.line, s.col) <= (line, col)
                    and (line, col) <= (s.end_line, s.end_col))

        here = [b for b in g.bindings if around(b)]
        if not here:
            return []
        inner = max((b.scope.line, b.scope.col) for b in here)
        by_index = {n.index: n for n in g.all_nodes().values()}
        return [f"`{b.shown}` → {fmt_shape(by_index[b.node].shape)}" for b in here
                if (b.scope.line, b.scope.col) == inner and b.node in by_index
                and by_index[b.node].shape is not None]

    @staticmethod
    def _timed(model: Model) -> bool:
        """Whether the model has a time axis (its MACs are per step, as `ssnc info` says)."""
        return bool(time_symbols(model.ir))

    @staticmethod
    def _scope_row(model: Model, scope: int) -> str:
        """One rule instance as `ssnc info` prints its row (a loop's cell counted, MACs per
        step)."""
        g = model.ir
        region = g.region(scope)
        rows = {r.path: r for r in summarize(g)}
        path = region.prefix
        while path and path not in rows:
            path = path.rpartition(".")[0]
        row = rows.get(path)
        if row is None:
            return f"`{g.scopes[scope].signature}`: no ops"
        return (f"`{row.path}` ({g.scopes[scope].signature}) → {fmt_shape(row.shape)}, "
                f"{row.params:,} parameters, {row.macs:,} MACs"
                f"{' per step' if Analysis._timed(model) else ''}")

    # ------------------------------------------------------------ definitions
    def _rule(self, uri: str, name: str) -> ast.Def | None:
        """The `def` a name refers to: in the document, an imported file, the standard
        library."""
        found = self.last_good.get(uri)
        for item in self._items(uri):
            if isinstance(item, ast.Def) and item.name == name:
                return item
        if found is not None and found.program is not None:
            value = found.program._main.env.visible().get(name)
            if isinstance(value, Rule):
                return value.decl
        return None

    def _items(self, uri: str) -> list[Any]:
        """The document's items; where it does not parse, those of each top-level item that
        does on its own (a broken rule hides only itself from the outline and hover). Kept
        per text: every request after an edit reads the same parse."""
        text = self.texts.get(uri, "")
        cached = self._parsed.get(uri)
        if cached is not None and cached[0] == text:
            return cached[1]
        items = self._parse_items(text, str(path_of(uri)), self._unparsed.get(uri) != text)
        self._parsed[uri] = (text, items)
        return items

    @staticmethod
    def _parse_items(text: str, file: str, whole: bool = True) -> list[Any]:
        """The items of ``text``: parsed whole, else (or where ``whole`` is False: it is
        known not to parse) item by item."""
        def each() -> list[Any]:  # on one guarded thread, not one per item
            try:
                if whole:
                    return list(parse(text, file).items)
            except SsnError:
                pass
            lines = source_lines(text)
            starts = [i for i, line in enumerate(lines) if _ITEM.match(line)] + [len(lines)]
            items: list[Any] = []
            for begin, end in itertools.pairwise(starts):
                chunk = "\n" * begin + "\n".join(lines[begin:end]) + "\n"  # lines keep numbers
                try:
                    items += parse(chunk, file).items
                except SsnError:
                    continue
            return items
        try:
            return guarded(each, file)
        except SsnError:
            return []  # nested past the limits: check reports it

    def definition(self, uri: str, line: int, character: int) -> tuple[str, Range] | None:
        """Where the name under the cursor is defined: a rule (here, imported, standard
        library), a `let` name or a parameter of the enclosing rule."""
        word = self.word_at(uri, line, character)
        if word is None:
            return None
        name, _ = word
        local = self._local(uri, name, line + 1)
        if local is not None:
            return uri, local
        rule = self._rule(uri, name)
        if rule is None:
            return None
        file = rule.name_span.file
        if file.startswith(STDLIB_PREFIX):
            stdlib = resources.files("ssnc.compiler.stdlib").joinpath(file.split("/", 1)[1])
            target = uri_of(str(stdlib))
            text = stdlib.read_text("utf-8")
        else:
            target = uri_of(file)
            text = self.texts.get(target) or Path(file).read_text("utf-8")
        return target, self.range_of(rule.name_span, {file: text})

    def _local(self, uri: str, name: str, line: int) -> Range | None:
        """A parameter of the rule or model around ``line`` named ``name``."""
        text = self.texts.get(uri, "")
        for item in self._items(uri):
            if isinstance(item, ast.Def | ast.Model) and \
                    item.span.line <= line <= item.span.end_line:
                for p in getattr(item, "params", ()):
                    if p.name == name:
                        return self.range_of(p.span, {p.span.file: text})
        return None

    # ------------------------------------------------------------ completion
    def completions(self, uri: str, line: int, character: int) -> list[tuple[str, str, str]]:
        """(label, kind, detail) for the cursor: inside `op(` or `rule(`, its attribute or
        parameter names first (`k` — `int, default 3`), then every op, rule and keyword;
        in `import "`, the folder's spec files."""
        lines = source_lines(self.texts.get(uri, ""))
        text = lines[line] if 0 <= line < len(lines) else ""
        before = text[:from_utf16(text, character) - 1]
        if re.search(r'^\s*import\s+"[^"]*$', before):
            folder = path_of(uri).parent
            return [(p.name, "file", "spec") for p in sorted(folder.glob("*.ssn"))
                    if p != path_of(uri)]
        out: list[tuple[str, str, str]] = []
        callee = open_call(before)
        if callee is not None:
            decl, rule = OPS.get(callee), self._rule(uri, callee)
            if rule is not None:
                out += [(p.name, "parameter", f"of {callee}") for p in rule.params]
            elif decl is not None:
                out += [(a.name, "attribute", attr_detail(a)) for a in decl.attrs]
        from .plugin import signature

        out += [(name, "op", signature(op)) for name, op in OPS.items()
                if not op.source and op.body is None and not op.projects]
        found = self.last_good.get(uri)
        program = found.program if found and found.program else loads("", "<completion>")
        env = program._main.env.visible()  # the file's rules, its imports', the library's
        out += [(name, "rule", f"def {name}({', '.join(p.name for p in v.decl.params)})")
                for name, v in env.items() if isinstance(v, Rule)]
        out += [(k, "keyword", "") for k in ("def", "model", "let", "in", "if", "then",
                                             "else", "for", "import", "true", "false", "none")]
        return out

    def signature(self, uri: str, line: int, character: int) -> tuple[str, list[str], int] | None:
        """Inside a call: the callee's signature, its parameters' labels and which one the
        cursor is at (by the commas before it; a keyword argument by its name)."""
        lines = source_lines(self.texts.get(uri, ""))
        text = lines[line] if 0 <= line < len(lines) else ""
        before = text[:from_utf16(text, character) - 1]
        callee = open_call(before)
        if callee is None:
            return None
        rule, decl = self._rule(uri, callee), OPS.get(callee)
        if rule is not None:
            names = [p.name for p in rule.params]
            label = f"{callee}({', '.join(names)})"
        elif decl is not None and not decl.source:
            from .plugin import signature

            names, label = [a.name for a in decl.attrs], signature(decl)
        else:
            return None
        inside = before[before.rindex(callee + "(") + len(callee) + 1:] \
            if callee + "(" in before else ""
        keyword = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*[^,=]*$", inside)
        active = names.index(keyword.group(1)) if keyword and keyword.group(1) in names \
            else depth0_commas(inside)
        return label, names, active

    def action(self, diagnostic_hint: str) -> str | None:
        """The name a diagnostic's "did you mean" suggests (for a quick fix)."""
        m = re.search(r"did you mean `([^`]+)`", diagnostic_hint)
        return m.group(1) if m else None

    def show(self, uri: str, what: str, line: int | None = None) -> str:
        """The model at ``line`` (0-based; else the document's first) as `ssnc ir` prints
        it (`ir`), its generated PyTorch source (`torch`) or its picture as Graphviz text
        (`dot`)."""
        found = self.last_good.get(uri)
        if found is None or not found.models:
            return "no model compiles in this file yet"
        here = next((item.name for item in self._items(uri) if isinstance(item, ast.Model)
                     and line is not None and item.span.line <= line + 1 <= item.span.end_line),
                    None)
        model = next((m for m in found.models if m.name == here), found.models[0])
        if what == "torch":
            return model.torch_source()
        if what == "dot":
            return model.picture("dot")
        return model.format_ir()

    # ------------------------------------------------------------ inlay hints
    def inlay_hints(self, uri: str) -> list[tuple[tuple[int, int], str]]:
        """(position, label) after each stage of a `>>` chain in a model's body: the shape
        that stage gives the next, from the last good compile. While the text does not
        compile, only on lines that read as they did then, marked `≈`."""
        found = self.last_good.get(uri)
        if found is None:
            return []
        file = str(path_of(uri))
        then, now = source_lines(found.sources.get(file, "")), source_lines(
            self.texts.get(uri, ""))
        stale = then != now
        stages = [side.span for item in found.items if isinstance(item, ast.Model)
                  for n in walk(item.body) if isinstance(n, ast.BinOp) and n.op == ">>"
                  for side in (n.left, n.right) if side.span.file == file]
        out: dict[tuple[int, int], str] = {}
        for model in found.models:
            g = model.ir
            made = [n for n in g.nodes_by_name.values() if not n.is_source]
            for stage in stages:
                inside = [n for n in made if within(n.span, stage) or any(
                    within(s.span, stage) for s in g.scope_path(n.scope)[1:])]
                where = self.range_of(stage, found.sources).end
                unchanged = where[0] < min(len(then), len(now)) and \
                    then[where[0]] == now[where[0]]
                if inside and (unchanged or not stale):
                    last = max(inside, key=lambda n: n.index)
                    out.setdefault(where, f" {'≈' if stale else ''}{fmt_shape(last.shape or ())}")
        return sorted(out.items())

    # ------------------------------------------------------------ references, rename
    def references(self, uri: str, line: int, character: int) -> list[tuple[str, Range]]:
        """Every place the name under the cursor means the same thing: a parameter or `let`
        name within its rule, a rule across the workspace's specs (the document's folder
        and the open documents), its definition included."""
        word = self.word_at(uri, line, character)
        if word is None:
            return []
        name, _ = word
        here = self._items(uri)
        item = next((i for i in here if isinstance(i, ast.Def | ast.Model)
                     and i.span.line <= line + 1 <= i.span.end_line), None)
        if item is not None and any(p.name == name for p in item.params):
            spans = [head(p.span, name) for p in item.params if p.name == name]
            return [(uri, self._range(uri, sp)) for sp in spans + uses(item.body, name)]
        let = next((n for n in walk(item.body) if isinstance(n, ast.Let) and name in n.targets
                    and n.span.line <= line + 1 <= n.span.end_line), None) if item else None
        if let is not None:
            head = self._let_target(uri, let, name)
            return [(uri, self._range(uri, sp)) for sp in [*head, *uses(let.body, name)]]
        out: list[tuple[str, Range]] = []
        for doc, items in self._workspace(uri).items():
            spans = [i.name_span for i in items if isinstance(i, ast.Def) and i.name == name]
            for i in items:
                if isinstance(i, ast.Def | ast.Model) and all(p.name != name for p in i.params):
                    spans += uses(i.body, name) + [
                        u for p in i.params if p.default is not None
                        for u in uses(p.default, name)]
            out += [(doc, self._range(doc, sp)) for sp in spans]
        return out

    def rename(self, uri: str, line: int, character: int,
               new: str) -> dict[str, list[tuple[Range, str]]]:
        """The edits renaming the name under the cursor to ``new``, by file; ValueError
        where ``new`` is not a name, is a keyword, an op or a built-in, or clashes with a
        rule or parameter already there."""
        from .api import RESERVED

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new) or new in RESERVED or \
                new in ("def", "model", "let", "in", "if", "then", "else", "for", "import",
                        "and", "or", "not"):
            raise ValueError(f"`{new}` cannot be a name: it is not an identifier, or it is "
                             "a keyword, an op or a built-in function")
        for doc, items in self._workspace(uri).items():
            for i in items:
                if isinstance(i, ast.Def | ast.Model) and (
                        i.name == new or any(p.name == new for p in i.params)):
                    raise ValueError(f"`{new}` is already a name in {path_of(doc).name}: "
                                     "renaming would change what the spec means")
        edits: dict[str, list[tuple[Range, str]]] = {}
        for doc, where in self.references(uri, line, character):
            edits.setdefault(doc, []).append((where, new))
        return edits

    def _workspace(self, uri: str) -> dict[str, list[Any]]:
        """The parsed items of the specs beside the document, and of the open documents."""
        docs = {uri_of(p): p.read_text("utf-8") for p in path_of(uri).parent.glob("*.ssn")}
        docs.update(self.texts)
        out: dict[str, list[Any]] = {}
        for doc, text in docs.items():
            try:
                out[doc] = list(_parse(text, str(path_of(doc))).items)
            except SsnError:
                continue
            self.texts.setdefault(doc, text)
        return out

    def _range(self, uri: str, span: Span) -> Range:
        return self.range_of(span, {span.file: self.texts.get(uri, "")})

    def _let_target(self, uri: str, let: ast.Let, name: str) -> list[Span]:
        """Where `let` writes ``name`` (the AST keeps the whole `let`'s span)."""
        lines = source_lines(self.texts.get(uri, ""))
        text = lines[let.span.line - 1] if 0 < let.span.line <= len(lines) else ""
        m = re.compile(rf"\b{re.escape(name)}\b").search(text, let.span.col - 1)
        if m is None:
            return []
        return [Span(file=let.span.file, line=let.span.line, col=m.start() + 1,
                     end_line=let.span.line, end_col=m.end() + 1)]

    # ------------------------------------------------------------ outline, layout
    def symbols(self, uri: str) -> list[tuple[str, str, Range, Range]]:
        """(name, kind, whole range, name range) for each rule and model, in order; one
        that does not parse yet keeps its place, from its head (`def name`) to the next
        item, so the outline does not jump while it is typed. Text known not to parse is
        outlined from the heads alone (no parse: the outline is asked at every edit)."""
        text = self.texts.get(uri, "")
        out = []
        for item in self._items(uri) if self._unparsed.get(uri) != text else ():
            if isinstance(item, ast.Def | ast.Model):
                sources = {item.span.file: text}
                out.append((item.name, "model" if isinstance(item, ast.Model) else "rule",
                            self.range_of(item.span, sources),
                            self.range_of(item.name_span, sources)))
        lines = source_lines(text)
        starts = [i for i, line in enumerate(lines) if _ITEM.match(line)] + [len(lines)]
        parsed = {r[2].start[0] for r in out}
        for begin, end in itertools.pairwise(starts):
            head = _HEAD.match(lines[begin])
            if head is None or begin in parsed:
                continue
            last = max((i for i in range(begin, end) if lines[i].strip()), default=begin)
            line = lines[begin]
            out.append((head.group(2), "model" if head.group(1) == "model" else "rule",
                        Range((begin, 0), (last, utf16(lines[last], len(lines[last]) + 1))),
                        Range((begin, utf16(line, head.start(2) + 1)),
                              (begin, utf16(line, head.end(2) + 1)))))
        return sorted(out, key=lambda r: r[2].start)

    def formatted(self, uri: str) -> str | None:
        """The document in `ssnc fmt`'s layout (None where it does not parse)."""
        try:
            return format_spec(self.texts.get(uri, ""), str(path_of(uri)))
        except SsnError:
            return None


def _parse(text: str, file: str) -> ast.Program:
    """``text`` parsed as the compiler parses it: on the deep-stack thread, so that text
    nested as deeply as the limits allow is a diagnostic, never a RecursionError."""
    return guarded(lambda: parse(text, file), file)


def serve() -> None:  # pragma: no cover (run as a process by the tests)
    """Run the server over stdio."""
    from .lsp_server import build

    build().start_io()
