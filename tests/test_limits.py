"""Every evaluation is bounded and every failure is a positioned diagnostic: hostile specs end
in a limit diagnostic, deterministically, within hang guards (10 s, 1 GiB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from ssnc.compiler.arguments import parse_sets
from ssnc.compiler.elaborate import Limits
from tests.conftest import ROOT, SPECS
from tests.fuzz.hostile import HOSTILE, TAIL

runner = CliRunner()
GUARD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # the 1 GiB hang guard
import ssnc
out = []
for name, text in json.loads(sys.stdin.read()):
    start = time.perf_counter()
    try:
        ssnc.loads(text, "t.ssn").model().initial_weights()
        code = ""
    except ssnc.SsnError as exc:
        code = exc.diagnostics[0].code.id
    out.append((name, code, time.perf_counter() - start))
print(json.dumps(out))
"""


def test_hostile_specs_end_in_limit_diagnostics_quickly() -> None:
    cases = [(name, text) for name, text, _ in HOSTILE]
    run = subprocess.run([sys.executable, "-c", GUARD], input=json.dumps(cases), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    results = {name: (code, seconds) for name, code, seconds in json.loads(run.stdout)}
    for name, _, want in HOSTILE:
        code, seconds = results[name]
        assert code == (want or "E0404"), (name, code)
        assert seconds < 10, (name, seconds)  # a hang guard; bench/bench_limits.py measures


@pytest.mark.parametrize("name,text,want", [c for c in HOSTILE if c[2]], ids=lambda v: v
                         if isinstance(v, str) and len(v) < 30 else "")
def test_each_class_has_its_code_and_a_position(name: str, text: str, want: str) -> None:
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(text, "t.ssn").model()
    first = info.value.diagnostics[0]
    assert first.code.id == want
    assert first.span.file == "t.ssn" and first.span.line >= 1, first.span
    rendered = info.value.render()
    assert len(rendered) < 2000  # a bounded excerpt, even of a 4,301-digit literal


def test_the_step_budget_is_a_deterministic_counter() -> None:
    text = "model m(a = len([i for i in range(5000)]))" + TAIL
    first = ssnc.loads(text).model()
    assert first.steps == ssnc.loads(text).model().steps > 5000
    with pytest.raises(ssnc.SsnError, match=f"more than {first.steps - 1:,} steps"):
        ssnc.loads(text).model(limits=Limits(max_steps=first.steps - 1))
    ssnc.loads(text).model(limits=Limits(max_steps=first.steps))  # exactly enough
    fractal = ssnc.load(SPECS / "fractalnet.ssn").model()
    assert fractal.steps < Limits().max_steps // 10  # published models are far inside


def test_limits_that_are_not_positive_are_option_errors() -> None:
    result = runner.invoke(app, ["check", str(SPECS / "nin_cifar10.ssn"), "--max-nodes", "-5"])
    assert result.exit_code == 1 and "error[E0601]" in result.stderr
    assert "--max-nodes must be a positive integer" in result.stderr
    with pytest.raises(ssnc.SsnError, match="`max_steps` must be a positive integer"):
        Limits(max_steps=0)  # the library names its keyword, the CLI its flag


@pytest.mark.parametrize("text", [
    "model m : tensor[3, 8, 8] = " + " >> ".join(["relu"] * 10000) + " >> gap >> linear(2)",
    "model m(a = " + " + ".join(["1"] * 10000) + ")" + TAIL,
    "model m(a = " + "abs(" * 1000 + "1" + ")" * 1000 + ")" + TAIL,
], ids=["10000-op chain", "10000-term sum", "1000 nested calls"])
def test_long_chains_parse_without_overflowing_the_stack(text: str) -> None:
    m = ssnc.loads(text).model()
    assert len(m.ir) >= 4


def test_a_set_list_nested_deeply() -> None:
    spec = ssnc.loads("model m(a = [1]) : tensor[3, 8, 8] = conv(4) >> gap >> linear(2)\n")
    values, _, _ = parse_sets(["a=" + "[" * 1000 + "1" + "]" * 1000])
    value = spec.model(**values).ir.params["a"]
    for _ in range(1000):
        assert isinstance(value, tuple) and len(value) == 1
        value = value[0]
    assert value == 1
    with pytest.raises(ssnc.SsnError) as info:
        parse_sets(["a=" + "[" * 20000 + "1" + "]" * 20000])
    assert info.value.diagnostics[0].code.id == "E0406"


def test_name_resolution_is_linear(tmp_path: Path) -> None:
    lines = [f"def r{i} = relu" for i in range(100_000)]
    lines.append("model m : tensor[3, 8, 8] = r99999 >> r0 >> gap >> linear(2)")
    spec = tmp_path / "many.ssn"
    spec.write_text("\n".join(lines), encoding="utf-8")
    m = ssnc.load(spec).model()  # seconds, not minutes (the guard: pytest's own time)
    assert [n.op for n in m.ir.order()][1:3] == ["relu", "relu"]


def test_aliases_and_builtin_arity() -> None:
    m = ssnc.loads("def act = relu\ndef c = conv\n"
                   "model m : tensor[3, 8, 8] = c(4, k = 1) >> act >> gap >> linear(2)").model()
    assert [n.op for n in m.ir.order() if n.op != "param"] == ["input", "conv", "relu", "gap",
                                                                "linear"]
    for call in ("min(3)", "round(1, 2, 3)", "abs()", "min()"):
        with pytest.raises(ssnc.SsnError) as info:
            ssnc.loads(f"model m(a = {call})" + TAIL).model()
        assert info.value.diagnostics[0].code.id == "E0201", call
    assert ssnc.loads("model m(a = min([3]))" + TAIL).model().ir.params["a"] == 3


@pytest.mark.parametrize("text,message", [
    ("def f(w, w) = conv(w)\nmodel m : tensor[3, 8, 8] = f(4, 4)", "parameter `w` is given twice"),
    ("model m : tensor[3, 8, 8] = conv(8, k = 3, k = 5)", "keyword argument `k` is given twice"),
    ("def relu = sigmoid\nmodel m : tensor[3, 8, 8] = relu", "`relu` is a built-in"),
    ("def none = relu\nmodel m : tensor[3, 8, 8] = relu", "`none` is a built-in"),
    ("model m : tensor[3, 8, 8] = ((x, x) => x)", "stream `x` is given twice"),
])
def test_wrongly_accepted_before(text: str, message: str) -> None:
    with pytest.raises(ssnc.SsnError, match=message) as info:
        ssnc.loads(text).model()
    assert info.value.diagnostics[0].code.id == "E0102"


def test_set_values_are_one_expression() -> None:
    result = runner.invoke(app, ["info", str(SPECS / "nin_cifar10.ssn"), "--set",
                                 "classes=3 def y = 4"])
    assert result.exit_code == 1 and "is not a value" in result.stderr
    assert "__value__" not in result.stderr and "Traceback" not in result.output


def test_encoding_and_reads(tmp_path: Path) -> None:
    bom = tmp_path / "bom.ssn"
    bom.write_bytes(b"\xef\xbb\xbfmodel m" + TAIL.encode())
    assert ssnc.load(bom).model().name == "m"
    bad = tmp_path / "bad.ssn"
    bad.write_bytes(b"model m : tensor[3, 8, 8] =\n  gap >> \xff linear(2)\n")
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.load(bad)
    d = info.value.diagnostics[0]
    assert (d.code.id, d.span.line, d.span.col) == ("E0001", 2, 10)
    with pytest.raises(ssnc.SsnError, match="not a regular file"):
        ssnc.load("/dev/zero")
    big = tmp_path / "big.ssn"
    with open(big, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(ssnc.SsnError, match="limit of") as info:
        ssnc.load(big)
    assert info.value.diagnostics[0].code.id == "E0404"


@pytest.mark.parametrize("path,message", [
    ("bad.ssn", "not valid UTF-8"),
    ("a\x00b.ssn", "not a usable path"),
    ("a" * 5000 + ".ssn", "not a usable path"),
    ("x" * 300 + ".ssn", "cannot find"),
])
def test_bad_imports_are_diagnostics_at_the_import(path: str, message: str,
                                                   tmp_path: Path) -> None:
    (tmp_path / "bad.ssn").write_bytes(b"def x = \xff\n")
    spec = tmp_path / "main.ssn"
    spec.write_bytes(b'import "' + path.encode() + b'"\nmodel m' + TAIL.encode())
    with pytest.raises(ssnc.SsnError, match=message) as info:
        ssnc.load(spec)
    d = info.value.diagnostics[0]
    if path == "bad.ssn":
        assert d.span.file.endswith("bad.ssn") and d.span.line == 1
    else:
        assert d.span.file.endswith("main.ssn") and d.span.line == 1
        assert len(d.message) < 200


def test_npz_is_checked_from_its_headers(tmp_path: Path) -> None:
    m = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> gap >> linear(2)").model()
    good = m.initial_weights(1)
    ok = tmp_path / "ok.npz"
    np.savez(ok, **good)
    assert np.array_equal(m.weights(ok)["linear.weight"], good["linear.weight"])
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, value in good.items():
            z.writestr(key + ".npy", _npy(value))
        z.writestr("extra.npy", _npy_header((1 << 20, 1 << 10)) + bytes(1 << 20))
    with pytest.raises(ssnc.SsnError) as info:
        m.weights(bomb)
    assert info.value.diagnostics[0].code.id == "E0602"
    assert "unexpected: extra" in info.value.render() or "declares" in info.value.render()
    liar = tmp_path / "liar.npz"
    with zipfile.ZipFile(liar, "w", compression=zipfile.ZIP_DEFLATED) as z:
        header = _npy_header(good["linear.weight"].shape)
        z.writestr("linear.weight.npy", header + bytes(50_000_000))
    with pytest.raises(ssnc.SsnError, match="declares"):
        m.weights(liar)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _npy(value: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, value, allow_pickle=False)
    return buf.getvalue()


def test_torch_weights_in_half_bfloat16_and_meta(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    m = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> gap >> linear(2)").model()
    state = {k: torch.from_numpy(v) for k, v in m.initial_weights(2).items()}
    half = tmp_path / "bf16.pt"
    torch.save({k: v.to(torch.bfloat16) for k, v in state.items()}, half)
    got = m.weights(half)
    want = state["conv.weight"].to(torch.bfloat16).float().numpy()
    assert np.array_equal(got["conv.weight"], want)  # widened losslessly
    meta = tmp_path / "meta.pt"
    torch.save({k: torch.empty(v.shape, device="meta") for k, v in state.items()}, meta)
    with pytest.raises(ssnc.SsnError, match="meta tensor") as info:
        m.weights(meta)
    assert info.value.diagnostics[0].code.id == "E0602"


def test_no_module_builds_a_python_recursion_limit_of_its_own() -> None:
    text = (ROOT / "compiler" / "elaborate.py").read_text(encoding="utf-8")
    assert "setrecursionlimit" not in text  # one guard, compiler/guard.py, for every phase
    assert os.path.exists(ROOT / "compiler" / "guard.py")


@pytest.mark.parametrize("text", [
    "model m : tensor[3, 8, 8] = " + "a" * 1_000_000 + " >> gap >> linear(2)",
    "def " + "b" * 1_000_000 + "(x) = relu\nmodel m : tensor[3, 8, 8] = " + "b" * 1_000_000,
    'model m : tensor[3, 8, 8] = fail("' + "x" * 1_000_000 + '")',
], ids=["unknown name", "missing argument", "fail message"])
def test_diagnostics_of_megabyte_tokens_stay_short(text: str) -> None:
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(text).model()
    assert len(info.value.render()) < 2000
    assert len(str(info.value)) < 500
