"""The grammar and parser: the card's forms, AST shapes, syntax errors, round trips."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ssnc
from ssnc.base.diagnostics import SsnError, SsnSyntaxError
from ssnc.grammar import ast
from ssnc.grammar.parser import parse, parse_expr
from tests.ast_text import format_expr, format_program


def body(text: str) -> ast.Expr:
    return parse_expr(text)


def test_card_forms_parse() -> None:
    for text, head in [
        ("fractal(C=4, base=conv3x3)", ast.Call),
        ("nin(mlpconv×3)", ast.Call),
        ("nin(mlpconv x3)", ast.Call),
        ("nin(mlpconv*3)", ast.Call),
        ("hmrnn(layers=3)", ast.Call),
    ]:
        assert isinstance(body(text), head)
    rep = body("nin(mlpconv x3)")
    assert isinstance(rep, ast.Call) and isinstance(rep.args[0], ast.Repeat)
    assert rep.args[0].count == 3
    times = body("mlpconv × 3")
    assert isinstance(times, ast.BinOp) and times.op == "×"


def test_precedence() -> None:
    e = body("a >> b + c * 2")
    assert isinstance(e, ast.BinOp) and e.op == ">>"
    assert isinstance(e.right, ast.BinOp) and e.right.op == "+"
    assert isinstance(e.right.right, ast.BinOp) and e.right.right.op == "*"
    cond = body("if C == 1 then base else join(f >> f, base)")
    assert isinstance(cond, ast.If) and isinstance(cond.cond, ast.Compare)
    assert isinstance(body("-2 ** 2"), ast.Neg)


def test_lambda_and_streams() -> None:
    lam = body("(x) => relu(x + body(x))")
    assert isinstance(lam, ast.Lambda) and lam.params == ("x",)
    two = body("(r, t) => (r, t)")
    assert isinstance(two, ast.Lambda) and two.params == ("r", "t")
    assert isinstance(two.body, ast.TupleLit)
    assert isinstance(body("(x)"), ast.Name)  # a parenthesised name is not a lambda


def test_comprehension_and_let() -> None:
    comp = body("[f(w, p) for (w, p) in zip(ws, ps) if w > 1]")
    assert isinstance(comp, ast.ListComp) and len(comp.clauses) == 1
    (clause,) = comp.clauses
    assert clause.targets == ("w", "p") and clause.destructure and clause.cond is not None
    nested = body("[a * b for a in xs if a > 0 for b in range(a)]")
    assert isinstance(nested, ast.ListComp)
    assert [c.targets for c in nested.clauses] == [("a",), ("b",)]
    assert nested.clauses[0].cond is not None and nested.clauses[1].cond is None
    let = body("let h = conv(8) in h >> h")
    assert isinstance(let, ast.Let) and let.targets == ("h",) and not let.destructure
    pair = body("let (y, h) = r in y")
    assert isinstance(pair, ast.Let) and pair.targets == ("y", "h") and pair.destructure


def test_program_items_and_spans() -> None:
    program = parse('import "lib.ssn"\n# comment\ndef f(a, b = 2) = a\n'
                    "model m(c = 1) : tensor[3, 8, 8] = f(c)\n", "x.ssn")
    imp, d, m = program.items
    assert isinstance(imp, ast.Import) and imp.path == "lib.ssn"
    assert isinstance(d, ast.Def) and [p.name for p in d.params] == ["a", "b"]
    assert d.name_span.line == 3 and d.name_span.col == 5
    assert isinstance(m, ast.Model) and m.inputs[0].type.name == "tensor"
    assert m.span.file == "x.ssn" and m.span.line == 4


def test_numbers() -> None:
    assert body("3") == ast.Number(span=body("3").span, value=3)
    for text, value in [("0.15", 0.15), ("1e-5", 1e-5), (".5", 0.5), ("2.", 2.0)]:
        e = body(text)
        assert isinstance(e, ast.Number) and e.value == value and isinstance(e.value, float)


@pytest.mark.parametrize("text,line,col,fragment", [
    ("def f = conv(8) >> >> relu", 1, 20, "unexpected `>>`"),
    ("model m : tensor[3] = seq([conv(8)", 1, 35, "unexpected end of file"),
    ("def f(a b) = a", 1, 9, "unexpected `b`"),
    ("def f = $", 1, 9, "unexpected `$`"),
    ("def f = 1\n  model", 2, 8, "unexpected end of file"),
])
def test_syntax_errors_are_positioned(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(SsnSyntaxError) as info:
        parse(text, "bad.ssn")
    diag = info.value.diagnostics[0]
    assert diag.code.id == "E0001"
    assert (diag.span.line, diag.span.col) == (line, col)
    assert fragment in diag.message
    assert f"bad.ssn:{line}:{col}: error[E0001]" in info.value.render()


# ------------------------------------------------------------ round trips

KEYWORDS = {"def", "model", "import", "if", "then", "else", "let", "in", "for", "true",
            "false", "none", "and", "or", "not", "x", "tensor"}
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in KEYWORDS)


def _span() -> ssnc.base.diagnostics.Span:
    return ssnc.base.diagnostics.Span.unknown()


def _exprs() -> st.SearchStrategy[ast.Expr]:
    leaves = st.one_of(
        st.integers(0, 10**6).map(lambda v: ast.Number(span=_span(), value=v)),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(
            lambda v: ast.Number(span=_span(), value=v)),
        st.text(string.ascii_letters + ' "\\', max_size=5).map(
            lambda v: ast.String(span=_span(), value=v)),
        st.booleans().map(lambda v: ast.Bool(span=_span(), value=v)),
        st.just(ast.NoneLit(span=_span())),
        NAMES.map(lambda v: ast.Name(span=_span(), id=v)),
    )

    def extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        s = _span()
        kw = st.builds(lambda n, v: ast.Keyword(span=s, name=n, value=v), NAMES, children)
        return st.one_of(
            st.builds(lambda o, a, b: ast.BinOp(span=s, op=o, left=a, right=b),
                      st.sampled_from(["+", "-", "*", "×", "/", "//", "%", "**", ">>"]),
                      children, children),
            st.builds(lambda o, a, b: ast.Compare(span=s, op=o, left=a, right=b),
                      st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
            st.builds(lambda o, a, b: ast.BoolOp(span=s, op=o, left=a, right=b),
                      st.sampled_from(["and", "or"]), children, children),
            st.builds(lambda a: ast.Not(span=s, operand=a), children),
            st.builds(lambda a: ast.Neg(span=s, operand=a), children),
            st.builds(lambda a, n: ast.Repeat(span=s, body=a, count=n), children,
                      st.integers(0, 99)),
            st.builds(lambda f, a, k: ast.Call(span=s, func=f, args=tuple(a), kwargs=tuple(k)),
                      children, st.lists(children, max_size=3),
                      st.lists(kw, max_size=2, unique_by=lambda k: k.name)),
            st.builds(lambda a, i: ast.Index(span=s, obj=a, index=i), children, children),
            st.builds(lambda a: ast.ListLit(span=s, items=tuple(a)),
                      st.lists(children, max_size=3)),
            st.builds(lambda a: ast.TupleLit(span=s, items=tuple(a)),
                      st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda c, a, b: ast.If(span=s, cond=c, then=a, orelse=b),
                      children, children, children),
            st.builds(lambda t, a, b: ast.Let(span=s, targets=tuple(t), destructure=len(t) > 1,
                                              value=a, body=b),
                      st.lists(NAMES, min_size=1, max_size=2, unique=True), children, children),
            st.builds(lambda p, b: ast.Lambda(span=s, params=tuple(p), body=b),
                      st.lists(NAMES, max_size=3), children),
            st.builds(lambda e, cs: ast.ListComp(span=s, elt=e, clauses=tuple(cs)),
                      children, st.lists(st.builds(
                          lambda t, it, c: ast.CompFor(span=s, targets=tuple(t),
                                                       destructure=len(t) > 1, iter=it, cond=c),
                          st.lists(NAMES, min_size=1, max_size=2), children,
                          st.none() | children), min_size=1, max_size=2)),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exprs())
def test_format_then_parse_round_trips(expr: ast.Expr) -> None:
    text = format_expr(expr)
    assert ast.strip_spans(parse_expr(text)) == ast.strip_spans(expr), text


def test_shipped_specs_round_trip() -> None:
    from tests.conftest import SPECS

    for path in sorted(SPECS.glob("*.ssn")):
        program = parse(path.read_text(), path.name)
        again = parse(format_program(program), path.name)
        assert ast.strip_spans(again) == ast.strip_spans(program), path.name


# ------------------------------------------------------------ token soup

TOKENS = ["def", "model", "import", "if", "then", "else", "let", "in", "for", "(", ")", "[",
          "]", ",", "=", "==", ">>", "+", "*", "×", "x3", "=>", ":", "conv", "relu", "mean",
          "fractal", "seq", "shared", "tensor[3, 8, 8]", "1", "0", "3.5", "-", "f", "g",
          "C", '"a.ssn"', "true", "none", "zip", "linear(10)", "(x) =>", "x", "#c\n", "\n"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30))
def test_token_soup_only_raises_diagnostics(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        program = ssnc.loads(text, "soup.ssn")
        for name in program.models:
            program.model(name)
    except SsnError as exc:
        rendered = exc.render()
        assert "error[E" in rendered
        assert "E9001" not in rendered, rendered


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_only_raises_diagnostics(text: str) -> None:
    try:
        ssnc.loads(text, "noise.ssn")
    except SsnError as exc:
        assert exc.render().startswith("noise.ssn:")


EXPR_TOKENS = ["conv(8)", "relu", "bn", ">>", "+", "*", "x2", "mean(", "sum(", "concat(", ")",
               ",", "(x) =>", "x", "shared(", "fractal(2,", "3", "0", "-1", "[", "]", "flatten",
               "linear(4)", "maxpool(2)", "gap", "if true then", "else", "identity", "(", "×",
               "seq([", "])", "dropout(0.5)", "conv(8, 3, stride=2)", "C", "embedding(4, 2)"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=14))
def test_expression_soup_elaborates_or_diagnoses(tokens: list[str]) -> None:
    text = "model m(C = 2) : tensor[3, 8, 8] = " + " ".join(tokens)
    try:
        model = ssnc.loads(text, "soup.ssn").model()
    except SsnError as exc:
        assert "E9001" not in exc.render(), exc.render()
    else:
        model.ir.verify()
        assert all(n.shape is not None for n in model.ir)


def test_children_are_every_node_a_field_holds() -> None:
    """`ast.children` reads only the fields that can hold nodes; it finds what a walk over
    every field finds, on every shipped spec (all node kinds)."""
    from pydantic import BaseModel

    from tests.conftest import SPECS

    def every_field(node: ast.Node) -> list[ast.Node]:
        out: list[ast.Node] = []
        for name in type(node).model_fields:
            value = getattr(node, name)
            out += [v for v in (value if isinstance(value, tuple) else (value,))
                    if isinstance(v, ast.Node)]
        return out

    kinds: set[type[BaseModel]] = set()
    for path in sorted(SPECS.glob("*.ssn")):
        stack: list[ast.Node] = [parse(path.read_text(), path.name)]
        while stack:
            node = stack.pop()
            kinds.add(type(node))
            assert ast.children(node) == every_field(node), (path.name, type(node))
            stack += ast.children(node)
    assert {ast.Call, ast.Lambda, ast.ListComp, ast.CompFor, ast.Model, ast.Param} <= kinds
