"""The fast path of `parse`: a lexer and a precedence-climbing parser for the grammar of
ssn.lark that build the AST directly, with the spans lark's propagated positions give.

It accepts a subset of what lark accepts (every program written as the language means, not
the curiosities of lark's contextual lexer, such as a keyword used as a name where only a
name can stand) and gives up on anything else, saying where it stopped: then `parse` asks
lark, the grammar's reference, which reports the diagnostic (from the item where this parser
stopped, where lark stops there too) or builds the tree. Giving up is never an error.
Each node's lark tree depth is counted too, so that too deep a text also goes to lark, whose
diagnostic for it is the one users see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..base.diagnostics import MAX_NESTING, Span, SsnError
from . import ast
from .literals import lambda_head, number, too_large, unquote

# The terminals of ssn.lark (tests/test_descent.py checks that they are the grammar's), one
# alternation tried left to right at each position: a lambda head before `(`, `×3` before `×`.
_TERMINALS = {
    "ws": r"[ \t\f\r\n]+|#[^\n]*",
    "LAMBDA": r"\(\s*(?:\*?[A-Za-z_][A-Za-z0-9_]*\s*(?:,\s*\*?[A-Za-z_][A-Za-z0-9_]*\s*)*,?\s*)?"
              r"\)\s*=>",
    "NAME": r"[A-Za-z_][A-Za-z0-9_]*",
    "NUMBER": r"(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?",
    "STRING": r'"(?:[^"\\\n]|\\.)*"',
    "REPEAT": r"×[0-9]+",
    "op": r">>|\*\*|==|!=|<=|>=|//|[-+*/%<>×()\[\],=:]",
}
_TOKEN = re.compile("|".join(f"(?P<{k}>{v})" for k, v in _TERMINALS.items()))
_KEYWORDS = frozenset({"def", "model", "import", "if", "then", "else", "let", "in", "for",
                       "true", "false", "none", "and", "or", "not"})
_REPEAT_NAME = re.compile(r"x[0-9]+")  # `block x3`: a NAME where an operator is due

# Binding levels, loosest first: `>>`, or, and, (not), comparisons, + -, * / REPEAT, (neg), **.
_SEQ, _OR, _AND, _NOT, _CMP, _ARITH, _TERM, _FACTOR, _POW, _POSTFIX = range(1, 11)
_LEVEL = {">>": _SEQ, "or": _OR, "and": _AND, "+": _ARITH, "-": _ARITH, "*": _TERM,
          "×": _TERM, "/": _TERM, "//": _TERM, "%": _TERM, "REPEAT": _TERM, "**": _POW,
          **{op: _CMP for op in ("==", "!=", "<", "<=", ">", ">=")}}

Token = tuple[str, str, int, int, int, int]  # kind, text, line, col, end line, end col
Parsed = tuple[Any, int, int, int]  # node, first and last token of its container, depth


class _LeftToLarkError(Exception):
    """The text is not one this parser accepts; lark decides. ``at``: the token where this
    parser stopped (None: no one token to blame)."""

    def __init__(self, at: int | None = None):
        super().__init__(at)
        self.at = at


@dataclass(frozen=True)
class Stuck:
    """Where the descent parser stopped in a text it leaves to lark: the token's position
    (line, col, and the offset of its end) and the offset of the item it is in, so that lark
    can be asked about that item alone (`parser._error_near`)."""

    line: int
    col: int
    end: int
    item: int
    eof: bool  # stopped at the end of the text


def parse(text: str, file: str, start: str) -> Any:
    """The AST lark's path would build for ``text`` (normalised line ends, brackets checked),
    or, where this parser leaves the text to lark, where it stopped (`Stuck`) or None. An
    integer too large raises lark's path's diagnostic, once the whole text has parsed (a
    syntax error, anywhere, comes first there: then lark reports it)."""
    toks = tokens(text)
    if toks is None:
        return None
    parser = _Parser(toks, file)
    try:
        node, depth = parser.program() if start == "start" else parser.value()
    except _LeftToLarkError as exc:
        if exc.at is None:
            return None
        # an item's first token is read in the state after the items before it: lark is
        # given the item before too (the state after one item is that after any number)
        item = parser.before if exc.at == parser.item and parser.before >= 0 else parser.item
        return _stuck(text, toks, exc.at, item)
    except RecursionError:
        return None
    if depth > MAX_NESTING:
        return None
    if parser.fault is not None:
        raise parser.fault.with_sources({file: text})
    return node


def _stuck(text: str, toks: list[Token], at: int, item: int) -> Stuck:
    """Token ``at`` and the start of token ``item`` as a `Stuck` (offsets from lines)."""
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    kind, value, line, col = toks[at][:4]
    offset = starts[line - 1] + col - 1 if kind != "$END" else len(text)
    first = toks[item]
    return Stuck(line, col, offset + len(value),
                 starts[first[2] - 1] + first[3] - 1 if first[0] != "$END" else len(text),
                 kind == "$END")


def tokens(text: str) -> list[Token] | None:
    """The tokens of ``text`` with lark's positions, ending in `$END`; None where a character
    starts no token."""
    out: list[Token] = []
    append = out.append
    line, line_start, pos = 1, 0, 0
    for m in _TOKEN.finditer(text):
        start = m.start()
        if start != pos:
            return None
        kind, value, pos = m.lastgroup or "", m.group(), m.end()
        if kind == "ws":
            if "\n" in value:
                line += value.count("\n")
                line_start = start + value.rindex("\n") + 1
            continue
        if kind == "NAME":
            if value in _KEYWORDS:
                kind = value
        elif kind == "op":
            kind = value
        elif kind == "LAMBDA" and "\n" in value:  # `(a,\n b) =>` spans lines
            end_line = line + value.count("\n")
            newline = start + value.rindex("\n")
            append((kind, value, line, start - line_start + 1, end_line, pos - newline))
            line, line_start = end_line, newline + 1
            continue
        col = start - line_start + 1
        append((kind, value, line, col, line, col + len(value)))
    if pos != len(text):
        return None
    append(("$END", "", line, pos - line_start + 1, line, pos - line_start + 1))
    return out


def _makers() -> dict[str, Any]:
    return {cls.__name__: ast.maker(cls) for cls in (
        ast.Number, ast.String, ast.Bool, ast.NoneLit, ast.Name, ast.ListLit, ast.TupleLit,
        ast.CompFor, ast.ListComp, ast.Keyword, ast.Call, ast.Index, ast.BinOp, ast.Repeat,
        ast.Compare, ast.BoolOp, ast.Not, ast.Neg, ast.If, ast.Let, ast.Lambda, ast.Param,
        ast.TypeExpr, ast.Import, ast.Def, ast.ModelInput, ast.Model, ast.Program)}


_MAKE = _makers()
_SPAN = ast.maker(Span)


class _Parser:
    """One parse over a token list; each expression method returns a `Parsed`."""

    def __init__(self, toks: list[Token], file: str):
        self.t = toks
        self.i = 0
        self.file = file
        self.fault: SsnError | None = None  # the first integer too large, as ToAst's
        self.item = 0  # the token where the item being parsed starts
        self.before = -1  # and where the one before it started (-1: none)

    # -------------------------------------------------------------- helpers

    def span(self, first: int, last: int) -> Span:
        """From the start of token ``first`` to the end of token ``last``."""
        a, b = self.t[first], self.t[last]
        return _SPAN({"file": self.file, "line": a[2], "col": a[3], "end_line": b[4],
                      "end_col": b[5]})

    def expect(self, kind: str) -> int:
        """The index of the next token, which must be ``kind``."""
        i = self.i
        if self.t[i][0] != kind:
            raise _LeftToLarkError(i)
        self.i = i + 1
        return i

    def name(self) -> tuple[str, int]:
        """A NAME's text and index."""
        i = self.expect("NAME")
        return self.t[i][1], i

    # -------------------------------------------------------------- items

    def program(self) -> tuple[ast.Program, int]:
        """`start: _item*`."""
        items: list[ast.Item] = []
        depth, t = 0, self.t
        first = last = -1
        while t[self.i][0] != "$END":
            kind, s = t[self.i][0], self.i
            self.before, self.item = (self.item if items else -1), s
            item: ast.Item
            if kind == "def":
                item, d = self.definition()
            elif kind == "model":
                item, d = self.model()
            elif kind == "import":
                self.i += 1
                path = self.expect("STRING")
                item, d = _MAKE["Import"]({"span": self.span(s, path),
                                           "path": unquote(t[path][1])}), 1
            else:
                raise _LeftToLarkError(s)
            first = s if first < 0 else first
            last, depth = self.i - 1, max(depth, d)
            items.append(item)
        span = self.span(first, last) if items else Span.unknown(self.file)
        return _MAKE["Program"]({"span": span, "file": self.file, "items": tuple(items)}), \
            depth + 1

    def value(self) -> tuple[Any, int]:
        """`value: expr`, alone."""
        node, _, _, d = self.expr()
        self.expect("$END")
        return node, d + 1

    def definition(self) -> tuple[ast.Def, int]:
        """`def NAME [param_list] = expr`."""
        s = self.expect("def")
        name, at = self.name()
        params, dp = self.params()
        self.expect("=")
        body, _, ce, d = self.expr()
        node = _MAKE["Def"]({"span": self.span(s, ce), "name": name, "params": params,
                             "body": body, "name_span": self.span(at, at)})
        return node, 1 + max(dp, d)

    def model(self) -> tuple[ast.Model, int]:
        """`model NAME [param_list] : model_inputs = expr`."""
        s = self.expect("model")
        name, at = self.name()
        params, dp = self.params()
        self.expect(":")
        inputs, di = self.inputs()
        self.expect("=")
        body, _, ce, d = self.expr()
        node = _MAKE["Model"]({"span": self.span(s, ce), "name": name, "params": params,
                               "inputs": inputs, "body": body, "name_span": self.span(at, at)})
        return node, 1 + max(dp, di, d)

    def params(self) -> tuple[tuple[ast.Param, ...], int]:
        """`[param_list]`: `( [param ("," param)* [","]] )`, each `NAME ["=" expr]`."""
        t = self.t
        if t[self.i][0] != "(":
            return (), 0
        self.i += 1
        out, depth = [], 0
        while t[self.i][0] != ")":
            name, s = self.name()
            default, ce, d = None, s, 0
            if t[self.i][0] == "=":
                self.i += 1
                default, _, ce, d = self.expr()
            out.append(_MAKE["Param"]({"span": self.span(s, ce), "name": name,
                                       "default": default}))
            depth = max(depth, d + 1)
            if t[self.i][0] != ",":
                break
            self.i += 1
        self.expect(")")
        return tuple(out), depth + 1

    def inputs(self) -> tuple[tuple[ast.ModelInput, ...], int]:
        """`model_inputs`: one type, or `NAME : type_expr` separated by commas."""
        t = self.t
        if t[self.i][0] == "NAME" and t[self.i + 1][0] == "[":
            type_, d = self.type_expr()
            one = _MAKE["ModelInput"]({"span": type_.span, "name": None, "type": type_})
            return (one,), d + 1
        out, depth = [], 0
        while True:
            name, s = self.name()
            self.expect(":")
            type_, d = self.type_expr()
            out.append(_MAKE["ModelInput"]({"span": self.span(s, self.i - 1), "name": name,
                                            "type": type_}))
            depth = max(depth, d + 1)
            if t[self.i][0] != ",":
                return tuple(out), depth + 1
            self.i += 1

    def type_expr(self) -> tuple[ast.TypeExpr, int]:
        """`NAME [ [expr ("," expr)* [","]] ]`."""
        name, s = self.name()
        self.expect("[")
        args, depth, end = self.items("]")
        node = _MAKE["TypeExpr"]({"span": self.span(s, end), "name": name, "args": args})
        return node, depth + 1

    def items(self, close: str) -> tuple[tuple[Any, ...], int, int]:
        """`[expr ("," expr)* [","]]` up to ``close``: the items, their depth, the closer."""
        t, out, depth = self.t, [], 0
        while t[self.i][0] != close:
            node, _, _, d = self.expr()
            out.append(node)
            depth = d if d > depth else depth
            if t[self.i][0] != ",":
                break
            self.i += 1
        return tuple(out), depth, self.expect(close)

    # -------------------------------------------------------------- expressions

    def expr(self) -> Parsed:
        """`expr`: a lambda, `if`, `let`, or a `>>` sequence."""
        t, s = self.t, self.i
        kind = t[s][0]
        if kind == "LAMBDA":
            head = lambda_head(t[s][1])
            if head is None:
                raise _LeftToLarkError  # not a syntax error: lark's transformer says
            self.i += 1
            body, _, ce, d = self.expr()
            node = _MAKE["Lambda"]({"span": self.span(s, ce), "params": head[0], "body": body,
                                    "rest": head[1]})
            return node, s, ce, d + 1
        if kind == "if":
            self.i += 1
            cond, _, _, d1 = self.expr()
            self.expect("then")
            then, _, _, d2 = self.expr()
            self.expect("else")
            orelse, _, ce, d3 = self.expr()
            node = _MAKE["If"]({"span": self.span(s, ce), "cond": cond, "then": then,
                                "orelse": orelse})
            return node, s, ce, 1 + max(d1, d2, d3)
        if kind == "let":
            self.i += 1
            targets, destructure = self.target()
            self.expect("=")
            value, _, _, d1 = self.expr()
            self.expect("in")
            body, _, ce, d2 = self.expr()
            node = _MAKE["Let"]({"span": self.span(s, ce), "targets": targets,
                                 "destructure": destructure, "value": value, "body": body})
            return node, s, ce, 1 + max(1, d1, d2)
        return self.binary(_SEQ)

    def target(self) -> tuple[tuple[str, ...], bool]:
        """`NAME` or `( NAME ("," NAME)* [","] )`."""
        t = self.t
        if t[self.i][0] != "(":
            return (self.name()[0],), False
        self.i += 1
        names = [self.name()[0]]
        while t[self.i][0] == "," and t[self.i + 1][0] == "NAME":
            self.i += 1
            names.append(self.name()[0])
        if t[self.i][0] == ",":
            self.i += 1
        self.expect(")")
        return tuple(names), True

    def binary(self, least: int) -> Parsed:
        """Operators binding at ``least`` or tighter (precedence climbing). ``bound`` is how
        tightly the operand so far is bound: a looser operator may take it, a tighter not
        (`a x3 ** 2` and `a < b < c` are not in the grammar)."""
        t = self.t
        s = self.i
        kind = t[s][0]
        if kind == "not" and least <= _NOT:
            self.i += 1
            operand, _, ce, d = self.binary(_NOT)
            left: Parsed = (_MAKE["Not"]({"span": self.span(s, ce), "operand": operand}),
                            s, ce, d + 1)
            bound = _NOT
        elif kind == "-" and least <= _FACTOR:
            self.i += 1
            operand, _, ce, d = self.binary(_FACTOR)
            left = (_MAKE["Neg"]({"span": self.span(s, ce), "operand": operand}), s, ce, d + 1)
            bound = _FACTOR
        else:
            left, bound = self.postfix(), _POSTFIX
        while True:
            tok = t[self.i]
            kind = tok[0]
            if kind == "NAME" and _REPEAT_NAME.fullmatch(tok[1]):
                kind = "REPEAT"
            level = _LEVEL.get(kind)
            if level is None or level < least or level > bound:
                return left
            left, bound = self.operator(left, kind, level)

    def operator(self, left: Parsed, kind: str, level: int) -> tuple[Parsed, int]:
        """``left`` with the operator at the current token applied (and its right operand)."""
        node, cs, _, dl = left
        at = self.i
        self.i += 1
        text = self.t[at][1]
        if kind == "REPEAT":
            made = _MAKE["Repeat"]({"span": self.span(cs, at), "body": node,
                                    "count": int(text[1:])})
            return (made, cs, at, dl + 1), _TERM
        right, _, ce, dr = self.binary(level + 1 if level != _POW else _FACTOR)
        span = self.span(cs, ce)
        if level == _CMP:
            made = _MAKE["Compare"]({"span": span, "op": text, "left": node, "right": right})
            level = _NOT  # comparisons do not chain
        elif level in (_OR, _AND):
            made = _MAKE["BoolOp"]({"span": span, "op": text, "left": node, "right": right})
        else:
            made = _MAKE["BinOp"]({"span": span, "op": text, "left": node, "right": right})
        return (made, cs, ce, 1 + (dl if dl > dr else dr)), level

    def postfix(self) -> Parsed:
        """An atom with calls `f(...)` and indexing `xs[i]` after it."""
        t = self.t
        node, cs, ce, d = self.atom()
        while True:
            kind = t[self.i][0]
            if kind == "(":
                self.i += 1
                args, kwargs, da, ce = self.arguments()
                node = _MAKE["Call"]({"span": self.span(cs, ce), "func": node, "args": args,
                                      "kwargs": kwargs})
                d = 1 + max(d, da)
            elif kind == "[":
                self.i += 1
                index, _, _, di = self.expr()
                ce = self.expect("]")
                node = _MAKE["Index"]({"span": self.span(cs, ce), "obj": node, "index": index})
                d = 1 + max(d, di)
            else:
                return node, cs, ce, d

    def arguments(self) -> tuple[tuple[Any, ...], tuple[ast.Keyword, ...], int, int]:
        """`[arg ("," arg)* [","]] )`: positional and keyword arguments, their depth (each
        under an `arg` or `kwarg` tree) and the index of `)`."""
        t, args, kwargs, depth = self.t, [], [], 0
        while t[self.i][0] != ")":
            if t[self.i][0] == "NAME" and t[self.i + 1][0] == "=":
                s = self.i
                self.i += 2
                value, _, ce, d = self.expr()
                kwargs.append(_MAKE["Keyword"]({"span": self.span(s, ce), "name": t[s][1],
                                                "value": value}))
            else:
                value, _, _, d = self.expr()
                args.append(value)
            depth = max(depth, d + 1)
            if t[self.i][0] != ",":
                break
            self.i += 1
        return tuple(args), tuple(kwargs), depth, self.expect(")")

    def atom(self) -> Parsed:
        """A literal, a name, a list, a comprehension, a tuple or a parenthesised expr."""
        t, s = self.t, self.i
        kind, text = t[s][0], t[s][1]
        self.i = s + 1
        if kind == "NAME":
            return _MAKE["Name"]({"span": self.span(s, s), "id": text}), s, s, 1
        if kind == "NUMBER":
            value = number(text)
            if value is None:  # reported once the text has parsed, where ToAst would
                self.fault = self.fault or too_large(text, self.span(s, s))
                value = 0
            return _MAKE["Number"]({"span": self.span(s, s), "value": value}), s, s, 1
        if kind == "(":
            return self.parenthesised(s)
        if kind == "[":
            return self.bracketed(s)
        if kind == "STRING":
            return _MAKE["String"]({"span": self.span(s, s), "value": unquote(text)}), s, s, 1
        if kind in ("true", "false"):
            node = _MAKE["Bool"]({"span": self.span(s, s), "value": kind == "true"})
            return node, s, s, 1
        if kind == "none":
            return _MAKE["NoneLit"]({"span": self.span(s, s)}), s, s, 1
        raise _LeftToLarkError(s)

    def parenthesised(self, s: int) -> Parsed:
        """`( expr )` (the expression, its container the parentheses) or a tuple."""
        t = self.t
        node, _, _, d = self.expr()
        if t[self.i][0] == ")":
            return node, s, self.expect(")"), d
        self.expect(",")
        rest, dr, end = self.items(")")
        made = _MAKE["TupleLit"]({"span": self.span(s, end), "items": (node, *rest)})
        return made, s, end, 1 + max(d, dr)

    def bracketed(self, s: int) -> Parsed:
        """`[ items ]` or `[ expr comp_for+ ]`."""
        t = self.t
        if t[self.i][0] == "]":
            end = self.expect("]")
            return _MAKE["ListLit"]({"span": self.span(s, end), "items": ()}), s, end, 1
        node, _, _, d = self.expr()
        if t[self.i][0] != "for":
            rest: tuple[Any, ...] = ()
            depth = d
            if t[self.i][0] == ",":
                self.i += 1
                rest, dr, end = self.items("]")
                depth = max(d, dr)
            else:
                end = self.expect("]")
            made = _MAKE["ListLit"]({"span": self.span(s, end), "items": (node, *rest)})
            return made, s, end, 1 + depth
        clauses, depth = [], d
        while t[self.i][0] == "for":
            clause, dc = self.clause()
            clauses.append(clause)
            depth = max(depth, dc)
        end = self.expect("]")
        made = _MAKE["ListComp"]({"span": self.span(s, end), "elt": node,
                                  "clauses": tuple(clauses)})
        return made, s, end, 1 + depth

    def clause(self) -> tuple[ast.CompFor, int]:
        """`for target in or_expr [if or_expr]`."""
        s = self.expect("for")
        targets, destructure = self.target()
        self.expect("in")
        iter_, _, ce, d = self.binary(_OR)
        cond, dc = None, 0
        if self.t[self.i][0] == "if":
            self.i += 1
            cond, _, ce, dc = self.binary(_OR)
        node = _MAKE["CompFor"]({"span": self.span(s, ce), "targets": targets,
                                 "destructure": destructure, "iter": iter_, "cond": cond})
        return node, 1 + max(1, d, dc)
