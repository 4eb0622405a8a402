"""Op plugins: the example package (ssnc-blurpool) found through its entry point and compiled
in both backends, plugins imported only when a spec uses them, each fault a diagnostic at a
position (never a traceback, never a file), `ssnc ops`, and the built-in activations
declared through the same API."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from ssnc.compiler.ops import OPS
from ssnc.compiler.plugins import installed
from ssnc.plugin import catalog, signature

ROOT = Path(__file__).parents[1]
BLUR = ROOT / "examples" / "plugins" / "ssnc-blurpool"
SPEC = BLUR / "specs" / "blur_cnn.ssn"


def test_the_example_plugin_is_found_through_its_entry_point() -> None:
    (entry,) = installed()["blurpool"]
    assert (entry.package, entry.value) == ("ssnc-blurpool", "ssnc_blurpool:blurpool")
    model = ssnc.load(SPEC).model(width=8)
    decl = OPS["blurpool"]
    assert decl.origin is not None and decl.origin.package == "ssnc-blurpool"
    net = model.to_torch().eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    for flat in (True, False):
        session = ort.InferenceSession(model.to_onnx(flat=flat).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x})[0], want, rtol=1e-4,
                                   atol=1e-5)


def test_its_python_source_imports_the_plugin_by_name_and_runs_alone(tmp_path: Path) -> None:
    out = tmp_path / "blur.py"
    result = CliRunner().invoke(app, ["compile", str(SPEC), "-o", str(out), "--set",
                                      "width=8"])
    assert result.exit_code == 0, result.output
    source = out.read_text()
    assert "import ssnc_blurpool.torch_module as _plugin_ssnc_blurpool_torch_module" in source
    assert "import ssnc\n" not in source and "from ssnc" not in source
    script = textwrap.dedent(f"""
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("blur", {str(out)!r})
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        net = mod.MODEL().eval()
        print(tuple(net(torch.zeros(2, 3, 32, 32)).shape))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(2, 10)"


def _distribution(root: Path, package: str, ops: dict[str, str], module: str,
                  code: str) -> None:
    """A package installed into ``root`` as pip would: its module and its dist-info with
    `ssnc.ops` entry points."""
    (root / f"{module}.py").write_text(code)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[ssnc.ops]\n" + "".join(f"{name} = {value}\n" for name, value in ops.items()))


def _run(root: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT.parent)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)


def test_plugins_are_imported_only_when_a_spec_uses_their_ops(tmp_path: Path) -> None:
    _distribution(tmp_path, "boom-ops", {"boom": "boom_plugin:boom"}, "boom_plugin",
                  "raise ImportError('this plugin must not be imported')\n")
    run = _run(tmp_path, textwrap.dedent("""
        import sys, ssnc
        from ssnc.compiler.plugins import installed
        m = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> relu >> gap").model()
        m.to_onnx()
        assert "boom" in installed() and "boom_plugin" not in sys.modules
        assert "torch" not in sys.modules
        try:
            ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> boom")
        except ssnc.SsnError as exc:
            print(exc.render())
    """))
    assert run.returncode == 0, run.stderr
    assert "error[E0701]: cannot load the op `boom` of boom-ops 0.1: ImportError: this " \
        "plugin must not be imported" in run.stdout
    assert "<string>:1:40" in run.stdout  # at its use


def test_two_packages_declaring_one_op_are_named_together(tmp_path: Path) -> None:
    code = "from ssnc.plugin import op, TorchLowering\ntwin = op('twin', 'x.', " \
           "torch=TorchLowering(expr='{0}'))\n"
    _distribution(tmp_path, "first-ops", {"twin": "first_ops:twin"}, "first_ops", code)
    _distribution(tmp_path, "second-ops", {"twin": "second_ops:twin"}, "second_ops", code)
    run = _run(tmp_path, textwrap.dedent("""
        import ssnc
        try:
            ssnc.loads("model m : tensor[3] = twin")
        except ssnc.SsnError as exc:
            print(exc.render())
    """))
    assert "error[E0701]: two installed packages declare the op `twin`: first-ops 0.1 and " \
        "second-ops 0.1" in run.stdout, run.stdout + run.stderr


def test_an_installed_op_that_shadows_a_built_in_is_refused_where_it_is_used(
        tmp_path: Path) -> None:
    code = "from ssnc.plugin import op, TorchLowering\nconv = op('conv', 'x.', " \
           "torch=TorchLowering(expr='{0}'))\n"
    _distribution(tmp_path, "fake-conv", {"conv": "fake_conv:conv"}, "fake_conv", code)
    run = _run(tmp_path, textwrap.dedent("""
        import sys, ssnc
        ssnc.loads("model m : tensor[3] = linear(2)")  # no `conv`: nothing to say
        try:
            ssnc.loads("model m : tensor[3, 4, 4] = conv(2)")
        except ssnc.SsnError as exc:
            print(exc.render())
        assert "fake_conv" not in sys.modules
    """))
    assert run.returncode == 0, run.stderr
    assert "<string>:1:29: error[E0701]: the op `conv` of fake-conv 0.1 would shadow ssnc's " \
        "built-in `conv`" in run.stdout, run.stdout


@pytest.mark.parametrize(("op", "target", "message"), [
    ("raising_shape", "onnx", "error[E0702]: the op `raising_shape` of tests.plugins.faults "
     "failed in its shape rule: ZeroDivisionError: division by zero in the plugin"),
    ("wrong_shape", "onnx", "failed in its shape rule: TypeError: it returned ('N', -3), "
     "not a shape"),
    ("raising_lowering", "onnx", "failed in its ONNX lowering: RuntimeError: the lowering broke"),
    ("raising_lowering", "python", "failed in its PyTorch lowering: RuntimeError: the lowering"),
    ("torch_only", "onnx", "error[E0703]: the op `torch_only` of tests.plugins.faults has no "
     "ONNX lowering"),
    ("conv", "onnx", "error[E0701]: the op `conv` of tests.plugins.shadow would shadow ssnc's "
     "built-in `conv`"),
])
def test_a_plugins_fault_is_a_diagnostic_and_writes_nothing(op: str, target: str, message: str,
                                                            tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text(f"model m : tensor[3, 8, 8] = conv(4) >> {op} >> gap\n")
    module = "tests.plugins.shadow" if op == "conv" else "tests.plugins.faults"
    out = tmp_path / f"m.{'onnx' if target == 'onnx' else 'py'}"
    result = CliRunner().invoke(app, ["compile", str(spec), "--plugin", module, "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.stderr, result.stderr
    assert op == "conv" or "m.ssn:1:40" in result.stderr  # the use of the op
    assert not out.exists()


def test_a_near_name_may_be_an_installed_plugins_op() -> None:
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> blurpol(stride = 2)")
    assert info.value.diagnostics[0].hint == \
        "did you mean `blurpool` (an op of the installed package ssnc-blurpool)?"


def test_ssnc_ops_lists_every_op_and_shows_one() -> None:
    result = CliRunner().invoke(app, ["ops"])
    assert result.exit_code == 0, result.output
    assert "conv(out=none, k=3, stride=1, pad=none" in result.stdout
    assert "relu()\n    Element-wise; shape unchanged" in result.stdout
    assert "blurpool" in result.stdout
    result = CliRunner().invoke(app, ["ops", "blurpool"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('blurpool(stride=2, k=3, pad="reflect")\n'
                                    "  from ssnc-blurpool 0.1.0; 1 input")
    assert "lowerings: torch, onnx" in result.stdout
    result = CliRunner().invoke(app, ["ops", "scaled_tanh", "--plugin", "tests.plugins.domain"])
    assert "scale (float/int): the scale" in result.stdout
    result = CliRunner().invoke(app, ["ops", "blurpol"])
    assert result.exit_code == 1 and "did you mean `blurpool`?" in result.stderr
    ops = catalog(load_installed=True)
    assert signature(ops["gelu"]) == "gelu(tanh=false)"  # type: ignore[arg-type]


def test_an_op_of_its_own_domain_runs_through_its_function_body() -> None:
    m = ssnc.loads("model m : tensor[3, 4, 4] = scaled_tanh(2.5) >> conv(2) >> "
                   "scaled_tanh(0.5) >> scaled_tanh(2.5)", plugins=["tests.plugins.domain"]
                   ).model()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    with torch.no_grad():
        want = m.to_torch().eval()(torch.from_numpy(x)).numpy()
    for flat in (True, False):
        proto = m.to_onnx(flat=flat)
        assert ("org.example.ops", 1) in [(o.domain, o.version) for o in proto.opset_import]
        assert sorted(f.name for f in proto.functions if f.domain == "org.example.ops") == \
            ["ScaledTanh", "ScaledTanh__2"]  # one per distinct scale
        got = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"input": x})
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


def test_check_op_reports_what_fails_and_skips_with_a_reason() -> None:
    from ssnc.testing import check_op

    report = check_op("fused_tanh", "tensor[3, 4, 4]", plugins=["tests.plugins.domain"])
    skipped = [c for c in report.checks if c.status == "skipped"]
    assert report.ok and [c.name for c in skipped] == ["ONNX Runtime", "fp16"]
    assert "no function body" in skipped[0].detail
    lying = ssnc.op("lying_shape", "Says it halves the width; does not.",
                    shape=lambda xs, a: (*xs[0][:-1], int(xs[0][-1]) // 2),
                    torch=ssnc.plugin.TorchLowering(expr="{0}"),
                    onnx=ssnc.plugin.OnnxLowering(op_type="Identity"))
    with pytest.raises(AssertionError) as info:
        check_op(lying, "tensor[3, 4, 4]")
    assert "FAILED   shape at batch 1: the shape rule gives [1, 3, 4, 2], PyTorch computed " \
        "[1, 3, 4, 4]" in str(info.value)


def test_every_command_takes_a_spec_with_a_plugins_op(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in (["check"], ["info"], ["ir"], ["graph", "-f", "dot"],
                    ["fmt", "--check"]):
        result = runner.invoke(app, [*command, str(SPEC)])
        assert result.exit_code == 0, (command, result.output)
        assert command[0] in ("fmt", "check") or "blurpool" in result.stdout, command
    out = tmp_path / "blur.pt2"
    result = runner.invoke(app, ["compile", str(SPEC), "-o", str(out), "--set", "width=4"])
    assert result.exit_code == 0 and out.exists(), result.output
    program = torch.export.load(out)
    assert tuple(program.module()(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)
