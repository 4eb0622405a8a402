"""Editors: the VS Code extension (its TextMate grammar checked by `vscode-tmgrammar-test`
on annotated snippets, its manifest, its `.vsix` package) and Neovim as a real LSP client,
headless, with the configuration docs/editors.md gives. The Node.js tools come from
`npm ci` in editors/vscode and Neovim from Debian, both installed by .ci/run: where one is
missing these tests skip, except under CI=true, where they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ssnc.highlight import textmate
from tests.conftest import ROOT

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "ssn.tmLanguage.json"


def _tool(path: Path | None, what: str) -> Path:
    """``path`` where it exists; else a skip, or under CI a failure (CI installs it)."""
    if path is not None and path.exists():
        return path
    message = f"{what} is not installed (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _npm_bin(name: str) -> Path:
    return _tool(VSCODE / "node_modules" / ".bin" / name, f"{name} (`npm ci` in editors/vscode)")


def test_the_grammar_is_generated_from_the_lexers_word_lists() -> None:
    assert json.loads(GRAMMAR.read_text()) == textmate(), (
        "regenerate: python -m ssnc.highlight > editors/vscode/syntaxes/ssn.tmLanguage.json")


def _scopes(rule: object) -> set[str]:
    """Every scope name a grammar rule (or list of rules) gives."""
    if isinstance(rule, dict):
        found = {rule["name"]} if isinstance(rule.get("name"), str) else set()
        return found.union(*(_scopes(v) for k, v in rule.items() if k != "name"))
    if isinstance(rule, list):
        return set().union(*(_scopes(r) for r in rule))
    return set()


def test_the_snippets_mark_every_token_class_of_the_grammar() -> None:
    marked = set()
    for snippet in (VSCODE / "tests").glob("*.test.ssn"):
        marked |= set(re.findall(r"^#\s*(?:<-+|\^+)\s+(\S+)", snippet.read_text(), re.M))
    assert _scopes(textmate()["patterns"]) <= marked


def test_the_grammar_gives_each_snippet_its_marked_scopes(tmp_path: Path) -> None:
    tester = _npm_bin("vscode-tmgrammar-test")
    run = subprocess.run([str(tester), "-g", str(GRAMMAR), "tests/*.test.ssn"], cwd=VSCODE,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "run successfuly" in run.stdout  # (sic: the tool's spelling)
    wrong = tmp_path / "wrong.test.ssn"  # the tester can fail: a wrong mark is reported
    wrong.write_text('# SYNTAX TEST "source.ssn"\ndef f = relu\n#       ^^^^ comment.line.ssn\n')
    run = subprocess.run([str(tester), "-g", str(GRAMMAR), str(wrong)], cwd=VSCODE,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "support.function.op.ssn" in run.stdout


def test_the_extension_declares_what_it_registers() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text())
    source = (VSCODE / "extension.js").read_text()
    declared = {c["command"] for c in manifest["contributes"]["commands"]}
    assert declared == set(re.findall(r'registerCommand\("([\w.]+)"', source))
    (language,) = manifest["contributes"]["languages"]
    assert language["extensions"] == [".ssn"]
    config = json.loads((VSCODE / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#"
    (grammar,) = manifest["contributes"]["grammars"]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR
    assert grammar["scopeName"] == textmate()["scopeName"]
    assert '["-m", "ssnc.cli", "lsp"]' in source  # the command the LSP tests start
    assert (VSCODE / "package-lock.json").exists()
    node = _tool(Path(shutil.which("node") or "/nonexistent"), "node")
    check = subprocess.run([str(node), "--check", "extension.js"], cwd=VSCODE,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_the_extension_packages_as_a_vsix(tmp_path: Path) -> None:
    vsce = _npm_bin("vsce")
    out = tmp_path / "ssn.vsix"
    run = subprocess.run([str(vsce), "package", "--out", str(out)], cwd=VSCODE,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    names = set(zipfile.ZipFile(out).namelist())
    for needed in ("extension/package.json", "extension/extension.js",
                   "extension/syntaxes/ssn.tmLanguage.json",
                   "extension/language-configuration.json",
                   "extension/node_modules/vscode-languageclient/package.json"):
        assert needed in names
    assert not any(n.startswith("extension/tests/") for n in names)


def _neovim_config() -> str:
    """The Neovim 0.7 configuration of docs/editors.md (the `lua` block that attaches with
    `buf_attach_client`), running this Python's ssnc."""
    docs = (ROOT / "docs" / "editors.md").read_text()
    (block,) = [b for b in re.findall(r"```lua\n(.*?)```", docs, re.S)
                if "buf_attach_client" in b]
    command = ", ".join(json.dumps(a) for a in (sys.executable, "-m", "ssnc.cli", "lsp"))
    assert '{ "ssnc", "lsp" }' in block
    return block.replace('{ "ssnc", "lsp" }', "{ " + command + " }")


DRIVER = """
vim.api.nvim_create_autocmd("VimEnter", { callback = function()
  local waited = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
  local diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    table.insert(diagnostics, { line = d.lnum, col = d.col, code = d.code, message = d.message })
  end
  vim.api.nvim_win_set_cursor(0, { 2, 29 })  -- on `conv`
  local answers = vim.lsp.buf_request_sync(0, "textDocument/hover",
    vim.lsp.util.make_position_params(), 60000)
  local hover = vim.NIL
  for _, answer in pairs(answers or {}) do
    if answer.result then hover = answer.result.contents.value end
  end
  vim.fn.writefile({ vim.fn.json_encode({ waited = waited, diagnostics = diagnostics,
    hover = hover }) }, vim.env.SSNC_OUT)
  vim.cmd("qa!")
end })
"""


def test_neovim_receives_the_diagnostics_and_a_hover(tmp_path: Path) -> None:
    nvim = _tool(Path(shutil.which("nvim") or "/nonexistent"), "Neovim (apt-get install neovim)")
    spec = tmp_path / "spec.ssn"
    spec.write_text("def broken = rellu\nmodel m : tensor[3, 8, 8] = conv(4) >> relu >> gap\n")
    init = tmp_path / "init.lua"
    init.write_text(_neovim_config() + DRIVER)
    out = tmp_path / "out.json"
    run = subprocess.run([str(nvim), "--headless", "-u", str(init), str(spec)],
                         env={**os.environ, "SSNC_OUT": str(out)}, capture_output=True,
                         text=True, timeout=180, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert run.returncode == 0 and out.exists(), run.stdout + run.stderr
    got = json.loads(out.read_text())
    assert got["waited"] is True
    (diagnostic,) = got["diagnostics"]
    assert (diagnostic["line"], diagnostic["col"], diagnostic["code"]) == (0, 13, "E0101")
    assert diagnostic["message"].startswith("unknown name `rellu`")
    assert got["hover"].startswith("```ssn\nconv(out=none, k=3")
