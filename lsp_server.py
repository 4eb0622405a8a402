"""The pygls side of `ssnc lsp`: the LSP messages, each answered from `lsp.Analysis`. Every
handler answers even when the analysis fails (logged, an empty answer): no input brings the
server down. Checks run one at a time off the event loop, so that a newer edit is read while
an older check runs, and stops it; requests are answered once the checks before them are
done."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer

from . import __version__
from .lsp import DOCS, LOG, Analysis, Found, Superseded
from .lsp_text import Range, path_of, uri_of

F = TypeVar("F", bound=Callable[..., Any])
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def _range(r: Range) -> t.Range:
    return t.Range(start=t.Position(line=r.start[0], character=r.start[1]),
                   end=t.Position(line=r.end[0], character=r.end[1]))


def _safe(fn: F) -> F:
    """``fn``, answering None (logged) where it raises: one bad request never stops the
    server."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            LOG.exception("ssnc lsp: %s failed", fn.__name__)
            return None
    return wrapper  # type: ignore[return-value]


class Checks:
    """The documents' checks, run one at a time on a worker thread. A check asks at the
    compiler's checkpoints whether its version is still the newest, and stops if not; one
    that ends publishes its diagnostics."""

    def __init__(self, server: LanguageServer, analysis: Analysis):
        self.server = server
        self.analysis = analysis
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssnc-check")
        self.newest: dict[str, int] = {}  # uri -> the number of its newest check
        self.pending: dict[str, asyncio.Future[Found | None]] = {}
        self._count = itertools.count(1)

    def start(self, uri: str, text: str, version: int | None) -> None:
        """Check ``text``, the document's newest version (the older check, if running,
        stops at its next checkpoint)."""
        self.analysis.texts[uri] = text  # requests read the newest text at once
        self.newest[uri] = number = next(self._count)

        def wanted() -> bool:
            return self.newest.get(uri) == number

        def run() -> Found | None:
            if not wanted():
                return None  # superseded before it began
            try:
                return self.analysis.compile(uri, text, wanted)
            except Superseded:
                return None

        future = asyncio.get_running_loop().run_in_executor(self.pool, run)
        self.pending[uri] = future
        future.add_done_callback(functools.partial(self._done, uri, version, wanted))

    def _done(self, uri: str, version: int | None, wanted: Callable[[], bool],
              future: asyncio.Future[Found | None]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            LOG.error("ssnc lsp: the check of %s failed", uri, exc_info=future.exception())
            return
        found = future.result()
        if uri not in self.analysis.texts:  # closed while it ran
            self.analysis.forget(uri)
        elif found is None or not wanted():
            self.server.window_log_message(t.LogMessageParams(
                type=t.MessageType.Log, message=f"ssnc: the check of {uri} (version "
                f"{version}) stopped: a newer edit came"))
        else:
            _publish(self.server, self.analysis, uri, found, version)

    def recheck(self, but: str | None = None) -> None:
        """Check every open document again (``but`` one): a file they import changed."""
        for uri, text in list(self.analysis.texts.items()):
            if uri != but:
                self.start(uri, text, None)

    def close(self, uri: str) -> None:
        """Forget a closed document, and clear its diagnostics."""
        self.newest.pop(uri, None)  # a check still running stops
        self.analysis.forget(uri)
        self.server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=uri, diagnostics=[]))

    async def ready(self) -> None:
        """Wait until no check is running or waiting (requests read their results)."""
        while running := [f for f in self.pending.values() if not f.done()]:
            await asyncio.wait(running)


def _answering(checks: Checks) -> Wrap:
    """A request handler that answers once the checks before it are done, and never
    raises (a failure is logged and answered None)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                await checks.ready()
                return fn(*args, **kwargs)
            except Exception:
                LOG.exception("ssnc lsp: %s failed", fn.__name__)
                return None
        return wrapper
    return wrap


def build() -> LanguageServer:
    """The server, its features registered."""
    server = LanguageServer("ssnc", __version__,
                            text_document_sync_kind=t.TextDocumentSyncKind.Full)
    analysis = Analysis()
    checks = Checks(server, analysis)
    answer = _answering(checks)
    _documents(server, checks)
    _queries(server, analysis, answer)
    _editing(server, analysis, answer)
    _navigation(server, analysis, answer)
    return server


def _publish(server: LanguageServer, analysis: Analysis, uri: str, found: Found,
             version: int | None) -> None:
    """A check's diagnostics, for the document and for each file it imports."""
    for file, diags in found.diagnostics.items():
        items = []
        for d in diags:
            related = [t.DiagnosticRelatedInformation(
                location=t.Location(uri=uri_of(n.span.file),
                                    range=_range(analysis.range_of(n.span, found.sources))),
                message=n.message) for n in d.notes
                if n.span is not None and n.span.line > 0
                and not n.span.file.startswith("<")]
            message = d.message + (f"\nhint: {d.hint}" if d.hint else "") + "".join(
                f"\nnote: {n.message}" for n in d.notes if n.span is None)
            items.append(t.Diagnostic(
                range=_range(analysis.range_of(d.span, found.sources)), message=message,
                severity=t.DiagnosticSeverity.Warning if d.code.severity == "warning"
                else t.DiagnosticSeverity.Error,
                code=d.code.id, code_description=t.CodeDescription(href=DOCS),
                source="ssnc", related_information=related or None))
        target = uri if file == str(analysis_path(uri)) else uri_of(file)
        server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=target, diagnostics=items, version=version if target == uri else None))


def _documents(server: LanguageServer, checks: Checks) -> None:
    """Open and changed documents: checked, their diagnostics published."""

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    @_safe
    def did_open(ls: LanguageServer, params: t.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        checks.start(doc.uri, doc.text, doc.version)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    @_safe
    def did_change(ls: LanguageServer, params: t.DidChangeTextDocumentParams) -> None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        checks.start(doc.uri, doc.source, params.text_document.version)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    @_safe
    def did_save(ls: LanguageServer, params: t.DidSaveTextDocumentParams) -> None:
        checks.recheck(but=params.text_document.uri)  # imports read the saved file

    @server.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @_safe
    def files_changed(ls: LanguageServer, params: t.DidChangeWatchedFilesParams) -> None:
        checks.recheck()

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    @_safe
    def did_close(ls: LanguageServer, params: t.DidCloseTextDocumentParams) -> None:
        checks.close(params.text_document.uri)


def _queries(server: LanguageServer, analysis: Analysis,
             answer: Wrap) -> None:
    """Hover, definition, the outline and formatting, answered from the analysis."""

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    @answer
    def hover(ls: LanguageServer, params: t.HoverParams) -> t.Hover | None:
        text = analysis.hover(params.text_document.uri, params.position.line,
                              params.position.character)
        return None if text is None else t.Hover(
            contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text))

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    @answer
    def definition(ls: LanguageServer, params: t.DefinitionParams) -> t.Location | None:
        found = analysis.definition(params.text_document.uri, params.position.line,
                                    params.position.character)
        return None if found is None else t.Location(uri=found[0], range=_range(found[1]))

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @answer
    def symbols(ls: LanguageServer,
                params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
        return [t.DocumentSymbol(name=name, kind=t.SymbolKind.Class if kind == "model"
                                 else t.SymbolKind.Function, detail=kind,
                                 range=_range(whole), selection_range=_range(head))
                for name, kind, whole, head in analysis.symbols(params.text_document.uri)]

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    @answer
    def formatting(ls: LanguageServer,
                   params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
        uri = params.text_document.uri
        new = analysis.formatted(uri)
        old = analysis.texts.get(uri, "")
        if new is None or new == old:
            return []
        lines = old.split("\n")
        end = t.Position(line=len(lines), character=0)
        return [t.TextEdit(range=t.Range(start=t.Position(line=0, character=0), end=end),
                           new_text=new)]


def _editing(server: LanguageServer, analysis: Analysis,
             answer: Wrap) -> None:
    """Completion, signature help, quick fixes and the `ssnc.show` command."""
    kinds = {"attribute": t.CompletionItemKind.Property, "parameter": t.CompletionItemKind.Variable,
             "op": t.CompletionItemKind.Function, "rule": t.CompletionItemKind.Function,
             "keyword": t.CompletionItemKind.Keyword, "file": t.CompletionItemKind.File}

    @server.feature(t.TEXT_DOCUMENT_COMPLETION,
                    t.CompletionOptions(trigger_characters=["(", ",", '"']))
    @answer
    def complete(ls: LanguageServer, params: t.CompletionParams) -> t.CompletionList:
        items = analysis.completions(params.text_document.uri, params.position.line,
                                     params.position.character)
        return t.CompletionList(is_incomplete=False, items=[
            t.CompletionItem(label=label, kind=kinds[kind], detail=detail or None,
                             sort_text=f"{0 if kind in ('attribute', 'parameter') else 1}"
                             f"{label}") for label, kind, detail in items])

    @server.feature(t.TEXT_DOCUMENT_SIGNATURE_HELP,
                    t.SignatureHelpOptions(trigger_characters=["(", ","]))
    @answer
    def signature_help(ls: LanguageServer, params: t.SignatureHelpParams) -> t.SignatureHelp | None:
        found = analysis.signature(params.text_document.uri, params.position.line,
                                   params.position.character)
        if found is None:
            return None
        label, names, active = found
        return t.SignatureHelp(signatures=[t.SignatureInformation(
            label=label, parameters=[t.ParameterInformation(label=n) for n in names])],
            active_signature=0, active_parameter=active)

    @server.feature(t.TEXT_DOCUMENT_CODE_ACTION)
    @answer
    def actions(ls: LanguageServer, params: t.CodeActionParams) -> list[t.CodeAction]:
        out = []
        for d in params.context.diagnostics:
            name = analysis.action(d.message)
            if name is not None and d.source == "ssnc":
                out.append(t.CodeAction(
                    title=f"Change to `{name}`", kind=t.CodeActionKind.QuickFix,
                    diagnostics=[d], is_preferred=True, edit=t.WorkspaceEdit(changes={
                        params.text_document.uri: [t.TextEdit(range=d.range, new_text=name)]})))
        return out

    @server.command("ssnc.show")
    @answer
    def show(ls: LanguageServer, uri: str, *rest: Any) -> str:
        """`ssnc.show(uri, "ir" | "torch" | "dot" = "ir", line = none)`: the IR, PyTorch
        or picture of the model at ``line`` (0-based; else the file's first)."""
        what = str(rest[0]) if rest else "ir"
        line = rest[1] if len(rest) > 1 and isinstance(rest[1], int) else None
        return analysis.show(uri, what, line)


def _navigation(server: LanguageServer, analysis: Analysis,
                answer: Wrap) -> None:
    """Inlay hints, references and rename."""

    @server.feature(t.TEXT_DOCUMENT_INLAY_HINT)
    @answer
    def hints(ls: LanguageServer, params: t.InlayHintParams) -> list[t.InlayHint]:
        return [t.InlayHint(position=t.Position(line=line, character=col), label=label,
                            kind=t.InlayHintKind.Type, padding_left=False)
                for (line, col), label in analysis.inlay_hints(params.text_document.uri)
                if params.range.start.line <= line <= params.range.end.line]

    @server.feature(t.TEXT_DOCUMENT_REFERENCES)
    @answer
    def references(ls: LanguageServer, params: t.ReferenceParams) -> list[t.Location]:
        return [t.Location(uri=doc, range=_range(r)) for doc, r in analysis.references(
            params.text_document.uri, params.position.line, params.position.character)]

    @server.feature(t.TEXT_DOCUMENT_RENAME)
    @answer
    def rename(ls: LanguageServer, params: t.RenameParams) -> t.WorkspaceEdit | None:
        try:
            edits = analysis.rename(params.text_document.uri, params.position.line,
                                    params.position.character, params.new_name)
        except ValueError as exc:
            ls.window_show_message(t.ShowMessageParams(type=t.MessageType.Error,
                                                       message=str(exc)))
            return None
        return t.WorkspaceEdit(changes={doc: [t.TextEdit(range=_range(r), new_text=new)
                                              for r, new in found]
                                        for doc, found in edits.items()})


def analysis_path(uri: str) -> str:
    """The path the analysis files a document's own diagnostics under."""
    return str(path_of(uri))
