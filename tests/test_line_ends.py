"""Line ends: `\\n`, `\\r\\n` and a lone `\\r` (old Mac files) end a line alike everywhere —
the lexer (a comment stops at any of them), diagnostics' lines and columns and their source
excerpts, `ssnc fmt` (which keeps the file's style), the `ssnc.source` positions in ONNX and
the positions in generated Python. Nothing else (form feed, U+2028) ends a line."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ssnc
from ssnc.backends.torch import generate_source
from ssnc.base.diagnostics import position, source_lines
from ssnc.cli import app
from ssnc.grammar.parser import parse
from tests.conftest import ROOT, SPECS

runner = CliRunner()

TWO_MODELS = ("# a comment before the first model\n"
              "model a : tensor[3, 8, 8] = conv(4, 3) >> relu\n"
              "\n"
              "# a comment between models\n"
              "model b : tensor[3, 8, 8] =\n"
              "    conv(4, 3) >> bn >> relu  # and one after code\n")
"""Two models with comments before, between and after code (LF; the tests convert it)."""

UNKNOWN_AT_4_10 = ("# one\n"
                   "# two\n"
                   "model m : tensor[3, 8, 8] =\n"
                   "    conv >> cnv(4)\n")
"""An unknown name at line 4, column 13; the text before it has comments."""


def _write(tmp_path: Path, text: str, name: str = "m.ssn") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("end", ["\r", "\r\n"], ids=["CR", "CRLF"])
def test_comments_end_at_any_line_end(end: str, tmp_path: Path) -> None:
    spec = _write(tmp_path, TWO_MODELS.replace("\n", end))
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 0, result.output
    assert "no models" not in result.output
    program = ssnc.load(spec)
    assert list(program.models) == ["a", "b"]
    plain = ssnc.loads(TWO_MODELS, "m.ssn")
    assert program.model("b").format_ir() == plain.model("b").format_ir()


def test_the_reported_old_mac_file_is_checked(tmp_path: Path) -> None:
    """The issue's reproduction: a comment, then a model, CR only; `check` used to say
    "ok (no models)" because the comment ran to the end of the file."""
    spec = _write(tmp_path, "# c\rmodel m : tensor[3, 8, 8] = relu\r")
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 0 and "no models" not in result.output, result.output
    assert list(ssnc.load(spec).models) == ["m"]


@pytest.mark.parametrize("end", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_a_diagnostic_has_the_line_and_column_an_editor_shows(end: str, tmp_path: Path
                                                              ) -> None:
    spec = _write(tmp_path, UNKNOWN_AT_4_10.replace("\n", end))
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 1
    assert f"{spec}:4:13: error[E0101]: unknown name `cnv`" in result.stderr, result.stderr
    assert "4 |     conv >> cnv(4)\n" in result.stderr  # the excerpt is that line
    assert "\r" not in result.stderr


def test_a_file_mixing_line_end_styles(tmp_path: Path) -> None:
    mixed = "# one\r\n# two\rmodel m : tensor[3, 8, 8] =\n    conv >> cnv(4)\r"
    spec = _write(tmp_path, mixed)
    result = runner.invoke(app, ["check", str(spec)])
    assert f"{spec}:4:13: error[E0101]" in result.stderr, result.stderr
    assert "4 |     conv >> cnv(4)\n" in result.stderr
    fixed = _write(tmp_path, mixed.replace("cnv", "conv"))
    assert runner.invoke(app, ["fmt", str(fixed)]).exit_code == 0
    assert fixed.read_bytes() == (b"# one\r\n# two\r\nmodel m : tensor[3, 8, 8] = "
                                  b"conv >> conv(4)\r\n")  # the first style, throughout


def test_a_syntax_error_at_the_end_of_a_cr_file(tmp_path: Path) -> None:
    spec = _write(tmp_path, "# c\rmodel m : tensor[3, 8, 8] =\r    conv(4) >>\r")
    result = runner.invoke(app, ["check", str(spec)])
    assert f"{spec}:3:15: error[E0001]: unexpected end of file" in result.stderr, result.stderr


@pytest.mark.parametrize("end", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_a_line_end_inside_a_string_ends_the_line(end: str, tmp_path: Path) -> None:
    """Strings are one line: any line end inside one is an error at the string, as `\\n`
    always was (a lone `\\r` there used to slip through into the value)."""
    spec = _write(tmp_path, f'model m(tag = "a{end}import os") : tensor[3, 8, 8] = relu{end}')
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 1 and f"{spec}:1:15: error[E0001]" in result.stderr, (
        result.stderr)


def test_a_bad_byte_is_placed_by_any_line_end(tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_bytes(b"# one\r# two\r\nmodel m : tensor[3, 8, 8] = \xff\r")
    result = runner.invoke(app, ["check", str(spec)])
    assert f"{spec}:3:29: error[E0001]: byte 0xff is not valid UTF-8" in result.stderr, (
        result.stderr)


def test_other_unicode_breaks_do_not_end_lines(tmp_path: Path) -> None:
    """A form feed or U+2028 inside a comment is part of the comment (as in the lexer), so
    the line shown under a diagnostic is the line it names."""
    text = "# one\u2028still one\x0cstill\nmodel m : tensor[3, 8, 8] = cnv(4)\n"
    spec = _write(tmp_path, text)
    result = runner.invoke(app, ["check", str(spec)])
    assert f"{spec}:2:29: error[E0101]" in result.stderr, result.stderr
    assert "2 | model m : tensor[3, 8, 8] = cnv(4)\n" in result.stderr


@pytest.mark.parametrize("end", ["\r", "\r\n"], ids=["CR", "CRLF"])
def test_fmt_keeps_the_files_line_end_style(end: str, tmp_path: Path) -> None:
    messy = "# hi\ndef f(a,b=2)=conv(a)>>relu # after\nmodel m:tensor[3,8,8]=f(8)\n"
    neat = ssnc.format_spec(messy)
    spec = _write(tmp_path, messy.replace("\n", end))
    assert ssnc.format_spec(spec.read_bytes().decode()) == (
        neat.replace("\n", end))
    result = runner.invoke(app, ["fmt", str(spec)])
    assert result.exit_code == 0, result.output
    assert spec.read_bytes() == neat.replace("\n", end).encode()
    check = runner.invoke(app, ["fmt", "--check", str(spec)])
    assert check.exit_code == 0, check.output  # formatted stays formatted: the round trip


@pytest.mark.parametrize("end", ["\r", "\r\n"], ids=["CR", "CRLF"])
def test_onnx_and_python_positions_count_every_line_end(end: str) -> None:
    plain = ssnc.loads(TWO_MODELS, "m.ssn").model("b")
    other = ssnc.loads(TWO_MODELS.replace("\n", end), "m.ssn").model("b")

    def sources(proto: onnx.ModelProto) -> list[str]:
        return [p.value for n in proto.graph.node for p in n.metadata_props
                if p.key == "ssnc.source"]

    want = sources(plain.to_onnx())
    assert "m.ssn:6:5" in want and sources(other.to_onnx()) == want
    python = generate_source(other.ir)
    assert "# m.ssn:6:19" in python and python == generate_source(plain.ir)


def _endings(text: str, ends: list[str]) -> str:
    """``text`` with its k-th line end replaced by ``ends[k % len(ends)]`` (a `\\r` before
    an empty line that ends in `\\n` would make one CRLF of two ends: it becomes CRLF)."""
    pieces = text.split("\n")
    chosen = [ends[k % len(ends)] for k in range(len(pieces) - 1)]
    for k in range(len(chosen) - 1):
        if chosen[k] == "\r" and pieces[k + 1] == "" and chosen[k + 1].startswith("\n"):
            chosen[k] = "\r\n"
    return "".join(p + end for p, end in zip(pieces, chosen, strict=False)) + pieces[-1]


SHIPPED = sorted([*SPECS.glob("*.ssn"), *(ROOT / "compiler" / "stdlib").glob("*.ssn")])


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SHIPPED), st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=1,
                                          max_size=5))
def test_every_line_end_style_parses_to_the_same_ast(path: Path, ends: list[str]) -> None:
    """Any mix of line ends in a shipped spec or the standard library gives the same AST,
    spans included: positions are the same in every style."""
    text = path.read_text(encoding="utf-8")
    assert parse(_endings(text, ends), path.name) == parse(text, path.name)


def test_line_helpers_count_only_the_three_line_ends() -> None:
    text = "a\rb\r\nc\nd\u2028e\x0cf\n"
    assert source_lines(text) == ["a", "b", "c", "d\u2028e\x0cf"]
    assert [position(text, m.start()) for m in re.finditer("[a-f]", text)] == [
        (1, 1), (2, 1), (3, 1), (4, 1), (4, 3), (4, 5)]
