"""A Pygments lexer for .ssn, registered through the `pygments.lexers` entry point, so that
`pygmentize -l ssn`, Sphinx, MkDocs and other documentation tools colour specs. Its tokens
follow grammar/ssn.lark: keywords, the names of ops and built-in functions, numbers,
strings, comments and the operators (`>>`, `=>`, `×`)."""

from __future__ import annotations

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
from .compiler.ops import OPS

KEYWORDS = ("def", "model", "import", "let", "in", "if", "then", "else", "for", "and", "or",
            "not")
CONSTANTS = ("true", "false", "none")
BUILTIN_NAMES = tuple(sorted({*BUILTINS, *(n for n, op in OPS.items() if not op.source)},
                             key=lambda n: (-len(n), n)))

__all__ = ["SsnLexer"]


class SsnLexer(RegexLexer):
    """.ssn specs: self-similar neural-network architectures (ssnc)."""

    name = "ssn"
    aliases: ClassVar[list[str]] = ["ssn", "ssnc"]
    filenames: ClassVar[list[str]] = ["*.ssn"]
    mimetypes: ClassVar[list[str]] = ["text/x-ssn"]
    url = "https://github.com/ssnc/ssnc"

    tokens: ClassVar[dict[str, Any]] = {
        "root": [
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
