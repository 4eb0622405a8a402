"""The descent parser (parse's fast path) against lark (the grammar's reference): the same
terminals, the same AST with the same spans wherever it accepts a text, the same tree depth,
and it accepts every text lark does except a keyword standing where only a name can."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssnc.base.diagnostics import MAX_NESTING, SsnError
from ssnc.compiler.guard import guarded
from ssnc.grammar import ast, descent
from ssnc.grammar.format import format_text
from ssnc.grammar.parser import _error_near, _parse_tree, _parser, parse, parse_expr
from tests.ast_text import format_expr
from tests.test_parser import TOKENS, _exprs

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("specs/**/*.ssn"), *ROOT.glob("examples/**/*.ssn")])


def _lark(text: str, start: str = "start") -> object:
    """What lark's path builds (the fast path bypassed), or the diagnostic it raises."""
    from ssnc.grammar.parser import ToAst, _check_nesting

    try:
        tree = _parse_tree(text, "t.ssn", start)
        _check_nesting(tree, "t.ssn")
        return ToAst("t.ssn").transform(tree)
    except (SsnError, lark.exceptions.VisitError) as exc:
        return exc


def _tree_depth(tree: lark.Tree[lark.Token]) -> int:
    return 1 + max((_tree_depth(c) for c in tree.children if isinstance(c, lark.Tree)),
                   default=0)


def _terminals() -> dict[str, str]:
    return {t.name: t.pattern.to_regexp() for t in _parser().terminals}


# ------------------------------------------------------------ the same terminals

@pytest.mark.parametrize("lark_name,ours", [
    ("WS", "ws"), ("COMMENT", "ws"), ("LAMBDA_HEAD", "LAMBDA"), ("NAME", "NAME"),
    ("NUMBER", "NUMBER"), ("STRING", "STRING"),
])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_terminals_are_the_grammars(lark_name: str, ours: str, data: st.DataObject) -> None:
    terminals = _terminals()
    theirs = terminals[lark_name]
    mine = descent._TERMINALS[ours]
    text = data.draw(st.from_regex(theirs, fullmatch=True))
    assert re.fullmatch(mine, text), (lark_name, text)
    text = data.draw(st.from_regex(mine, fullmatch=True))
    # what our `ws` skips is lark's WS or COMMENT, both ignored there
    back = (terminals["WS"], terminals["COMMENT"]) if ours == "ws" else (theirs,)
    assert any(re.fullmatch(p, text) for p in back), (lark_name, text)


def test_operators_and_keywords_are_the_grammars() -> None:
    terminals = {n: p for n, p in _terminals().items()
                 if n not in ("WS", "COMMENT", "LAMBDA_HEAD", "NAME", "NUMBER", "STRING")}
    symbols = string.punctuation + "×"
    for text in [*symbols, *(a + b for a in symbols for b in symbols)]:
        theirs = any(re.fullmatch(p, text) for p in terminals.values())
        assert theirs == bool(re.fullmatch(descent._TERMINALS["op"], text)), text
    name = _terminals()["NAME"]
    keywords = {p for p in terminals.values() if re.fullmatch(name, p)}
    assert keywords == set(descent._KEYWORDS)
    for text in ("x3", "×12", "x0"):  # REPEAT: `×N` a token, `xN` a name where an op is due
        assert re.fullmatch(terminals["REPEAT"], text)
        assert (re.fullmatch(descent._TERMINALS["REPEAT"], text)
                or descent._REPEAT_NAME.fullmatch(text))


# ------------------------------------------------------------ the same ASTs

@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_parse_as_lark_parses_them(path: Path) -> None:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    ours = descent.parse(text, "t.ssn", "start")
    assert ours is not None
    assert ours == _lark(text)  # spans included


_SEPARATORS = [" ", "  ", "\n", "\n\n   ", "\t", " # note\n", "#\n"]


def _relayout(text: str, seed: int) -> str:
    """``text``'s tokens with other whitespace and comments between them."""
    toks = descent.tokens(text)
    assert toks is not None
    pick = random.Random(seed).choice
    return "".join(tok[1] + pick(_SEPARATORS) for tok in toks[:-1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exprs(), st.integers(0, 2**32))
def test_generated_expressions_parse_as_lark_parses_them(expr: ast.Expr, seed: int) -> None:
    for text in (format_expr(expr), _relayout(format_expr(expr), seed),
                 format_text(f"def f = {format_expr(expr)}\n")):
        start = "value" if not text.startswith("def") else "start"
        ours = descent.parse(text, "t.ssn", start)
        assert ours is not None, text
        assert ours == _lark(text, start), text
        parser = descent._Parser(descent.tokens(text) or [], "t.ssn")
        depth = parser.value()[1] if start == "value" else parser.program()[1]
        assert depth == _tree_depth(_parse_tree(text, "t.ssn", start)), text


SOUP = [*TOKENS, "**", "x2", "×2", "-", "not", "and", "or", "<", ">=", "//", "%", "(", ")",
        "[", "]", ",", "for", "in", "if", "let", "(a, *r) =>", "()", "=>", "a", "b", "2.",
        ".5", "1e3", '"s"', "tensor", "[]", "model m : tensor[3]", "def g(a, b = 2)", ":",
        "named: tensor[1]", "then", "else"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SOUP), max_size=25), st.sampled_from(["start", "value"]))
def test_token_soup_parses_as_lark_parses_it(tokens: list[str], start: str) -> None:
    """Where the descent parser accepts, lark builds the same AST; where it gives up, lark
    either refuses the text or reads a keyword as a name (its contextual lexer does)."""
    text = " ".join(tokens)
    ours = descent.parse(text, "t.ssn", start)
    theirs = _lark(text, start)
    if isinstance(ours, descent.Stuck):  # lark, on the item alone, says what lark says
        near = _error_near(text, "t.ssn", start, ours)
        if near is not None:
            assert isinstance(theirs, SsnError), text
            assert near.render() == theirs.render(), text
            return
    elif ours is not None:
        assert ours == theirs, text
        return
    if not isinstance(theirs, Exception):
        tree = _parse_tree(text, "t.ssn", start)
        names = {str(t) for t in tree.scan_values(lambda v: isinstance(v, lark.Token))
                 if t.type == "NAME"}
        assert names & descent._KEYWORDS, text


# ------------------------------------------------------------ what it leaves to lark

@pytest.mark.parametrize("text", [
    "def f = a >> >> b",  # a syntax error
    "def f = 99999999999999999999 >> >>",  # too large an integer, then a syntax error
    "def f = (*a, b) => a",  # `*` not on the last parameter
    "def in = 1",  # a keyword as a name: lark's contextual lexer reads it as one
    "def f = $",  # no token
])
def test_what_it_leaves_to_lark(text: str) -> None:
    left = descent.parse(text, "t.ssn", "start")
    assert left is None or isinstance(left, descent.Stuck)


@pytest.mark.parametrize("text", [
    "def f = 99999999999999999999",
    "def f(a = 2) = [1, 99999999999999999999, 88888888888888888888]",
    "model m : tensor[3] = (x) => conv(1)(x) * 123456789012345678901234567890",
])
def test_an_integer_too_large_is_lark_paths_diagnostic(text: str) -> None:
    """Raised once the whole text has parsed, at the first such integer, as ToAst does."""
    with pytest.raises(SsnError) as ours:
        descent.parse(text, "t.ssn", "start")
    theirs = _lark(text)
    assert isinstance(theirs, lark.exceptions.VisitError)
    assert ours.value.render() == theirs.orig_exc.with_sources({"t.ssn": text}).render()


def test_too_deep_goes_to_lark_and_its_diagnostic() -> None:
    deep = "def f = " + "- " * (MAX_NESTING + 5) + "1\n"
    assert guarded(lambda: descent.parse(deep, "t.ssn", "start")) is None
    with pytest.raises(SsnError) as info:
        parse(deep, "deep.ssn")
    assert "nests more than" in info.value.render()
    at_limit = "- " * (MAX_NESTING - 3) + "1"  # neg trees, a number and the `value` root
    assert isinstance(guarded(lambda: parse_expr(at_limit)), ast.Neg)


@pytest.mark.parametrize("text", [
    "def a = relu\n" * 40 + "def f = conv(8) >> >> relu\n" + "def b = relu\n" * 40,
    "def a = relu\ndef b = (conv(8)\ndef c = relu\n",
    "def a = relu\n)\n",
    "def a = relu\ndef b = [1, 2",  # at the end of the file
    "def in = 1\ndef f = >> relu",  # a keyword lark reads as a name, then an error
    "model m : tensor[3] = conv(8)\nmodel n : tensor[3] = conv(8) >",
])
def test_a_syntax_error_is_lark_s_found_from_its_item_alone(text: str) -> None:
    with pytest.raises(SsnError) as ours:
        parse(text, "t.ssn")
    theirs = _lark(text)
    assert isinstance(theirs, SsnError)
    assert ours.value.render() == theirs.render()
