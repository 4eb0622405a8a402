"""`ssnc fmt`: the canonical layout of .ssn text. It works on the concrete syntax tree (every
token, with its position), so parentheses and spellings stay as written and every comment keeps
its place; only spacing and line breaks change. Numbers are normalised only in ways that read
back to the same value (``1E+05`` -> ``1e5``; ``1e999`` stays, it is not ``inf``).

Layout: one blank line between items (comments above an item stay with it); a body that does
not fit after ``=`` goes on the next line, indented four; calls, lists and parameters fill
their lines and continue under their first element; ``>>`` chains, ``if``/``else if`` chains
and ``let`` chains break one step per line, aligned."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import lark
from lark import Token, Tree

from ..base.diagnostics import E_INTERNAL, Note, Span, error, normalize_line_ends
from . import ast
from .doc import FRESH, LINE, Align, Doc, Fill, Group, Nest, render
from .literals import lambda_params
from .parser import parse

WIDTH = 100
"""The line width the layout aims for (comments and long names may exceed it)."""

_CST = Tree[Token]
_Node = Any  # a child in the tree: a Token, a Tree, or None for an absent optional part


@cache
def _cst_parser() -> lark.Lark:
    """The language's grammar, keeping every token (keywords, brackets, commas)."""
    text = resources.files(__package__).joinpath("ssn.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     keep_all_tokens=True, start="start")


@dataclass
class _Comment:
    text: str
    pos: int  # offset in the source
    line: int
    blank_before: bool  # an empty line comes before it
    blank_after: bool  # and after it


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def _comments(text: str) -> list[_Comment]:
    """Every comment of ``text`` (a `#` outside a string, to the end of its line); one pass,
    so a large file with many comments stays linear."""
    found = []
    line, counted = 1, 0
    for m in _STRING_OR_COMMENT.finditer(text):
        if not m.group().startswith("#"):
            continue
        line += text.count("\n", counted, m.start())
        counted = m.start()
        before = text[max(0, m.start() - 4096):m.start()].rstrip(" \t\f")
        after = re.match(r"[ \t\f]*\n[ \t\f]*\n", text[m.end():m.end() + 4096])
        blank_before = before.endswith("\n") and before[:-1].rstrip(" \t\f").endswith("\n")
        found.append(_Comment(m.group().rstrip(), m.start(), line, blank_before,
                              after is not None))
    return found


def format_text(text: str, file: str = "<string>") -> str:
    """``text`` in canonical layout. A syntax error is the parser's diagnostic; the result is
    checked to parse to the same AST with the same comments (E9001 otherwise, nothing lost)."""
    text = normalize_line_ends(text.removeprefix("\ufeff"))
    program = parse(text, file)
    comments = _comments(text)
    result = _Printer(comments).program(_cst_parser().parse(text))
    _check_same(program, result, comments, file)
    return result


def _check_same(program: ast.Program, result: str, comments: list[_Comment],
                file: str) -> None:
    """A formatter bug must never change a spec: the output parses to the same AST and keeps
    every comment, or the formatter fails."""
    again = parse(result, file)
    kept = [c.text for c in comments]
    found = [c.text for c in _comments(result)]
    if ast.strip_spans(again) != ast.strip_spans(program) or found != kept:
        raise error(E_INTERNAL, "internal formatter error: the formatted text differs from "
                    "the spec", Span.unknown(file),
                    notes=[Note("the file was left unchanged; please report this spec")])


def quote(value: str) -> str:
    """A string literal of the .ssn language that reads back as ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalise_number(text: str) -> str:
    """The canonical spelling of a number literal; it reads back to the same value."""
    m = re.fullmatch(r"([0-9]*)(\.[0-9]*)?(?:[eE]([+-]?)([0-9]+))?", text)
    if m is None:  # the grammar's NUMBER always matches
        return text
    whole, frac, sign, exp = m.groups()
    if frac is None and exp is None:
        return str(int(whole))
    whole = whole.lstrip("0") or "0"
    frac = (frac or "")
    if frac in (".", ""):
        frac = ".0" if exp is None else ""
    out = whole + frac
    if exp is not None:
        out += "e" + ("-" if sign == "-" else "") + (exp.lstrip("0") or "0")
    return out


class _Printer:
    """Builds the document of a concrete syntax tree, placing each comment by its position:
    on the line of the token before it (trailing), or on lines of its own before the next
    token."""

    def __init__(self, comments: list[_Comment]):
        self.comments = comments
        self.positions = [c.pos for c in comments]
        self.next_comment = 0
        self.last: list[Doc] | None = None  # the document of the last token printed
        self.last_line = 0

    # ---------------------------------------------------------------- tokens and comments

    def tok(self, token: _Node, text: str | None = None) -> Doc:
        """A token's text, preceded by the comments before it."""
        assert isinstance(token, Token)
        pos = token.start_pos or 0
        lead: list[Doc] = []
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].pos < pos:
            c = self.comments[self.next_comment]
            self.next_comment += 1
            if self.last is not None and c.line == self.last_line:
                self.last.extend(["  " + c.text, FRESH])
            else:
                lead.extend([FRESH, c.text, FRESH])
        slot: list[Doc] = [text if text is not None else str(token)]
        self.last, self.last_line = slot, token.end_line or 0
        return [*lead, slot] if lead else slot

    def top_level_comments(self, before: int) -> tuple[str, list[_Comment]]:
        """The comments before offset ``before``, between items: the text that trails the
        item before on its last line, and the comments on lines of their own."""
        end = bisect.bisect_left(self.positions, before, lo=self.next_comment)
        trailing, own = "", []
        for c in self.comments[self.next_comment:end]:
            if self.last is not None and c.line == self.last_line:
                trailing += "  " + c.text  # the end of an item: no line to break
            else:
                own.append(c)
        self.next_comment = end
        return trailing, own

    # ---------------------------------------------------------------- items

    def program(self, tree: _CST) -> str:
        items = [c for c in tree.children if isinstance(c, Tree)]
        built: list[tuple[list[_Comment], Doc]] = []
        trailers: list[str] = []
        for item in items:
            trailing, lead = self.top_level_comments(_first_token(item).start_pos or 0)
            if built:
                trailers.append(trailing)
            built.append((lead, self.item(item)))
        trailing, tail = self.top_level_comments(1 << 62)  # after the last item
        if built:
            trailers.append(trailing)
        parts: list[str] = []
        for (lead, doc), trailer in zip(built, trailers, strict=True):
            if parts:
                parts.append("")
            for c in lead:
                parts.append(c.text)
                if c.blank_after:
                    parts.append("")
            parts.append(render(doc, WIDTH) + trailer)
        for c in tail:
            if parts and c.blank_before:
                parts.append("")
            parts.append(c.text)
        text = "\n".join(parts).strip("\n")
        return text + "\n" if text else ""

    def item(self, t: _CST) -> Doc:
        c = t.children
        if t.data == "import_stmt":
            return [self.tok(c[0]), " ", self.tok(c[1])]
        if t.data == "def_stmt":
            head = [self.tok(c[0]), " ", self.tok(c[1]), self.params(c[2]), " ", self.tok(c[3])]
            return [head, self.body(c[4])]
        head = [self.tok(c[0]), " ", self.tok(c[1]), self.params(c[2]), " ", self.tok(c[3]),
                " ", self.model_inputs(c[4]), " ", self.tok(c[5])]
        return [head, self.body(c[6])]

    def model_inputs(self, t: _Node) -> Doc:
        """`tensor[3, 32, 32]`, or `src: tokens[V], tgt: tokens[V]`."""
        out: list[Doc] = []
        for child in t.children:
            if isinstance(child, Token):  # a comma between named inputs
                out += [self.tok(child), " "]
            elif child.data == "named_input":
                name, colon, type_ = child.children
                out += [self.tok(name), self.tok(colon), " ", self.type_expr(type_)]
            else:
                out.append(self.type_expr(child))
        return out

    def body(self, e: _CST | Token) -> Doc:
        """After a def's or model's `=`: on the same line if it fits, else indented below; a
        `=>` block keeps its head on the `=` line."""
        if isinstance(e, Tree) and e.data == "lambda_expr":
            return [" ", self.expr(e)]
        return Group(Nest(4, [LINE, self.expr(e)]))

    def params(self, t: _Node) -> Doc:
        if t is None:
            return []
        return self.bracketed(t, self.param)

    def param(self, t: _CST) -> Doc:
        name, *rest = t.children
        if rest and rest[0] is not None:
            return [self.tok(name), " ", self.tok(rest[0]), " ", self.expr(rest[1])]
        return self.tok(name)

    def type_expr(self, t: _Node) -> Doc:
        name, *rest = t.children
        return [self.tok(name), self.bracketed_tokens(rest, self.expr)]

    def bracketed(self, t: _CST, each: Callable[[Any], Doc], one_tuple: bool = False) -> Doc:
        return self.bracketed_tokens(list(t.children), each, one_tuple)

    def bracketed_tokens(self, children: list[Any], each: Callable[[Any], Doc],
                         one_tuple: bool = False) -> Doc:
        """``open item, item, ... close``: filled, continuing under the first item. A trailing
        comma is dropped, except where it makes a one-element tuple."""
        open_, *inner, close = [c for c in children if c is not None]
        pairs = _pairs(inner)
        first = self.tok(open_)
        if not pairs:
            return [first, self.tok(close)]
        elements: list[Doc] = []
        for i, (item, comma) in enumerate(pairs):
            element = [each(item)]
            if comma is not None and (i + 1 < len(pairs) or (one_tuple and len(pairs) == 1)):
                element.append(self.tok(comma))
            elements.append(element)
        return Group([first, Align(Fill(elements, LINE)), self.tok(close)])

    # ---------------------------------------------------------------- expressions

    def expr(self, e: _CST | Token) -> Doc:
        if isinstance(e, Token):
            return self.tok(e)
        method = getattr(self, "e_" + str(e.data), None)
        if method is None:
            raise AssertionError(f"no layout for {e.data}")
        doc: Doc = method(e)
        return doc

    def e_arg(self, t: _CST) -> Doc:
        return self.expr(t.children[0])

    def e_kwarg(self, t: _CST) -> Doc:
        name, eq, value = t.children
        return [self.tok(name), " ", self.tok(eq), " ", self.expr(value)]

    def e_number(self, t: _CST) -> Doc:
        tok = t.children[0]
        return self.tok(tok, normalise_number(str(tok)))

    def _leaf(self, t: _CST) -> Doc:
        return self.tok(t.children[0])

    e_string = e_name = e_true = e_false = e_none = _leaf

    def e_list_lit(self, t: _CST) -> Doc:
        return self.bracketed(t, self.expr)

    def e_tuple_lit(self, t: _CST) -> Doc:
        return self.bracketed(t, self.expr, one_tuple=True)

    def e_call(self, t: _CST) -> Doc:
        func, *rest = t.children
        return [self.expr(func), self.bracketed_tokens(rest, self.expr)]

    def e_index(self, t: _CST) -> Doc:
        obj, open_, index, close = t.children
        return [self.expr(obj), self.tok(open_), Align(self.expr(index)), self.tok(close)]

    def e_atom(self, t: _CST) -> Doc:  # a parenthesised expression
        open_, inner, close = t.children
        return [self.tok(open_), Align(self.expr(inner)), self.tok(close)]

    def e_list_comp(self, t: _CST) -> Doc:
        open_, elt, *clauses, close = t.children
        parts: list[Doc] = [self.expr(elt)]
        for clause in clauses:
            assert isinstance(clause, Tree)
            for_, target, in_, iter_, if_, cond = clause.children
            parts += [LINE, self.tok(for_), " ", self.target(target), " ", self.tok(in_), " ",
                      self.expr(iter_)]
            if if_ is not None:
                parts += [LINE, self.tok(if_), " ", self.expr(cond)]
        return Group([self.tok(open_), Align(parts), self.tok(close)])

    def target(self, t: _Node) -> Doc:
        """`x`, or `(a, b)` written like any bracketed list (no trailing comma)."""
        if t.data == "target":
            return self.tok(t.children[0])
        return self.bracketed(t, self.tok)

    def e_neg(self, t: _CST) -> Doc:
        return [self.tok(t.children[0]), self.expr(t.children[1])]

    def e_not_op(self, t: _CST) -> Doc:
        return [self.tok(t.children[0]), " ", self.expr(t.children[1])]

    def e_repeat_suffix(self, t: _CST) -> Doc:
        return [self.expr(t.children[0]), " ", self.tok(t.children[1])]

    def e_pow_op(self, t: _CST) -> Doc:
        left, op, right = t.children
        return [self.expr(left), " ", self.tok(op), " ", self.expr(right)]

    def _chain(self, t: _CST) -> list[tuple[Token | None, _CST | Token]]:
        """The operands of a left-nested chain of one operator class, with the operator
        before each."""
        out: list[tuple[Token | None, _CST | Token]] = []
        node: _CST | Token = t
        kind = _op(t).type
        while isinstance(node, Tree) and node.data == t.data and _op(node).type == kind:
            left, op, right = node.children
            out.append((_as_token(op), right))
            node = left
        out.append((None, node))
        return out[::-1]

    def _operands(self, t: _CST) -> list[Doc]:
        return [self.expr(x) if op is None else [self.tok(op), " ", self.expr(x)]
                for op, x in self._chain(t)]

    def e_seq_op(self, t: _CST) -> Doc:
        """`a >> b >> c`: one line, or one stage per line."""
        parts = self._operands(t)
        out: list[Doc] = [parts[0]]
        for p in parts[1:]:
            out += [LINE, p]
        return Group(Align(out))

    def _filled(self, t: _CST) -> Doc:
        """Arithmetic and logic: filled, breaking before an operator."""
        return Group(Align(Fill(self._operands(t), LINE)))

    e_binop = e_compare = e_or_op = e_and_op = _filled

    def e_if_expr(self, t: _CST) -> Doc:
        """`if a then x else if b then y else z`: one line, or one branch per line, with
        `then x` on a line of its own where it does not fit after the condition."""
        out: list[Doc] = []
        node: _CST | Token = t
        first = True
        while isinstance(node, Tree) and node.data == "if_expr":
            if_, cond, then, a, else_, rest = node.children
            if not first:
                out += [" "]
            out += [self.tok(if_), " ", self.expr(cond),
                    Group([LINE, self.tok(then), " ", self.expr(a)]), LINE, self.tok(else_)]
            first = False
            node = rest
        out += [" ", self.expr(node)]
        return Group(Align(out))

    def e_let_expr(self, t: _CST) -> Doc:
        """`let a = x in let (b, c) = y in body`: one line, or one binding per line."""
        out: list[Doc] = []
        node: _CST | Token = t
        while isinstance(node, Tree) and node.data == "let_expr":
            let, target, eq, value, in_, node = node.children
            out += [self.tok(let), " ", self.target(target), " ", self.tok(eq), " ",
                    self.expr(value), " ", self.tok(in_), LINE]
        out.append(self.expr(node))
        return Group(Align(out))

    def e_lambda_expr(self, t: _CST) -> Doc:
        """`(x, *rest) => body`: the body after the head, or indented below it."""
        head, body = t.children
        names = ", ".join(lambda_params(str(head)))
        return [self.tok(head, f"({names}) =>"), Group(Nest(4, [LINE, self.expr(body)]))]


def _op(t: _CST) -> Token:
    return _as_token(t.children[1])


def _as_token(x: object) -> Token:
    assert isinstance(x, Token)
    return x


def _pairs(inner: list[Any]) -> list[tuple[Any, Token | None]]:
    """Items between brackets, each with the comma after it (if any)."""
    pairs: list[tuple[Any, Token | None]] = []
    for child in inner:
        if isinstance(child, Token) and child.type == "COMMA":
            pairs[-1] = (pairs[-1][0], child)
        else:
            pairs.append((child, None))
    return pairs


def _first_token(t: _CST | Token) -> Token:
    while isinstance(t, Tree):
        t = next(c for c in t.children if c is not None)
    return t


