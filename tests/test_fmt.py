"""`ssnc fmt`: the canonical layout. It is idempotent, keeps every comment where it was, reads
numbers back equal, gives the same AST and the same IR, and ignores how the input was laid out;
the command rewrites files atomically, reads stdin, and `--check`s without writing."""

from __future__ import annotations

import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Token
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from ssnc.grammar import ast
from ssnc.grammar.format import _comments, _cst_parser, normalise_number
from ssnc.grammar.parser import parse
from tests.ast_text import format_program
from tests.conftest import ROOT, SPECS
from tests.test_parser import _exprs

STDLIB = ROOT / "compiler" / "stdlib"
SHIPPED = sorted(SPECS.glob("*.ssn")) + sorted(STDLIB.glob("*.ssn"))
runner = CliRunner()


def test_shipped_specs_and_the_stdlib_are_formatted() -> None:
    """What CI checks: `ssnc fmt --check` passes on everything shipped."""
    result = runner.invoke(app, ["fmt", "--check", str(SPECS), str(STDLIB)])
    assert result.exit_code == 0, result.output
    for path in SHIPPED:
        assert ssnc.format_spec(path.read_text(), path.name) == path.read_text(), path.name


def _ir(text: str, file: str) -> dict[str, str]:
    """Every model's printed IR without source positions."""
    program = ssnc.loads(text, file, root=SPECS)
    return {name: re.sub(r"  # \S+:\d+:\d+$", "", program.model(name).format_ir(), flags=re.M)
            for name in program.models}


def _relaid(text: str, rng: random.Random) -> str:
    """``text`` with its tokens re-spaced at random (spaces, tabs, line breaks), comments kept
    on their lines (trailing or not), blank lines kept only after comments."""
    tree = _cst_parser().parse(text)
    tokens = sorted(tree.scan_values(lambda v: isinstance(v, Token)),
                    key=lambda t: t.start_pos or 0)
    pieces: list[tuple[int, str, str]] = [(t.start_pos or 0, "token", str(t)) for t in tokens]
    for c in _comments(text):
        pieces.append((c.pos, "comment", c.text))
    pieces.sort()
    comment_info = {c.pos: c for c in _comments(text)}
    out: list[str] = []
    last_line_of_token = -1
    for pos, kind, piece in pieces:
        line = text.count("\n", 0, pos) + 1
        if kind == "comment":
            c = comment_info[pos]
            gap = (" " if line == last_line_of_token else "" if out and out[-1].endswith("\n")
                   else "\n" + ("\n" if c.blank_before else ""))
            out += [gap, piece, "\n\n" if c.blank_after else "\n"]
            last_line_of_token = -1
            continue
        if out and not out[-1].endswith("\n"):
            out.append(rng.choice([" ", "  ", "\n", "\n      ", "\t", " \n "]))
        out.append(piece)
        last_line_of_token = text.count("\n", 0, pos + len(piece)) + 1
    return "".join(out) + "\n"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_any_layout_of_a_shipped_spec_formats_back_to_it(path: Path) -> None:
    text = path.read_text()
    for seed in range(8):
        messy = _relaid(text, random.Random(seed))
        assert ast.strip_spans(parse(messy)) == ast.strip_spans(parse(text))
        assert ssnc.format_spec(messy, path.name) == text, f"seed {seed}"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.name)
def test_formatting_keeps_the_ir(path: Path) -> None:
    text = path.read_text()
    messy = _relaid(text, random.Random(1))
    assert _ir(ssnc.format_spec(messy, path.name), path.name) == _ir(messy, path.name)


def _with_comments(text: str, rng: random.Random) -> str:
    """Comments at the ends of random lines and on lines of their own between them."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if rng.random() < 0.3:
            out.append(f"# own {i} #{'x' * rng.randrange(3)}")
        out.append(line + (f"  # end {i}" if line and rng.random() < 0.4 else ""))
    return "\n".join(out)


def _programs() -> st.SearchStrategy[str]:
    names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
        lambda s: s not in {"def", "model", "import", "if", "then", "else", "let", "in", "for",
                            "true", "false", "none", "and", "or", "not", "x"})

    def program(defs: list[tuple[str, ast.Expr]]) -> str:
        span = ssnc.base.diagnostics.Span.unknown()
        items = tuple(ast.Def(span=span, name=n, params=(), body=e, name_span=span)
                      for n, e in defs)
        return format_program(ast.Program(span=span, file="g.ssn", items=items))

    return st.lists(st.tuples(names, _exprs()), min_size=1, max_size=3).map(program)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(), st.integers(0, 2**32))
def test_generated_programs_format_idempotently_to_the_same_ast(text: str, seed: int) -> None:
    text = _with_comments(text, random.Random(seed))
    once = ssnc.format_spec(text, "g.ssn")
    assert ssnc.format_spec(once, "g.ssn") == once
    assert ast.strip_spans(parse(once)) == ast.strip_spans(parse(text))
    assert [c.text for c in _comments(once)] == [c.text for c in _comments(text)]
    assert once.endswith("\n") and not once.endswith("\n\n")
    assert all(line == line.rstrip() for line in once.splitlines())


@given(st.from_regex(r"([0-9]{1,4}|[0-9]{0,3}\.[0-9]{0,3})([eE][+-]?[0-9]{1,4})?",
                     fullmatch=True).filter(lambda t: any(ch.isdigit() for ch in t.split("e")[0]
                                                          .split("E")[0])))
def test_numbers_read_back_equal(text: str) -> None:
    norm = normalise_number(text)
    assert normalise_number(norm) == norm
    value = ast.strip_spans(parse(f"def f = {text}").items[0].body)  # type: ignore[union-attr]
    again = ast.strip_spans(parse(f"def f = {norm}").items[0].body)  # type: ignore[union-attr]
    assert again == value and type(again["value"]) is type(value["value"])


def test_infinity_and_other_spellings_stay_numbers() -> None:
    text = "def f = [1e999, 1E+05, 2., .5, 007, 1.50e-03, 0e0]\n"
    assert ssnc.format_spec(text) == "def f = [1e999, 1e5, 2.0, 0.5, 7, 1.50e-3, 0e0]\n"


@pytest.mark.parametrize("messy,canonical", [
    # trailing comments stay on their line; one at the end of an item breaks nothing
    ("def  f(a,b=2)=conv(a)>>relu  # hi\n\n\n\nmodel m:tensor[3,8,8]=f(8)\n",
     "def f(a, b = 2) = conv(a) >> relu  # hi\n\nmodel m : tensor[3, 8, 8] = f(8)\n"),
    # a header keeps its blank line; comments above an item stay with it
    ("# head\n\nimport \"a.ssn\" # t\n# lead\ndef f = [1, # one\n  2, # two\n]\n\n\n# end\n",
     "# head\n\nimport \"a.ssn\"  # t\n\n# lead\ndef f =\n    [1,  # one\n     2  # two\n"
     "    ]\n\n# end\n"),
    # a comment inside a chain breaks it, one step per line
    ("def f = conv(8)\n  # then\n  >> relu >> bn\n",
     "def f =\n    conv(8)\n    # then\n    >> relu\n    >> bn\n"),
    # long calls fill their lines and continue under the first argument
    ("def g = h(aaaaaaaaaa, bbbbbbbbbb, cccccccccc, dddddddddd, eeeeeeeeee, ffffffffff, "
     "gggggggggg, hhhhhhhhhh, iiii)",
     "def g =\n    h(aaaaaaaaaa, bbbbbbbbbb, cccccccccc, dddddddddd, eeeeeeeeee, ffffffffff, "
     "gggggggggg,\n      hhhhhhhhhh, iiii)\n"),
    # if/else-if chains and let chains: one line if they fit, else one step per line
    ("def f(C) = if C<1 then fail(\"no\") else if C==1 then base else join(f(C-1)>>f(C-1), base, "
     "drop_path=0.15, other = 12345678)",
     "def f(C) =\n    if C < 1 then fail(\"no\")\n    else if C == 1 then base\n"
     "    else join(f(C - 1) >> f(C - 1), base, drop_path = 0.15, other = 12345678)\n"),
    # a long condition keeps its comparisons whole, and `then` takes a line of its own
    ("def f(a, b, c, d) = if a % 16 + b % 16 > 0 and c > 1000000 and d > 1000000 and a > 100 "
     "then fail(\"channels must be multiples of the tile, with a long message\") else conv(a)",
     "def f(a, b, c, d) =\n    if a % 16 + b % 16 > 0 and c > 1000000 and d > 1000000 and a > 100\n"
     "    then fail(\"channels must be multiples of the tile, with a long message\")\n"
     "    else conv(a)\n"),
    ("def u(x) = let ( a,b ) = x in a", "def u(x) = let (a, b) = x in a\n"),
    ("def c(h) = (x,  *s) => let a = linear(4 * h)(x) in let b = sigmoid(a) in "
     "let d = tanh(a) in (b * d, b, d, s)",
     "def c(h) = (x, *s) =>\n"
     "    let a = linear(4 * h)(x) in let b = sigmoid(a) in let d = tanh(a) in (b * d, b, d, s)\n"),
    ("def c(h) = (x) => let a = linear(4 * h)(x) in let b = sigmoid(a) in let d = tanh(a) in "
     "(b * d, b, d, x, h, a + b + d)",
     "def c(h) = (x) =>\n    let a = linear(4 * h)(x) in\n    let b = sigmoid(a) in\n"
     "    let d = tanh(a) in\n    (b * d, b, d, x, h, a + b + d)\n"),
    # one-element tuples keep their comma; other trailing commas go
    ("def f = ((a,), [1, 2,], g(x,))", "def f = ((a,), [1, 2], g(x))\n"),
    ("", ""),
    ("# only a comment", "# only a comment\n"),
])
def test_layout(messy: str, canonical: str) -> None:
    assert ssnc.format_spec(messy) == canonical
    assert ssnc.format_spec(canonical) == canonical


def test_deep_nesting_formats_quickly() -> None:
    depth = 1500
    text = "def f = " + "(" * depth + "x" + ")" * depth + " >> relu" * 2000 + "\n"
    once = ssnc.format_spec(text)
    assert ssnc.format_spec(once) == once


def test_a_syntax_error_is_a_positioned_diagnostic() -> None:
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.format_spec("def f = conv(8) >>\n", "bad.ssn")
    assert "bad.ssn:1:19: error[E0001]" in info.value.render("format")


# ------------------------------------------------------------ the command

MESSY = "def f(a,b=2)=conv(a)>>relu # hi\nmodel m:tensor[3,8,8]=f(8)\n"
NEAT = "def f(a, b = 2) = conv(a) >> relu  # hi\n\nmodel m : tensor[3, 8, 8] = f(8)\n"


def test_fmt_rewrites_files_in_place_keeping_their_mode(tmp_path: Path) -> None:
    messy, neat = tmp_path / "messy.ssn", tmp_path / "neat.ssn"
    messy.write_text(MESSY)
    neat.write_text(NEAT)
    os.chmod(messy, 0o640)
    before = neat.stat().st_mtime_ns
    result = runner.invoke(app, ["fmt", str(messy), str(neat)])
    assert result.exit_code == 0, result.output
    assert messy.read_text() == NEAT and stat.S_IMODE(messy.stat().st_mode) == 0o640
    assert neat.stat().st_mtime_ns == before  # unchanged files are not rewritten
    assert f"reformatted {messy}" in result.stderr and "neat" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messy.ssn", "neat.ssn"]


def test_fmt_check_shows_a_diff_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text(MESSY)
    result = runner.invoke(app, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"--- {spec} (as it is)" in result.stdout and "+def f(a, b = 2)" in result.stdout
    assert "1 of 1 spec would be reformatted" in result.stderr
    assert spec.read_text() == MESSY
    spec.write_text(NEAT)
    assert runner.invoke(app, ["fmt", "--check", str(spec)]).exit_code == 0


def test_fmt_stdin_to_stdout() -> None:
    done = subprocess.run([sys.executable, "-m", "ssnc.cli", "fmt", "-"], input=MESSY,
                          capture_output=True, text=True, cwd=ROOT.parent)
    assert done.returncode == 0 and done.stdout == NEAT, done.stderr
    bad = subprocess.run([sys.executable, "-m", "ssnc.cli", "fmt", "-"], input="def f = (\n",
                         capture_output=True, text=True, cwd=ROOT.parent)
    assert bad.returncode == 1 and bad.stdout == ""
    assert "<stdin>:1:10: error[E0001]" in bad.stderr and "Traceback" not in bad.stderr
    assert "could not format" in bad.stderr


def test_fmt_refuses_what_it_cannot_rewrite_and_goes_on(tmp_path: Path) -> None:
    broken, fifo, good = tmp_path / "broken.ssn", tmp_path / "pipe.ssn", tmp_path / "good.ssn"
    broken.write_text("def f = conv(8) >>\n")
    os.mkfifo(fifo)
    good.write_text(MESSY)
    result = runner.invoke(app, ["fmt", str(broken), str(fifo), str(good)])
    assert result.exit_code == 1
    assert "broken.ssn:1:19: error[E0001]" in result.stderr
    assert "pipe.ssn: not a regular file" in result.stderr
    assert broken.read_text() == "def f = conv(8) >>\n" and good.read_text() == NEAT


def test_fmt_help_names_its_options() -> None:
    result = runner.invoke(app, ["fmt", "--help"])
    assert result.exit_code == 0 and "--check" in result.output and "<bool>" not in result.output

