"""The Pygments lexer: found through its entry point, no error token on any spec the
project ships (specs, the standard library, examples, every ```ssn block in the docs), and
each token class where it belongs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from ssnc.highlight import SsnLexer

ROOT = Path(__file__).parents[1]


def _texts() -> dict[str, str]:
    files = [*ROOT.glob("specs/*.ssn"), *ROOT.glob("compiler/stdlib/*.ssn"),
             *ROOT.glob("examples/**/*.ssn"), *ROOT.glob("tests/golden/diagnostics/*.ssn")]
    out = {str(f.relative_to(ROOT)): f.read_text(errors="replace") for f in files}
    for md in [*ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        for i, block in enumerate(re.findall(r"```ssn\n(.*?)```", md.read_text(), re.S)):
            out[f"{md.name} block {i + 1}"] = block
    return out


def test_no_error_token_in_anything_the_project_writes_in_ssn() -> None:
    texts = _texts()
    assert len(texts) > 60
    for where, text in texts.items():
        if where.startswith("tests/golden/diagnostics/E0001"):
            continue  # text that is not .ssn on purpose
        bad = [v for t, v in SsnLexer().get_tokens(text) if t is Error]
        assert not bad, (where, bad[:5])


@pytest.mark.parametrize(("text", "token", "kind"), [
    ("def unit(w) = conv(w, 3)", "unit", Name.Function),
    ("def unit(w) = conv(w, 3)", "def", Keyword.Declaration),
    ("def unit(w) = conv(w, 3)", "conv", Name.Builtin),
    ("model m : tensor[3] = relu", "relu", Name.Builtin),
    ("x = scan(cell, state = [4])", "scan", Name.Builtin),
    ("let a = b in a >> c", ">>", Operator),
    ("(x, y) => x + y", "=>", Operator),
    ("block ×3", "×3", Operator),
    ("let a = 2.5e-3 in a", "2.5e-3", Number.Float),
    ("let a = 12 in a", "12", Number.Integer),
    ('import "lib.ssn"', '"lib.ssn"', String.Double),
    ("# a comment", "# a comment", Comment.Single),
    ("if true then none else false", "none", Keyword.Constant),
    ("if a and not b then c else d", "not", Keyword),
    ("let widths = [16, 32] in widths", "widths", Name),
])
def test_each_token_class(text: str, token: str, kind: object) -> None:
    assert (kind, token) in [(t, v) for t, v in SsnLexer().get_tokens(text)]


def test_pygments_finds_it_by_name_and_by_file_and_pygmentize_runs(tmp_path: Path) -> None:
    assert isinstance(get_lexer_by_name("ssn"), SsnLexer)
    assert isinstance(get_lexer_for_filename("model.ssn"), SsnLexer)
    out = subprocess.run([sys.executable, "-m", "pygments", "-l", "ssn", "-f", "html",
                          str(ROOT / "specs" / "nin_cifar10.ssn")], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert '<span class="kd">model</span>' in out and '<span class="nb">maxpool</span>' in out
