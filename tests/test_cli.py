"""The `ssnc` command, end to end."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

from typer.testing import CliRunner

import ssnc
from ssnc.cli import app
from tests.conftest import ROOT, SPECS

runner = CliRunner()
FRACTAL = str(SPECS / "fractalnet.ssn")


def test_check_every_shipped_spec() -> None:
    for spec in sorted(SPECS.glob("*.ssn")):
        result = runner.invoke(app, ["check", str(spec)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.stdout


def test_info_json_totals_and_rows() -> None:
    result = runner.invoke(app, ["info", FRACTAL, "--set", "classes=10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total_params"] == 33_724_618
    assert data["total_macs"] > 0
    rows = {r["path"]: r for r in data["scopes"]}
    assert rows["stage1"]["shape"] == ["N", 64, 16, 16]
    assert sum(rows[f"stage{i}"]["params"] for i in range(1, 6)) + rows["linear"]["params"] \
        == data["total_params"]
    assert rows["stage1.fractal.col3"]["params"] > rows["stage1.fractal.col1"]["params"]


def test_info_table_and_set_lists() -> None:
    result = runner.invoke(app, ["info", FRACTAL, "--set", "C=2", "--set", "widths=[8,8,8,8,8]",
                                 "--set", "classes=10", "--depth", "1"])
    assert result.exit_code == 0, result.output
    assert "stage5" in result.stdout and "total" in result.stdout
    assert "[N,10]" in result.stdout


def test_ir_command() -> None:
    result = runner.invoke(app, ["ir", str(SPECS / "nin_cifar10.ssn")])
    assert result.exit_code == 0
    assert result.stdout.startswith("model nin(classes=10, pool=true) : tensor[3, 32, 32]")
    assert ("%nin.stage1.mlpconv.conv1 : f32[N,192,32,32]{NCHW} = conv[out=192, k=5, pad=2]"
            in result.stdout)


def test_bad_set_values_are_diagnostics() -> None:
    for args, code in [(["--set", "C"], "E0601"), (["--set", "C=four"], "E0202"),
                       (["--set", "C=[1,"], "E0202"), (["--set", "C=0"], "E0204"),
                       (["--set", "C=3 def y = 4"], "E0202"),
                       (["--set", "widths=[8]"], "E0202"),
                       (["--model", "nope"], "E0103")]:
        result = runner.invoke(app, ["info", FRACTAL, *args])
        assert result.exit_code == 1, (args, result.output)
        assert f"error[{code}]" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_missing_file_is_a_diagnostic() -> None:
    result = runner.invoke(app, ["check", "no/such.ssn"])
    assert result.exit_code == 1
    assert "no/such.ssn" in result.stderr and "error[E0501]" in result.stderr


def test_installed_console_script() -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "ssnc")
    proc = subprocess.run([exe, "info", FRACTAL, "--json", "--set", "classes=100"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_params"] == 33_770_788
    case = ROOT / "tests/golden/diagnostics/E0101_unknown_name.ssn"
    bad = subprocess.run([exe, "check", str(case)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "did you mean `conv`?" in bad.stderr


def test_version() -> None:
    from ssnc import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"ssnc {__version__}\n"


def test_a_model_parameter_keeps_its_defaults_kind() -> None:
    for value, message in [("C=2.5", "`C` must be an integer, like its default 3; got 2.5"),
                           ("C=1e999", "`C` must be an integer, like its default 3; got inf"),
                           ("C=true", "`C` must be an integer"),
                           ("widths=3", "`widths` must be a list"),
                           ("C=def", "`def` is not a value")]:
        result = runner.invoke(app, ["info", FRACTAL, "--set", value])
        assert result.exit_code == 1, (value, result.output)
        assert message in result.stderr and "E0202" in result.stderr, (value, result.stderr)
        assert "__value__" not in result.stderr and "expected" not in result.stderr
    # a number-valued parameter takes an integer too
    ok = runner.invoke(app, ["info", FRACTAL, "--set", "drop_path=0", "--json"])
    assert ok.exit_code == 0, ok.output


def test_check_takes_several_files_and_set() -> None:
    nin = str(SPECS / "nin_cifar10.ssn")
    both = runner.invoke(app, ["check", FRACTAL, nin, "--set", "C=2", "--set", "classes=10"])
    assert both.exit_code == 0, both.output
    want = ssnc.load(FRACTAL).model(C=2, classes=10).total_params
    assert "fractalnet` ok: " in both.stdout and f"{want:,} parameters" in both.stdout
    assert "`nin` ok" in both.stdout
    bad = runner.invoke(app, ["check", "no/such.ssn", nin])
    assert bad.exit_code == 1 and "error[E0501]" in bad.stderr
    assert "`nin` ok" in bad.stdout  # every file is checked
    unknown = runner.invoke(app, ["check", nin, "--set", "C=2"])
    assert unknown.exit_code == 1 and "no model in" in unknown.stderr


def test_summary_is_the_rows_and_prints_as_a_table() -> None:
    m = ssnc.load(SPECS / "hmrnn_charlm.ssn").model()
    summary = m.summary(2)
    assert [r.path for r in summary] == ["embedding", "hmrnn", "hmrnn.scan", "linear"]
    assert summary[1].params == 8_417_410 and isinstance(summary, list)  # rows, as before
    text = str(summary)
    assert text.splitlines()[0].rstrip() == "hmrnn_charlm : tokens[50]"
    assert "MACs/step" in text and "│ total     │" in text and "8,449,460" in text
    assert "trainable parameters: 8,449,460; buffers (not trained): 2" in text  # the slopes
    html = summary._repr_html_()
    assert html.startswith("<!DOCTYPE html>") and "8,449,460" in html
    result = runner.invoke(app, ["info", str(SPECS / "hmrnn_charlm.ssn"), "-d", "2"])
    assert result.exit_code == 0
    assert [ln.rstrip() for ln in result.stdout.splitlines()] == \
        [ln.rstrip() for ln in text.splitlines()]  # one table, two places


def test_a_model_repr_is_one_line() -> None:
    m = ssnc.load(FRACTAL).model(classes=10)
    assert repr(m) == ("<ssnc.Model fractalnet: tensor[3, 32, 32] -> [N,10]{NC}, "
                       f"{m.op_count:,} nodes, 33,724,618 parameters>")


def test_seed_is_refused_where_no_weights_are_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["compile", FRACTAL, "-o", str(tmp_path / "m.py"),
                                 "--seed", "3"])
    assert result.exit_code == 1 and "--seed does not apply to --to python" in result.stderr
    assert "torch.manual_seed" in result.stderr and not (tmp_path / "m.py").exists()


def test_help_shows_flags_as_flags() -> None:
    for command in ([], ["check"], ["info"], ["ir"], ["graph"], ["compile"], ["fmt"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout and "<list[str]>" not in result.stdout, command
        assert "--help" in result.stdout
    assert "KEY=VALUE" in runner.invoke(app, ["info", "--help"]).stdout


def test_progress_off_a_terminal_is_one_line_per_phase_once_work_is_long(
        monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import ssnc.output as output

    clock = iter([0.0, 0.2, 0.5, 1.5, 1.6, 2.0, 3.0])  # start, then each reading
    monkeypatch.setattr(output.time, "monotonic", lambda: next(clock))
    with output.progress_display() as step:  # stderr is not a terminal under pytest
        step("elaborating")  # 0.2 s: quiet
        step("lowering")  # 0.5 s: quiet
        step("weights", 10, 100)  # 1.5 s: announced
        step("weights", 50, 100)  # the same phase: no second line
        step("writing", 1, 4)  # 2.0 s
    assert capsys.readouterr().err == "ssnc: weights (1.6 s)\nssnc: writing (3.0 s)\n"


def test_elaboration_and_passes_report_their_progress() -> None:
    calls: list[tuple[object, ...]] = []
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=5, progress=lambda *a: calls.append(a))
    made = [c for c in calls if c[0] == "elaborating"]
    assert made == [("elaborating", n, None) for n in range(500, m.op_count + 1, 500)]
    passes = [c for c in calls if c[0] not in ("elaborating", "evaluating")]
    long: list[tuple[object, ...]] = []
    ssnc.loads("model m : tensor[4] = seq([relu for i in range(12000)])\n").model(
        progress=lambda *a: long.append(a))
    steps = [c[1] for c in long if c[0] == "evaluating"]  # evaluation reports its steps too
    assert steps[0] >= 12_000  # the list is charged at once, then comes a checkpoint
    assert all(b - a >= 5_000 for a, b in itertools.pairwise(steps))
    assert {c[2] for c in long if c[0] == "evaluating"} == {300_000}
    assert [c[0] for c in passes] == ["flatten joins", "tag columns", "assign names",
                                      "infer shapes", "remove unread", "verify"]
    assert [c[1:] for c in passes] == [(k, 6) for k in range(6)]


def test_weights_and_writing_report_their_progress(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ssnc.output import write_onnx

    m = ssnc.load(SPECS / "nin_cifar10.ssn").model()
    calls: list[tuple[object, ...]] = []
    proto = m.to_onnx(progress=lambda *a: calls.append(a))
    weights = [c for c in calls if c[0] == "weights" and len(c) == 3]
    assert weights[-1] == ("weights", 966_986, 966_986)
    assert [c[1] for c in weights] == sorted(c[1] for c in weights)  # it only grows
    calls.clear()
    write_onnx(proto, tmp_path / "m.onnx", external_data_threshold=0,
               progress=lambda *a: calls.append(a))
    assert calls[-1][0] == "writing" and calls[-1][1] == calls[-1][2] >= 4 * 966_986
