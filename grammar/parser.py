"""Text to AST: the descent parser's fast path, and behind it the lark LALR parser (the
grammar's reference) with a transformer that only builds nodes, for what the fast path leaves
to it: syntax errors, turned into diagnostics (lark's own exceptions never reach the user)."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import lark
from lark import Token, Transformer, v_args
from lark.tree import Meta

from ..base.diagnostics import (
    E_NESTING,
    E_SYNTAX,
    MAX_NESTING,
    Span,
    SsnError,
    error,
    excerpt,
    normalize_line_ends,
    position,
    source_lines,
)
from . import ast, descent
from .literals import lambda_head, number, too_large, unquote

# Friendly names for terminals in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "MINUS": "`-`",
    "SEQ_OP": "`>>`",
    "POW_OP": "`**`",
    "CMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `×`, `/`, `//` or `%`",
    "REPEAT": "a repetition like `x3`",
    "LAMBDA_HEAD": "`(x) =>`",
    "$END": "the end of the file",
}
_KEYWORDS = {"DEF", "MODEL", "IMPORT", "IF", "THEN", "ELSE", "LET", "IN", "FOR", "TRUE",
             "FALSE", "NONE", "AND", "OR", "NOT"}


@cache
def _parser() -> lark.Lark:
    text = resources.files(__package__).joinpath("ssn.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     start=["start", "value"])



def _describe(terminal: str) -> str:
    if terminal in _KEYWORDS:
        return f"`{terminal.lower()}`"
    return _TERMINAL_NAMES.get(terminal, terminal)


def _expected(names: set[str]) -> str:
    if {"NAME", "NUMBER"} <= names:
        names = (names - {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS", "TRUE", "FALSE",
                          "NONE", "NOT", "LAMBDA_HEAD", "IF", "LET"}) | {"an expression"}
    wanted = sorted({_describe(n) for n in names if not n.startswith("__")})
    if not wanted:
        return ""
    if len(wanted) > 6:
        wanted = [*wanted[:6], "..."]
    return ", ".join(wanted)


class ToAst(Transformer[Token, Any]):
    """Builds AST nodes; it never checks anything (errors here would come back wrapped)."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.unknown(self.file)
        return Span(file=self.file, line=meta.line, col=meta.column,
                    end_line=meta.end_line, end_col=meta.end_column)

    def _tok_span(self, tok: Token) -> Span:
        return Span(file=self.file, line=tok.line or 0, col=tok.column or 0,
                    end_line=tok.end_line or 0, end_col=tok.end_column or 0)

    @v_args(meta=True)
    def start(self, meta: Meta, items: list[Any]) -> ast.Program:
        return ast.Program(span=self._span(meta), file=self.file, items=tuple(items))

    @v_args(meta=True)
    def import_stmt(self, meta: Meta, c: list[Any]) -> ast.Import:
        return ast.Import(span=self._span(meta), path=unquote(str(c[0])))

    @v_args(meta=True)
    def def_stmt(self, meta: Meta, c: list[Any]) -> ast.Def:
        name, params, body = c
        return ast.Def(span=self._span(meta), name=str(name), params=tuple(params or ()),
                       body=body, name_span=self._tok_span(name))

    @v_args(meta=True)
    def model_stmt(self, meta: Meta, c: list[Any]) -> ast.Model:
        name, params, inputs, body = c
        return ast.Model(span=self._span(meta), name=str(name), params=tuple(params or ()),
                         inputs=inputs, body=body, name_span=self._tok_span(name))

    def model_inputs(self, c: list[Any]) -> tuple[ast.ModelInput, ...]:
        if len(c) == 1 and isinstance(c[0], ast.TypeExpr):
            return (ast.ModelInput(span=c[0].span, name=None, type=c[0]),)
        return tuple(c)

    @v_args(meta=True)
    def named_input(self, meta: Meta, c: list[Any]) -> ast.ModelInput:
        name, type_ = c
        return ast.ModelInput(span=self._span(meta), name=str(name), type=type_)

    def param_list(self, c: list[Any]) -> list[ast.Param]:
        return [p for p in c if p is not None]

    @v_args(meta=True)
    def param(self, meta: Meta, c: list[Any]) -> ast.Param:
        return ast.Param(span=self._span(meta), name=str(c[0]), default=c[1])

    @v_args(meta=True)
    def type_expr(self, meta: Meta, c: list[Any]) -> ast.TypeExpr:
        args = tuple(x for x in c[1:] if x is not None)
        return ast.TypeExpr(span=self._span(meta), name=str(c[0]), args=args)

    @v_args(meta=True)
    def lambda_expr(self, meta: Meta, c: list[Any]) -> ast.Lambda:
        head = lambda_head(str(c[0]))
        if head is None:
            raise error(E_SYNTAX, "only the last parameter of `=>` can collect the rest (`*`)",
                        self._span(meta))
        params, rest = head
        return ast.Lambda(span=self._span(meta), params=params, rest=rest, body=c[1])

    @v_args(meta=True)
    def if_expr(self, meta: Meta, c: list[Any]) -> ast.If:
        return ast.If(span=self._span(meta), cond=c[0], then=c[1], orelse=c[2])

    @v_args(meta=True)
    def let_expr(self, meta: Meta, c: list[Any]) -> ast.Let:
        (targets, destructure), value, body = c
        return ast.Let(span=self._span(meta), targets=targets, destructure=destructure,
                       value=value, body=body)

    @v_args(meta=True)
    def seq_op(self, meta: Meta, c: list[Any]) -> ast.BinOp:
        return ast.BinOp(span=self._span(meta), op=">>", left=c[0], right=c[2])

    @v_args(meta=True)
    def binop(self, meta: Meta, c: list[Any]) -> ast.BinOp:
        return ast.BinOp(span=self._span(meta), op=str(c[1]), left=c[0],  # type: ignore[arg-type]
                         right=c[2])

    @v_args(meta=True)
    def pow_op(self, meta: Meta, c: list[Any]) -> ast.BinOp:
        return ast.BinOp(span=self._span(meta), op="**", left=c[0], right=c[2])

    @v_args(meta=True)
    def repeat_suffix(self, meta: Meta, c: list[Any]) -> ast.Repeat:
        return ast.Repeat(span=self._span(meta), body=c[0], count=int(str(c[1])[1:]))

    @v_args(meta=True)
    def compare(self, meta: Meta, c: list[Any]) -> ast.Compare:
        return ast.Compare(span=self._span(meta), op=str(c[1]), left=c[0],  # type: ignore[arg-type]
                           right=c[2])

    @v_args(meta=True)
    def or_op(self, meta: Meta, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp(span=self._span(meta), op="or", left=c[0], right=c[1])

    @v_args(meta=True)
    def and_op(self, meta: Meta, c: list[Any]) -> ast.BoolOp:
        return ast.BoolOp(span=self._span(meta), op="and", left=c[0], right=c[1])

    @v_args(meta=True)
    def not_op(self, meta: Meta, c: list[Any]) -> ast.Not:
        return ast.Not(span=self._span(meta), operand=c[0])

    @v_args(meta=True)
    def neg(self, meta: Meta, c: list[Any]) -> ast.Neg:
        return ast.Neg(span=self._span(meta), operand=c[0])

    @v_args(meta=True)
    def call(self, meta: Meta, c: list[Any]) -> ast.Call:
        args = [a for a in c[1:] if a is not None]
        pos = tuple(a for a in args if not isinstance(a, ast.Keyword))
        kws = tuple(a for a in args if isinstance(a, ast.Keyword))
        return ast.Call(span=self._span(meta), func=c[0], args=pos, kwargs=kws)

    def arg(self, c: list[Any]) -> Any:
        return c[0]

    @v_args(meta=True)
    def kwarg(self, meta: Meta, c: list[Any]) -> ast.Keyword:
        return ast.Keyword(span=self._span(meta), name=str(c[0]), value=c[1])

    @v_args(meta=True)
    def index(self, meta: Meta, c: list[Any]) -> ast.Index:
        return ast.Index(span=self._span(meta), obj=c[0], index=c[1])

    @v_args(meta=True)
    def number(self, meta: Meta, c: list[Any]) -> ast.Number:
        text = str(c[0])
        value = number(text)
        if value is None:
            raise too_large(text, self._span(meta))
        return ast.Number(span=self._span(meta), value=value)

    def value(self, c: list[Any]) -> ast.Expr:
        return c[0]  # type: ignore[no-any-return]

    @v_args(meta=True)
    def string(self, meta: Meta, c: list[Any]) -> ast.String:
        return ast.String(span=self._span(meta), value=unquote(str(c[0])))

    @v_args(meta=True)
    def name(self, meta: Meta, c: list[Any]) -> ast.Name:
        return ast.Name(span=self._span(meta), id=str(c[0]))

    @v_args(meta=True)
    def true(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(span=self._span(meta), value=True)

    @v_args(meta=True)
    def false(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(span=self._span(meta), value=False)

    @v_args(meta=True)
    def none(self, meta: Meta, c: list[Any]) -> ast.NoneLit:
        return ast.NoneLit(span=self._span(meta))

    @v_args(meta=True)
    def list_lit(self, meta: Meta, c: list[Any]) -> ast.ListLit:
        return ast.ListLit(span=self._span(meta), items=tuple(x for x in c if x is not None))

    @v_args(meta=True)
    def tuple_lit(self, meta: Meta, c: list[Any]) -> ast.TupleLit:
        return ast.TupleLit(span=self._span(meta), items=tuple(x for x in c if x is not None))

    @v_args(meta=True)
    def list_comp(self, meta: Meta, c: list[Any]) -> ast.ListComp:
        elt, *clauses = c
        return ast.ListComp(span=self._span(meta), elt=elt, clauses=tuple(clauses))

    @v_args(meta=True)
    def comp_for(self, meta: Meta, c: list[Any]) -> ast.CompFor:
        (targets, destructure), iter_, cond = c
        return ast.CompFor(span=self._span(meta), targets=targets, destructure=destructure,
                           iter=iter_, cond=cond)

    def target(self, c: list[Any]) -> tuple[tuple[str, ...], bool]:
        return (str(c[0]),), False

    def tuple_target(self, c: list[Any]) -> tuple[tuple[str, ...], bool]:
        return tuple(str(x) for x in c if x is not None), True


def parse(text: str, file: str = "<string>") -> ast.Program:
    """Parse a whole .ssn file; raises SsnSyntaxError with a positioned diagnostic. The
    last few parses of texts up to 256 KB are kept (the AST is frozen): a language server
    asks again for the text it just compiled, also when compiling stopped after parsing."""
    if len(text) > _KEEP_UP_TO:  # a big AST is not worth its memory
        return _build(text, file, "start")  # type: ignore[no-any-return]
    return _parse_kept(text, file)


_KEEP_UP_TO = 256 * 1024


@lru_cache(maxsize=8)
def _parse_kept(text: str, file: str) -> ast.Program:
    return _build(text, file, "start")  # type: ignore[no-any-return]


def _build(text: str, file: str, start: str) -> Any:
    text = normalize_line_ends(text)  # the lexer and every position count `\n` alone
    _check_brackets(text, file)
    built = descent.parse(text, file, start)  # the fast path; lark decides what it leaves
    if isinstance(built, descent.Stuck):
        near = _error_near(text, file, start, built)
        if near is not None:
            raise near
    elif built is not None:
        return built
    tree = _parse_tree(text, file, start)
    _check_nesting(tree, file)
    try:
        return ToAst(file).transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, SsnError):
            raise exc.orig_exc.with_sources({file: text}) from None
        raise


def _parse_tree(text: str, file: str, start: str) -> lark.Tree[Token]:
    try:
        return _parser().parse(text, start=start)
    except lark.UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None


def _error_near(text: str, file: str, start: str, stuck: descent.Stuck) -> SsnError | None:
    """Lark's syntax error where the descent parser stopped, found by lark parsing only the
    item it stopped in, up to that token (what comes before it blanked, so positions and
    the parser's state at an item's start are the same): a large file's error costs its
    item, not the file. None where lark does not stop at that token too (lark reads the
    text otherwise, as a keyword for a name): then the whole text is lark's."""
    lines = text.count("\n", 0, stuck.item)
    blank = "\n" * lines + " " * (stuck.item - text.rfind("\n", 0, stuck.item) - 1)
    try:
        _parser().parse(blank + text[stuck.item:stuck.end], start=start)
    except lark.UnexpectedInput as exc:
        at_end = isinstance(exc, lark.UnexpectedToken) and exc.token.type == "$END"
        if at_end == stuck.eof and (at_end or (exc.line, exc.column)
                                    == (stuck.line, stuck.col)):
            return _syntax_error(exc, text, file)
    return None


_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[\[\]()]')


def _check_brackets(text: str, file: str) -> None:
    """Refuse brackets nested deeper than MAX_NESTING before parsing: each adds at least one
    level to the tree, so this only decides early (and fast) what the tree check would."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in "([":
            depth += 1
            if depth > MAX_NESTING:
                line, col = position(text, m.start())
                raise error(E_NESTING, f"the text nests more than {MAX_NESTING:,} levels deep",
                            Span(file=file, line=line, col=col, end_line=line, end_col=col + 1),
                            hint="split the expression with `def` or `seq([...])`"
                            ).with_sources({file: text})
        elif ch in ")]":
            depth = max(depth - 1, 0)


def _check_nesting(tree: lark.Tree[Token], file: str) -> None:
    """Refuse trees deeper than MAX_NESTING, walking them without recursion."""
    stack: list[tuple[lark.Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            span = (Span(file=file, line=meta.line, col=meta.column, end_line=meta.line,
                         end_col=meta.column + 1)
                    if not getattr(meta, "empty", True) else Span.unknown(file))
            raise error(E_NESTING, f"the text nests more than {MAX_NESTING:,} levels deep",
                        span, hint="split the expression with `def` or `seq([...])`")
        stack.extend((child, depth + 1) for child in node.children
                     if isinstance(child, lark.Tree))


def _syntax_error(exc: lark.UnexpectedInput, text: str, file: str) -> SsnError:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, lark.UnexpectedToken) and exc.token.type == "$END":
        lines = source_lines(text) or [""]
        line, col = len(lines), len(lines[-1]) + 1
        found, width = "end of file", 1
    elif isinstance(exc, lark.UnexpectedToken):
        found, width = f"`{excerpt(str(exc.token))}`", max(len(str(exc.token)), 1)
    elif isinstance(exc, lark.UnexpectedCharacters):
        found, width = f"`{text[exc.pos_in_stream or 0]}`", 1
    else:
        found, width = "end of file", 1
    expected = _expected(set(getattr(exc, "expected", None) or getattr(exc, "allowed", None)
                             or ()))
    span = Span(file=file, line=line, col=col, end_line=line, end_col=col + width)
    message = f"unexpected {found}"
    if expected:
        message += f"; expected {expected}"
    hint = None
    if found == "`>`":
        hint = "sequence is written `>>`"
    elif found == "`=`":
        hint = "comparison is written `==`"
    return error(E_SYNTAX, message, span, hint=hint).with_sources({file: text})


def parse_expr(text: str, file: str = "<expr>") -> ast.Expr:
    """Parse one expression and nothing else (used for `--set KEY=VALUE` values)."""
    expr: ast.Expr = _build(text, file, "value")
    return expr


def shift(expr: ast.Expr, cols: int) -> ast.Expr:
    """Move an expression parsed behind a prefix back to the columns of the original text."""
    def fix(value: Any) -> Any:
        if isinstance(value, Span):
            return value.model_copy(update={"col": value.col - cols,
                                            "end_col": value.end_col - cols})
        if isinstance(value, ast.Node):
            return value.model_copy(update={k: fix(getattr(value, k))
                                            for k in type(value).model_fields})
        if isinstance(value, tuple):
            return tuple(fix(v) for v in value)
        return value
    return fix(expr)  # type: ignore[no-any-return]
