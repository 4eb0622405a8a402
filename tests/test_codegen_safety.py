"""Spec text can never become code: generated PyTorch source holds spec strings and names only
as escaped literals, docstrings, comments or checked identifiers."""

from __future__ import annotations

import ast as pyast
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ssnc
from ssnc.backends.pysource import docstring, escape, identifier, literal
from ssnc.cli import app
from ssnc.compiler.ops import OPS
from ssnc.grammar.format import quote

# Everything the code generator writes (the pasted runtime included). An `exec`, `eval`,
# lambda, import of anything but torch/typing, or a global statement would be foreign.
ALLOWED_NODES = {
    "Module", "Expr", "Constant", "ImportFrom", "Import", "alias", "ClassDef", "FunctionDef",
    "arguments", "arg", "Name", "Load", "Store", "Attribute", "Subscript", "Tuple", "List",
    "Assign", "AnnAssign", "AugAssign", "Call", "keyword", "Return", "If", "For", "BinOp",
    "Add", "Div", "Mult", "Sub", "USub", "UnaryOp", "Compare", "Eq", "Gt", "GtE", "Lt",
    "NotEq", "In", "NotIn", "Is", "IsNot", "BoolOp", "And", "Or", "Not", "IfExp", "Starred",
    "ListComp", "comprehension", "Assert", "Raise", "JoinedStr", "FormattedValue", "Slice",
    "Pass", "BitOr", "GeneratorExp", "Dict",
}
ALLOWED_IMPORTS = {"__future__", "typing", "torch"}
SSN_KEYWORDS = {"def", "model", "import", "if", "then", "else", "let", "in", "for", "true",
                "false", "none", "and", "or", "not", "x"}
BUILTIN_NAMES = set(OPS) | {"seq", "shared", "zip", "range", "len", "min", "max", "fail",
                            "round", "fractal", "nin", "mlpconv", "conv3x3", "residual"}

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in SSN_KEYWORDS and n not in BUILTIN_NAMES and not n.startswith("x"))
hostile_models = st.sampled_from(["none", "true", "false"])
hostile_names = st.sampled_from(["None", "True", "lambda", "forward",
                                 "train", "to", "training", "DropPath", "drop_path", "MODEL",
                                 "torch", "nn", "self", "_put", "need0", "ssnc_drop_path",
                                 "_modules", "__class__", "__init__", "keep", "Unit"])
texts = st.text().filter(lambda s: "\n" not in s and "\r" not in s)  # a string is one line
hostile_texts = st.sampled_from(['x"""; print(\'INJECTED\') #', "'''; import os #",
                                 '\\"""\\', "\u2028print(1)", "\x0cimport os", "\x85import os",
                                 "\x0bimport os", "\\", '"'])


def spec_text(rule: str, model: str, arg: str, tag: str) -> str:
    return (f"def {rule}(s, t = 1) = conv(4, 3) >> relu\n"
            f"model {model}(tag = {quote(tag)}) : tensor[3, 6, 6] =\n"
            f"    {rule}({quote(arg)}) >> fractal(2, {rule}({quote(arg)}, 2), drop_path = 0.1)\n"
            f"    >> flatten >> linear(3)\n")


def check_source(source: str) -> None:
    tree = pyast.parse(source)  # compiles
    kinds = {type(n).__name__ for n in pyast.walk(tree)}
    assert kinds <= ALLOWED_NODES, sorted(kinds - ALLOWED_NODES)
    for node in pyast.walk(tree):
        if isinstance(node, pyast.ImportFrom | pyast.Import):
            mods = [node.module] if isinstance(node, pyast.ImportFrom) else \
                [a.name for a in node.names]
            assert {str(m).split(".")[0] for m in mods} <= ALLOWED_IMPORTS
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name):
            assert node.func.id not in {"exec", "eval", "compile", "open", "print",
                                        "__import__", "getattr", "setattr", "globals"}


TORCH_OWNED = set(vars(torch.nn.Module()))


def run_model(rule: str, model: str, arg: str, tag: str, tmp: Path) -> None:
    m = ssnc.loads(spec_text(rule, model, arg, tag), "t.ssn").model()
    if rule in TORCH_OWNED:
        with pytest.raises(ssnc.SsnError, match=r"cannot name a PyTorch submodule"):
            m.torch_source()
        return
    source = m.torch_source()
    check_source(source)
    assert quote(tag) in str(pyast.get_docstring(pyast.parse(source), clean=False))  # as text
    before = set(os.listdir(tmp))
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            namespace: dict[str, object] = {"__name__": "generated"}
            exec(compile(source, "<generated>", "exec"), namespace)
            net = m.to_torch(seed=0).train()
            y = net(torch.randn(2, 3, 6, 6))
    finally:
        os.chdir(cwd)
    assert out.getvalue() == ""
    assert set(os.listdir(tmp)) == before
    assert y.shape == (2, 3)
    keys = set(net.state_dict())
    assert f"{rule}.conv.weight" in keys
    assert sum(p.numel() for p in net.parameters()) == m.total_params


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rule=names | hostile_names, model=names | hostile_names | hostile_models,
       arg=texts | hostile_texts, tag=texts | hostile_texts)
def test_arbitrary_spec_text_never_becomes_code(rule: str, model: str, arg: str, tag: str,
                                                tmp_path: Path) -> None:
    assume(rule != model)
    run_model(rule, model, arg, tag, tmp_path)


@pytest.mark.parametrize("model", ["none", "true", "false", "drop_path", "model", "lambda"])
def test_model_names_that_are_python_words(model: str, tmp_path: Path) -> None:
    run_model("blk", model, "a", "b", tmp_path)


def test_the_reported_injection_through_the_cli(tmp_path: Path) -> None:
    spec = tmp_path / "inj.ssn"
    spec.write_text('def blk(s) = conv(4) >> relu\n'
                    'model m : tensor[3, 8, 8] = blk("x\\"\\"\\"; print(\'INJECTED\') #") '
                    '>> flatten >> linear(2)\n', encoding="utf-8")
    out = tmp_path / "m.py"
    for args in (["--to", "python", "-o", str(out)],
                 ["--to", "torch", "-o", str(tmp_path / "m.pt2")]):
        run = CliRunner().invoke(app, ["compile", str(spec), *args])
        assert run.exit_code == 0, run.output
        assert "INJECTED" not in run.output
    ran = subprocess.run([sys.executable, str(out)], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == "" and ran.stderr == ""
    assert 'print(\'INJECTED\')' in out.read_text(encoding="utf-8")  # as text in a docstring


def test_helpers() -> None:
    assert literal(float("inf")) == "float('inf')" and eval(literal(float("nan"))) != 0
    assert literal((1,)) == "(1,)" and literal([1.5, None, True, "a"]) == "[1.5, None, True, 'a']"
    assert eval(literal(('x"""', "\n"))) == ('x"""', "\n")
    with pytest.raises(TypeError):
        literal(object())
    assert escape('a"\\\n\u202e') == 'a\\"\\\\\\n\\u202e'
    text = 'end with a quote"'
    assert eval("\n".join(docstring([text]))) == text
    taken: set[str] = {"torch"}
    assert [identifier(n, taken) for n in ("torch", "if", "_x", "3d", "a.b", "None", "a_b")] == \
        ["torch_", "v_if", "x", "v_3d", "a_b", "v_None", "a_b_"]
