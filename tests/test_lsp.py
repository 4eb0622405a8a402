"""`ssnc lsp` end to end over stdio, with pytest-lsp's client speaking as VS Code and as
Neovim (their recorded capabilities): diagnostics after open and after an edit that breaks
and then fixes the spec, hover with shapes and counts (FractalNet's stages and a unit inside
a fractal, HM-RNN per step), definition into the standard library, the outline, formatting
equal to `ssnc fmt`; and positions in UTF-16."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

import ssnc
from ssnc.lsp import Analysis, from_utf16, uri_of, utf16
from tests.conftest import SPECS

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "ssnc.cli", "lsp"])


@pytest_lsp.fixture(config=SERVER, params=["visual-studio-code", "neovim"])
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities(request.param)))
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = uri_of(path)
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id="ssn", version=1,
        text=path.read_text() if text is None else text)))
    return uri


async def _hover(client: LanguageClient, uri: str, text: str, needle: str) -> str:
    """The hover text at the first ``needle`` of ``text``."""
    hover = await client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, needle)))
    assert hover is not None and isinstance(hover.contents, t.MarkupContent)
    return hover.contents.value


def _position(text: str, needle: str, offset: int = 0) -> t.Position:
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            return t.Position(line=number, character=utf16(line, line.index(needle) + 1 + offset))
    raise AssertionError(needle)


@pytest.mark.asyncio
async def test_diagnostics_follow_edits(client: LanguageClient, tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text("model m : tensor[3, 8, 8] = conv(4) >> relu >> gap\n")
    uri = _open(client, spec)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert not client.diagnostics[uri]
    for version, text in ((2, "model m : tensor[3, 8, 8] = conv(4) >> rellu >> gap\n"),
                          (3, "model m : tensor[3, 8, 8] = conv(4) >> relu >> gap\n")):
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=text)]))
        await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        found = client.diagnostics[uri]
        if version == 2:
            (d,) = found
            assert (d.code, d.message.split("\n")[0]) == ("E0101", "unknown name `rellu`")
            assert "did you mean `relu`?" in d.message
            assert (d.range.start.line, d.range.start.character) == (0, 39)
            assert d.severity == t.DiagnosticSeverity.Error
        else:
            assert not found


@pytest.mark.asyncio
async def test_hover_shows_shapes_and_sizes(client: LanguageClient) -> None:
    text = (SPECS / "fractalnet.ssn").read_text()
    uri = _open(client, SPECS / "fractalnet.ssn")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    value = await _hover(client, uri, text, "stage(widths[i]")
    assert "def stage(w, p, C, drop_path)" in value
    assert "`stage1` (stage(w=64" in value and "153,536 parameters" in value
    value = await _hover(client, uri, text, "conv(w, 3")
    assert "conv(out=none, k=3" in value
    assert "`stage1.fractal.col3.unit1.conv` (conv) → [N,64,32,32]{NCHW}, 1,728 parameters" \
        in value


@pytest.mark.asyncio
async def test_hover_on_a_sequence_model_counts_per_step(client: LanguageClient) -> None:
    text = (SPECS / "hmrnn_charlm.ssn").read_text()
    uri = _open(client, SPECS / "hmrnn_charlm.ssn")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    value = await _hover(client, uri, text, "hmrnn(")
    info = ssnc.load(SPECS / "hmrnn_charlm.ssn").model().summary()
    row = next(r for r in info if r.path == "hmrnn")
    assert f"{row.params:,} parameters, {row.macs:,} MACs per step" in value


@pytest.mark.asyncio
async def test_definition_outline_and_formatting(client: LanguageClient) -> None:
    text = (SPECS / "fractalnet.ssn").read_text()
    uri = _open(client, SPECS / "fractalnet.ssn")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    found = await client.text_document_definition_async(t.DefinitionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, "fractal(")))
    assert isinstance(found, t.Location) and found.uri.endswith("compiler/stdlib/fractal.ssn")
    stdlib = Path(found.uri.removeprefix("file://")).read_text().split("\n")
    assert stdlib[found.range.start.line].startswith("def fractal")
    symbols = await client.text_document_document_symbol_async(t.DocumentSymbolParams(
        text_document=t.TextDocumentIdentifier(uri=uri)))
    assert [s.name for s in symbols] == ["unit", "stage", "classifier", "supervised",  # type: ignore[union-attr]
                                        "fractalnet"]
    messy = text.replace(" >> ", "   >>   ", 1)
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=messy)]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    edits = await client.text_document_formatting_async(t.DocumentFormattingParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        options=t.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert edits is not None and edits[0].new_text == ssnc.format_spec(messy) == text


def test_columns_are_utf16_code_units() -> None:
    line = "let µ = 𝛼 in x"  # µ is one unit, 𝛼 two
    assert utf16(line, line.index("in") + 1) == line.index("in") + 1
    assert from_utf16(line, utf16(line, line.index("in") + 1)) == line.index("in") + 1


def test_a_diagnostic_inside_the_standard_library_goes_to_the_users_call() -> None:
    analysis = Analysis()
    uri = uri_of(Path("/tmp/stdlib_call.ssn"))
    found = analysis.check(uri, "model m : tensor[3, 8, 8] = fractal(2, conv(4, -2))\n")
    (diags,) = [ds for f, ds in found.diagnostics.items() if ds]
    assert all(not d.span.file.startswith("<stdlib>") for d in diags)


@pytest.mark.asyncio
async def test_completion_inside_a_call_offers_its_attributes_first(
        client: LanguageClient, tmp_path: Path) -> None:
    text = "model m : tensor[3, 8, 8] = conv(4, "
    uri = _open(client, tmp_path / "c.ssn", text)  # incomplete: still completed
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    found = await client.text_document_completion_async(t.CompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        position=t.Position(line=0, character=len(text))))
    assert isinstance(found, t.CompletionList)
    first = sorted(found.items, key=lambda i: i.sort_text or i.label)[:2]
    assert [(i.label, i.kind) for i in first] == [("bias", t.CompletionItemKind.Property),
                                                   ("dilation", t.CompletionItemKind.Property)]
    k = next(i for i in found.items if i.label == "k")
    assert k.detail == "int/tuple, default 3: kernel size"
    assert any(i.label == "fractal" and i.kind == t.CompletionItemKind.Function
               for i in found.items)  # a standard-library rule


@pytest.mark.asyncio
async def test_signature_help_quick_fix_and_commands(client: LanguageClient,
                                                     tmp_path: Path) -> None:
    text = "model m : tensor[3, 8, 8] = conv(4, 3, stride = 2) >> rellu >> gap\n"
    uri = _open(client, tmp_path / "s.ssn", text)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    help_ = await client.text_document_signature_help_async(t.SignatureHelpParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        position=_position(text, "3, stride")))
    assert help_ is not None and help_.signatures[0].label.startswith("conv(out=none, k=3")
    assert help_.active_parameter == 1  # at `k`
    (diag,) = client.diagnostics[uri]
    actions = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), range=diag.range,
        context=t.CodeActionContext(diagnostics=[diag])))
    assert actions is not None
    (fix,) = actions
    assert isinstance(fix, t.CodeAction) and fix.title == "Change to `relu`"
    assert fix.edit is not None and fix.edit.changes is not None
    assert fix.edit.changes[uri][0].new_text == "relu"
    good = text.replace("rellu", "relu")
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=good)]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    for what, needle in (("ir", "%conv : f32[N,4,4,4]{NCHW} = conv"),
                         ("torch", "class M(nn.Module)"), ("dot", "digraph")):
        shown = await client.workspace_execute_command_async(t.ExecuteCommandParams(
            command="ssnc.show", arguments=[uri, what]))
        assert needle in shown, (what, shown[:200])
    two = good + "\nmodel second : tensor[3, 8, 8] = conv(6)\n"
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=3),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=two)]))
    for line, needle in ((2, "f32[N,6,8,8]"), (0, "f32[N,4,4,4]"), (None, "f32[N,4,4,4]")):
        shown = await client.workspace_execute_command_async(t.ExecuteCommandParams(
            command="ssnc.show", arguments=[uri, "ir", line]))  # the model at the cursor
        assert needle in shown, (line, shown[:200])


@pytest.mark.asyncio
async def test_references_and_rename_across_two_files(client: LanguageClient,
                                                      tmp_path: Path) -> None:
    lib = tmp_path / "blocks.ssn"
    lib.write_text("def unit(w) = conv(w, 3) >> relu\n\ndef pair(w) = unit(w) >> unit(w)\n")
    main = tmp_path / "main.ssn"
    text = ('import "blocks.ssn"\n\nmodel m(w = 4) : tensor[3, 8, 8] =\n'
            '    let u = unit(w) in u >> pair(w) >> gap\n')
    main.write_text(text)
    uri = _open(client, main)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    refs = await client.text_document_references_async(t.ReferenceParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, "unit("),
        context=t.ReferenceContext(include_declaration=True)))
    assert refs is not None
    assert sorted((Path(r.uri).name, r.range.start.line) for r in refs) == [
        ("blocks.ssn", 0), ("blocks.ssn", 2), ("blocks.ssn", 2), ("main.ssn", 3)]
    edit = await client.text_document_rename_async(t.RenameParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, "unit("),
        new_name="basic"))
    assert edit is not None and edit.changes is not None
    assert sum(len(e) for e in edit.changes.values()) == 4
    assert all(e.new_text == "basic" for es in edit.changes.values() for e in es)
    # a `let` name stays inside its `let`; a name already taken is refused
    local = await client.text_document_references_async(t.ReferenceParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, "u >>"),
        context=t.ReferenceContext(include_declaration=True)))
    assert local is not None and [r.range.start.character for r in local] == [8, 23]
    refused = await client.text_document_rename_async(t.RenameParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(text, "unit("),
        new_name="pair"))
    assert refused is None


@pytest.mark.asyncio
async def test_inlay_hints_give_each_stages_shape(client: LanguageClient) -> None:
    text = (SPECS / "nin_cifar10.ssn").read_text()
    uri = _open(client, SPECS / "nin_cifar10.ssn")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    lines = text.split("\n")
    hints = await client.text_document_inlay_hint_async(t.InlayHintParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        range=t.Range(start=t.Position(line=0, character=0),
                      end=t.Position(line=len(lines), character=0))))
    assert hints is not None
    shown = [(lines[h.position.line][:h.position.character].rsplit(">>", 1)[-1].strip(),
              h.label) for h in hints]
    assert ("nin(stage(192, 5, [160, 96])", " [N,96,16,16]{NCHW}") in shown
    assert ("stage(192, 5, [192, 192])", " [N,192,8,8]{NCHW}") in shown


def test_a_broken_rule_hides_only_itself() -> None:
    """Text being typed is mostly invalid: the outline, hover and definition keep working
    on the rest of the file (each top-level item parsed on its own where the file does
    not parse)."""
    analysis = Analysis()
    uri = uri_of(Path("/tmp/broken_rule.ssn"))
    text = ("def a(w) = conv(w, 3)\n\ndef b(w) = conv(w, >>\n\ndef c(w) = a(w) >> relu\n\n"
            "model m : tensor[3, 8, 8] = c(4) >> gap\n")
    found = analysis.check(uri, text)
    assert [d.code.id for ds in found.diagnostics.values() for d in ds] == ["E0001"]
    outline = analysis.symbols(uri)
    assert [s[0] for s in outline] == ["a", "b", "c", "m"]  # `b` from its head alone
    assert (outline[1][2].start, outline[1][2].end, outline[1][3].start) == (
        (2, 0), (2, 21), (2, 4))
    assert "def a(w)" in (analysis.hover(uri, 4, 11) or "")
    target = analysis.definition(uri, 4, 11)
    assert target is not None and target[1].start == (0, 4)


async def _fuzz_through_the_server(count: int) -> None:
    """Each of ``count`` fuzzed specs (the fuzz harness's mix) sent as a `didChange` is
    answered (a request right after it returns), and the server stays up. The 10 s wait
    only tells a hang from an answer; how fast answers come is `bench/bench_lsp.py`'s
    measure (no timed assertions in tests: these machines are shared)."""
    import asyncio

    from tests.fuzz.generate import cases

    client = await SERVER.start()
    await client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("neovim")))
    uri = uri_of(Path("/tmp/ssnc_lsp_fuzz.ssn"))
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id="ssn", version=1, text="")))
    answered = 0
    for version, (_, text) in enumerate(cases(11, count), 2):
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=text)]))
        await asyncio.wait_for(client.text_document_document_symbol_async(
            t.DocumentSymbolParams(text_document=t.TextDocumentIdentifier(uri=uri))), 10)
        answered += 1
    good = "model m : tensor[3, 8, 8] = conv(4) >> relu >> gap\n"
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=count + 2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=good)]))
    hover = await client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=_position(good, "conv(")))
    await client.shutdown_session()
    assert answered == count
    assert hover is not None and "conv" in hover.contents.value  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_1500_fuzzed_edits_are_each_answered_and_the_server_stays_up() -> None:
    await _fuzz_through_the_server(1500)  # about 50 s here


def test_hover_on_a_let_name_gives_its_wires_shape() -> None:
    analysis = Analysis()
    uri = uri_of(Path("/tmp/wire_shape.ssn"))
    text = ("model m : tensor[3, 8, 8] = (x) =>\n    let y = conv(4)(x) in\n"
            "    let z = y >> relu >> maxpool(2) in\n    z >> gap\n")
    analysis.check(uri, text)
    assert "`z` → [N,4,4,4]{NCHW}" in (analysis.hover(uri, 3, 4) or "")
    assert "`y` → [N,4,8,8]{NCHW}" in (analysis.hover(uri, 2, 12) or "")
    assert "`x` → [N,3,8,8]{NCHW}" in (analysis.hover(uri, 1, 20) or "")


def test_hover_on_a_blocks_parameter_gives_the_shape_it_means_there() -> None:
    """A `=>` block's parameters are wires too: the innermost block that binds the name
    decides, each place the block is applied gives its shape, and `*rest` its items."""
    analysis = Analysis()
    uri = uri_of(Path("/tmp/block_params.ssn"))
    text = ("def blk(w) = (x) => conv(w)(x) + ((x) => x)(conv(w, stride = 2)(x) >> upsample(2))\n"
            "def two = (a, *s) => a + s[0]\n"
            "model m : tensor[3, 8, 8] = blk(4) >> blk(6) >> ((i) => (i, relu(i))) >> two\n")
    found = analysis.check(uri, text)
    assert not any(found.diagnostics.values())
    outer = analysis.hover(uri, 0, text.index("(x)") + 1) or ""
    assert "`x` → [N,3,8,8]{NCHW}" in outer and "`x` → [N,4,8,8]{NCHW}" in outer
    inner = analysis.hover(uri, 0, text.index("=> x)") + 3) or ""
    assert "`x` → [N,4,8,8]{NCHW}" in inner and "[N,3,8,8]" not in inner
    line = text.split("\n")[1]
    assert "`s[0]` → [N,6,8,8]{NCHW}" in (analysis.hover(uri, 1, line.index("s[0]")) or "")
    assert "`a` → [N,6,8,8]{NCHW}" in (analysis.hover(uri, 1, line.index("(a") + 1) or "")


@pytest.mark.asyncio
async def test_a_newer_edit_stops_the_check_of_an_older_one(tmp_path: Path) -> None:
    """A check still running when a newer edit comes stops at its next checkpoint and
    publishes nothing; the newer text's diagnostics come, with their version."""
    import asyncio

    client = await SERVER.start()
    await client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("visual-studio-code")))
    slow = "model m : tensor[4, 8, 8] = relu * 40000\n"  # seconds of elaboration
    uri = _open(client, tmp_path / "m.ssn", slow)
    await asyncio.sleep(0.3)  # the slow check is under way (or queued: stopped either way)
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(
            text="model m : tensor[4, 8, 8] = rellu\n")]))
    published = await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    hover = await client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(line=0, character=6)))
    await client.shutdown_session()
    assert published.version == 2
    assert [d.code for d in published.diagnostics] == ["E0101"]
    assert any("(version 1) stopped: a newer edit came" in m.message
               for m in client.log_messages)
    assert hover is None or "relu * 40000" not in str(hover.contents)


def test_a_check_stops_at_a_checkpoint_once_a_newer_version_is_wanted() -> None:
    """Evaluation (a long comprehension) and elaboration (many nodes) both ask; the first
    no stops the check."""
    from ssnc.lsp import Superseded

    for body in ("seq([relu for i in range(40000)])", "relu * 4000"):
        asked = iter(range(3))
        with pytest.raises(Superseded):
            Analysis().compile(uri_of(Path("/tmp/m.ssn")),
                               f"model m : tensor[4, 8, 8] = {body}\n",
                               lambda: next(asked, 2) < 2)  # noqa: B023 (used in the loop)
        assert next(asked, None) is None  # asked three times: yes, yes, no


@pytest.mark.asyncio
async def test_saving_an_imported_file_rechecks_the_files_that_import_it(
        client: LanguageClient, tmp_path: Path) -> None:
    """Imports read the saved file: saving it checks the other open documents again; a
    closed document's diagnostics are cleared."""
    lib = tmp_path / "blocks.ssn"
    lib.write_text("def unit(w) = conv(w, 3) >> relu\n")
    main = tmp_path / "main.ssn"
    main.write_text('import "blocks.ssn"\n\nmodel m : tensor[3, 8, 8] = unit(4) >> gap\n')
    uri = _open(client, main)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert not client.diagnostics[uri]
    renamed = "def basic(w) = conv(w, 3) >> relu\n"
    lib_uri = _open(client, lib, renamed)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    lib.write_text(renamed)
    client.text_document_did_save(t.DidSaveTextDocumentParams(
        text_document=t.TextDocumentIdentifier(uri=lib_uri)))
    published = await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert published.uri == uri
    assert [(d.code, d.message.split("\n")[0]) for d in published.diagnostics] == [
        ("E0101", "unknown name `unit`")]
    client.text_document_did_close(t.DidCloseTextDocumentParams(
        text_document=t.TextDocumentIdentifier(uri=uri)))
    cleared = await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert cleared.uri == uri and not cleared.diagnostics


def test_hover_on_a_parameter_gives_its_rule_default_and_values() -> None:
    """A rule's parameter (in its head, in its body, as a keyword argument at a call) shows
    the rule's head with its defaults, and the values it takes where the rule is applied;
    an op's keyword argument shows the attribute's type, default and meaning."""
    analysis = Analysis()
    uri = uri_of(Path("/tmp/parameters.ssn"))
    text = ("def unit(w, k = 3) = conv(w, k, stride = 1) >> relu\n"
            "model m : tensor[3, 8, 8] = unit(4, k = 5) >> unit(4) >> unit(8) >> gap\n")
    analysis.check(uri, text)
    head, call = text.split("\n")[:2]
    for at in (head.index("w, k ="), head.index("w, k,")):
        shown = analysis.hover(uri, 0, at) or ""
        assert "def unit(w, k = 3)" in shown
        assert "**values**: `w = 4` (2 places), `w = 8`" in shown
    assert "`k = 5`, `k = 3` (2 places)" in (analysis.hover(uri, 0, head.index("k, s")) or "")
    assert "a parameter of\n```ssn\ndef unit(w, k = 3)" in (
        analysis.hover(uri, 1, call.index("k = 5")) or "")
    assert (analysis.hover(uri, 0, head.index("stride")) or "").startswith(
        "`conv`'s attribute `stride`: int/tuple, default 1")
    fractal = analysis.check(uri_of(SPECS / "fractalnet.ssn"),
                             (SPECS / "fractalnet.ssn").read_text())
    assert fractal.models
    assert "def fractal(" in (analysis.hover(uri_of(SPECS / "fractalnet.ssn"), *_at(
        (SPECS / "fractalnet.ssn").read_text(), "fractal(")) or "")


def _at(text: str, needle: str) -> tuple[int, int]:
    """(line, UTF-16 character) of the first ``needle`` in ``text``."""
    p = _position(text, needle)
    return p.line, p.character


def test_inlay_hints_from_the_last_good_version_are_marked_and_kept_where_lines_are() -> None:
    analysis = Analysis()
    uri = uri_of(Path("/tmp/stale_hints.ssn"))
    text = "model m : tensor[3, 8, 8] =\n    conv(4)\n    >> relu\n    >> maxpool(2)\n    >> gap\n"
    analysis.check(uri, text)
    fresh = analysis.inlay_hints(uri)
    assert [(line, label) for (line, _), label in fresh] == [
        (1, " [N,4,8,8]{NCHW}"), (2, " [N,4,8,8]{NCHW}"), (3, " [N,4,4,4]{NCHW}"),
        (4, " [N,4]{NC}")]
    analysis.check(uri, text.replace(">> relu", ">> rellu"))  # does not compile now
    stale = analysis.inlay_hints(uri)
    assert [(line, label) for (line, _), label in stale] == [
        (1, " ≈[N,4,8,8]{NCHW}"), (3, " ≈[N,4,4,4]{NCHW}"), (4, " ≈[N,4]{NC}")]
