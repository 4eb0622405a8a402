"""Syntax colouring for .ssn: a Pygments lexer, registered through the `pygments.lexers`
entry point so that `pygmentize -l ssn`, Sphinx, MkDocs and other documentation tools colour
specs, and the TextMate grammar of the VS Code extension (`textmate()`, written to
editors/vscode/syntaxes/ssn.tmLanguage.json by `python -m ssnc.highlight`). Both follow
grammar/ssn.lark and take their word lists from here: keywords, the names of ops, built-in
functions and input types, numbers, strings, comments and the operators."""

from __future__ import annotations

import json
import sys
from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from .compiler.builtins import BUILTINS
from .compiler.ops import INPUT_TYPES, OPS

KEYWORDS = ("def", "model", "import", "let", "in", "if", "then", "else", "for", "and", "or",
            "not")
CONSTANTS = ("true", "false", "none")


def _longest_first(names: Any) -> tuple[str, ...]:
    return tuple(sorted(set(names), key=lambda n: (-len(n), n)))


FUNCTIONS = _longest_first(BUILTINS)
OP_NAMES = _longest_first(n for n, op in OPS.items() if not op.source)  # not stdlib rules
BUILTIN_NAMES = _longest_first({*FUNCTIONS, *OP_NAMES})
TYPES = _longest_first(INPUT_TYPES)
_HEADS = ("def", "model", "import")  # keywords that start an item, followed by a name
_NOT_AFTER_KEYWORD = "".join(rf"(?<!\b{k})" for k in KEYWORDS if k not in _HEADS)

__all__ = ["SsnLexer", "textmate"]


class SsnLexer(RegexLexer):
    """.ssn specs: self-similar neural-network architectures (ssnc)."""

    name = "ssn"
    aliases: ClassVar[list[str]] = ["ssn", "ssnc"]
    filenames: ClassVar[list[str]] = ["*.ssn"]
    mimetypes: ClassVar[list[str]] = ["text/x-ssn"]
    url = "https://github.com/ssnc/ssnc"

    tokens: ClassVar[dict[str, Any]] = {
        "root": [
            # repetition written `block x3` or `(block)x3` (after a keyword, `x3` is a name)
            (r"(?<=[)\]])x[0-9]+\b", Operator),
            (r"(?<=[A-Za-z0-9_])" + _NOT_AFTER_KEYWORD + r"(\s+)(x[0-9]+)\b",
             bygroups(Whitespace, Operator)),  # type: ignore[no-untyped-call]
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            (r"(def|model)(\s+)([A-Za-z_][A-Za-z0-9_]*)",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),  # type: ignore[no-untyped-call]
            (r"(import)\b", Keyword.Namespace),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(BUILTIN_NAMES, prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (r"×[0-9]+", Operator),  # repetition: `block ×3`
            (r"([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)", Number.Float),
            (r"[0-9]+\.[0-9]*|\.[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r"=>|>>|\*\*|==|!=|<=|>=|//|[<>+\-*×/%=]", Operator),
            (r"[()\[\],:]", Punctuation),
        ],
    }


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _alternatives(names: tuple[str, ...]) -> str:
    return r"\b(?:" + "|".join(names) + r")\b"


def textmate() -> dict[str, Any]:
    """The TextMate grammar (scope `source.ssn`): the lexer's token classes, plus the
    names a TextMate theme can tell apart (a lambda's parameters, keyword arguments, calls
    of the spec's own rules, input types)."""
    def match(regex: str, name: str) -> dict[str, Any]:
        return {"match": regex, "name": f"{name}.ssn"}

    def captures(*names: str) -> dict[str, Any]:
        return {str(i): {"name": f"{n}.ssn"} for i, n in enumerate(names, 1) if n}

    patterns: list[dict[str, Any]] = [
        match(r"#.*$", "comment.line.number-sign"),
        {"begin": '"', "end": '"|$', "name": "string.quoted.double.ssn",
         "patterns": [match(r"\\.", "constant.character.escape")]},
        {"match": rf"\b(def|model)\s+({_NAME})",
         "captures": captures("storage.type.function", "entity.name.function")},
        match(r"\bimport\b", "keyword.control.import"),
        {"match": rf"\b(let)\s+({_NAME})\b",
         "captures": captures("keyword.other.let", "variable.other.declaration")},
        match(r"\b(?:and|or|not)\b", "keyword.operator.logical"),
        match(_alternatives(tuple(k for k in KEYWORDS if k not in (
            *_HEADS, "and", "or", "not"))), "keyword.control"),
        match(_alternatives(CONSTANTS), "constant.language"),
        {"match": r"\(([^()]*)\)\s*(=>)",  # a lambda head: `(x, *rest) =>`
         "captures": {"1": {"patterns": [match(_NAME, "variable.parameter"),
                                         match(r"\*", "keyword.operator.unpacking"),
                                         match(",", "punctuation.separator")]},
                      "2": {"name": "keyword.operator.arrow.ssn"}}},
        {"match": rf"\b({_NAME})\s*(=)(?![=>])",  # `k = 3` in a call or a parameter list
         "captures": captures("variable.parameter", "keyword.operator.assignment")},
        {"match": rf"{_alternatives(TYPES)}(?=\s*\[)", "name": "support.type.ssn"},
        match(_alternatives(OP_NAMES), "support.function.op"),
        match(_alternatives(FUNCTIONS), "support.function.builtin"),
        match(rf"\b{_NAME}(?=\s*\()", "entity.name.function.call"),
        match("×[0-9]+", "keyword.operator.repeat"),
        {"match": r"(?<=[)\]])\s*(x[0-9]+)\b", "captures": captures("keyword.operator.repeat")},
        {"match": r"(?<=[A-Za-z0-9_])" + _NOT_AFTER_KEYWORD + r"\s+(x[0-9]+)\b",
         "captures": captures("keyword.operator.repeat")},
        match(r"(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)[eE][+-]?[0-9]+|[0-9]+\.[0-9]*|\.[0-9]+",
              "constant.numeric.float"),
        match(r"\b[0-9]+\b", "constant.numeric.integer"),
        match(">>", "keyword.operator.sequence"),
        match("=>", "keyword.operator.arrow"),
        match(r"\*\*|==|!=|<=|>=|//|[<>+\-*×/%]", "keyword.operator.arithmetic"),
        match("=", "keyword.operator.assignment"),
        match(r"[()\[\]]", "punctuation.bracket"),
        match(",", "punctuation.separator"),
        match(":", "punctuation.separator.type"),
        match(_NAME, "variable.other"),
    ]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/"
                   "tmlanguage.json",
        "name": "ssn",
        "scopeName": "source.ssn",
        "fileTypes": ["ssn"],
        "comment": "Generated by `python -m ssnc.highlight` from ssnc/highlight.py: edit "
                   "that, not this file.",
        "patterns": patterns,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(textmate(), indent=2, ensure_ascii=False) + "\n")
