"""Export options are checked once, where the backend declares them (`OnnxOptions.check`),
and a message names the option as the user gave it: the keyword from the library, the flag
from the command line. Nothing is written when an option is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import SPECS

runner = CliRunner()

LOOP = "model m : tokens[20] = embedding(20, 4) >> lstm(4) >> linear(20)\n"
IMAGE = "model m : tensor[3, 8, 8] = conv(4, 3) >> gap >> linear(2)\n"

CASES = [  # spec, library options, CLI flags, what the library says, what the CLI says
    (LOOP, {"unroll": True}, ["--unroll"], "`unroll` needs a fixed sequence length",
     "--unroll needs a fixed sequence length"),
    (LOOP, {"fold_weights": True, "flat": False}, ["--fold-weights", "--functions"],
     "`fold_weights` works on the flat form, not `flat=False`",
     "--fold-weights works on the flat form, not --functions"),
    (IMAGE, {"precision": "fp8"}, ["--precision", "fp8"], "`precision=fp8` is not supported",
     "--precision fp8 is not supported"),
    (IMAGE, {"io_precision": "f16"}, ["--io-precision", "f16"],
     "`io_precision=f16` is not supported", "--io-precision f16 is not supported"),
    (IMAGE, {"batch": 0}, ["--batch", "0"], "`batch` must be a positive integer, not 0",
     "--batch must be a positive integer, not 0"),
    (LOOP, {"steps": -3}, ["--steps", "-3"], "`steps` must be a positive integer",
     "--steps must be a positive integer"),
    (IMAGE, {"opset": 99}, ["--opset", "99"], "opset 99 is not supported",
     "opset 99 is not supported"),
    (IMAGE, {"precision": "bf16", "opset": 17}, ["--precision", "bf16", "--opset", "17"],
     "leave out `opset`", "leave out --opset"),
    (IMAGE, {"steps": 5}, ["--steps", "5"], "`steps` applies to `sequence`, `signal` and `tokens`",
     "--steps applies to `sequence`, `signal` and `tokens`"),
]


@pytest.mark.parametrize(("spec", "options", "flags", "library", "cli"), CASES,
                         ids=lambda v: None)
def test_a_bad_option_is_named_as_the_user_gave_it(spec: str, options: dict[str, object],
                                                    flags: list[str], library: str, cli: str,
                                                    tmp_path: Path) -> None:
    model = ssnc.loads(spec, "m.ssn").model()
    with pytest.raises(ssnc.SsnError) as info:
        model.to_onnx(**options)
    text = info.value.render()
    assert "error[E0601]" in text and library in text, text
    assert "--" not in text.replace("-->", ""), text  # the library never speaks CLI
    path = tmp_path / "m.ssn"
    path.write_text(spec)
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["compile", str(path), "-o", str(out), *flags])
    assert result.exit_code == 1 and not out.exists(), result.output
    assert "error[E0601]" in result.stderr and cli in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_option_is_named_with_a_suggestion() -> None:
    model = ssnc.loads(IMAGE, "m.ssn").model()
    with pytest.raises(ssnc.SsnError) as info:
        model.to_onnx(presicion="fp16")
    text = info.value.render()
    assert "`to_onnx` has no option `presicion`" in text and "did you mean `precision`" in text


def test_options_are_checked_before_the_spec_is_read(tmp_path: Path) -> None:
    """A bad option is refused before any work: the spec is never opened."""
    missing = tmp_path / "absent.ssn"
    result = runner.invoke(app, ["compile", str(missing), "-o", str(tmp_path / "m.onnx"),
                                 "--precision", "fp8"])
    assert result.exit_code == 1 and "--precision fp8 is not supported" in result.stderr
    assert "absent.ssn" not in result.stderr


def test_parameters_and_columns_are_named_as_the_user_gives_them(tmp_path: Path) -> None:
    spec = "model m(w) : tensor[3, 8, 8] = conv(w, 3)\n"
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.loads(spec, "m.ssn").model()
    assert "pass `w=VALUE`" in info.value.render()
    path = tmp_path / "m.ssn"
    path.write_text(spec)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1 and "pass --set w=VALUE" in result.stderr
    with pytest.raises(ssnc.SsnError) as info:
        ssnc.load(SPECS / "nin_cifar10.ssn").model().column(2)
    assert "`column` applies to models built from fractals" in info.value.render()


@pytest.mark.parametrize("flag", ["--functions", "--flat", "--opset=18", "--fold-weights"])
def test_onnx_flags_do_not_apply_to_python_source(flag: str, tmp_path: Path) -> None:
    spec = tmp_path / "m.ssn"
    spec.write_text(IMAGE)
    out = tmp_path / "m.py"
    result = runner.invoke(app, ["compile", str(spec), "-o", str(out), flag])
    assert result.exit_code == 1 and not out.exists()
    name = flag.split("=")[0]
    assert f"{name} does not apply to --to python" in result.stderr, result.stderr
    assert "it is an ONNX option" in result.stderr
