"""Writing outputs: whole or not at all, only onto regular files, never onto an input, cleaned
up on signals, and an ONNX model with external data always a consistent pair."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import ssnc
import ssnc.output
from ssnc.cli import app
from ssnc.output import write_atomic, write_onnx
from tests.conftest import ROOT

runner = CliRunner()
SPEC = "model tiny : tensor[2, 4, 4] = conv(3, 3) >> relu >> flatten >> linear(5)\n"


def spec_file(folder: Path) -> Path:
    path = folder / "tiny.ssn"
    path.write_text(SPEC, encoding="utf-8")
    return path


def compile_to(spec: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["compile", str(spec), "--to", "onnx", "-o", str(out), *extra])
    return result.exit_code, result.output


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kind", ["dir", "fifo", "socket", "devnull"])
def test_only_regular_files_are_replaced(kind: str, tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    target = tmp_path / "out.onnx"
    sock = None
    if kind == "dir":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    else:
        target = Path("/dev/null")
    before = os.stat(target)
    try:
        code, output = compile_to(spec, target)
    finally:
        if sock is not None:
            sock.close()
    assert code == 1 and "error[E0603]" in output and "only regular files" in output, output
    after = os.stat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == \
        (before.st_mode, before.st_ino, before.st_rdev)
    assert leftovers(tmp_path) == []


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    real = tmp_path / "real.onnx"
    real.write_bytes(b"old")
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    code, output = compile_to(spec, link)
    assert code == 0, output
    assert link.is_symlink() and onnx.load(str(real)).graph.node


def test_never_onto_an_input(tmp_path: Path) -> None:
    (tmp_path / "lib.ssn").write_text("def blk = conv(3, 3) >> relu\n", encoding="utf-8")
    spec = tmp_path / "main.ssn"
    spec.write_text('import "lib.ssn"\nmodel m : tensor[2, 4, 4] = blk >> flatten >> linear(2)\n',
                    encoding="utf-8")
    hard = tmp_path / "hardlink.ssn"
    os.link(spec, hard)
    for target in (spec, tmp_path / "lib.ssn", hard, tmp_path / "." / "main.ssn"):
        text = target.read_text(encoding="utf-8")
        for to in ("onnx", "python"):
            result = runner.invoke(app, ["compile", str(spec), "--to", to, "-o", str(target)])
            assert result.exit_code == 1 and "input of this compile" in result.output, \
                result.output
        result = runner.invoke(app, ["graph", str(spec), "-o", str(target)])
        assert result.exit_code == 1 and "error[E0601]" in result.output  # not a picture
        assert target.read_text(encoding="utf-8") == text
    picture = tmp_path / "view.dot"
    picture.symlink_to(spec)
    result = runner.invoke(app, ["graph", str(spec), "-o", str(picture)])
    assert result.exit_code == 1 and "input of this compile" in result.output
    assert spec.read_text(encoding="utf-8").startswith('import "lib.ssn"')


def test_an_unwritable_folder_is_a_diagnostic(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_file(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ssnc.output.tempfile, "mkstemp", refuse)
    code, output = compile_to(spec, tmp_path / "out.onnx")
    assert code == 1 and "error[E0603]" in output and "Read-only file system" in output
    assert "internal" not in output
    code, output = compile_to(spec, tmp_path / "missing" / "out.onnx")
    assert code == 1 and "does not exist" in output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_a_diagnostic(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, output = compile_to(spec, folder / "out.onnx")
    finally:
        folder.chmod(0o755)
    assert code == 1 and "error[E0603]" in output


SLOW_WRITER = """
import sys, time
from pathlib import Path
from ssnc.output import write_atomic
def slow(tmp):
    tmp.write_bytes(b"partial")
    print("ready", flush=True)
    time.sleep(30)
write_atomic(Path(sys.argv[1]), slow)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_temporary_files_go_away_on_signals(sig: int, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert len(leftovers(tmp_path)) == 1  # the temporary file exists while writing
    proc.send_signal(sig)
    proc.wait(timeout=20)
    assert proc.returncode != 0
    assert leftovers(tmp_path) == [] and out.read_bytes() == b"old"


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old", encoding="utf-8")

    def broken(tmp: Path) -> None:
        tmp.write_text("half", encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ssnc.SsnError, match="No space left"):
        write_atomic(out, broken)
    assert out.read_text(encoding="utf-8") == "old" and leftovers(tmp_path) == []


# --------------------------------------------------------------- the ONNX pair

KILLER = """
import os, signal, sys
import ssnc
from ssnc.output import write_onnx
spec, out, seed, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
proto = ssnc.load(spec).model().to_onnx(seed)
calls = [0]
def killing(fn):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped
for name in ("replace", "unlink", "fsync", "chmod"):
    setattr(os, name, killing(getattr(os, name)))
write_onnx(proto, out, external_data_threshold=0)
print(calls[0])
"""


def run_killer(spec: Path, out: Path, seed: int, step: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", KILLER, str(spec), str(out), str(seed),
                           str(step)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def test_external_data_pair_survives_a_kill_at_every_step(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "tiny.onnx"
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    old = run_killer(spec, out, seed=0, step=0)
    assert old.returncode == 0, old.stderr
    pristine = tmp_path / "pristine"
    shutil.copytree(folder, pristine)
    want_old = outputs(out, x)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    steps = int(run_killer(spec, fresh / "tiny.onnx", seed=1, step=0).stdout)
    want_new = outputs(fresh / "tiny.onnx", x)
    assert not np.allclose(want_old, want_new)
    assert steps >= 4
    seen = set()
    for step in range(1, steps + 1):
        shutil.rmtree(folder)
        shutil.copytree(pristine, folder)
        killed = run_killer(spec, out, seed=1, step=step)
        assert killed.returncode == -signal.SIGKILL, (step, killed.stderr)
        got = outputs(out, x)  # loads: the .onnx and the data it names belong together
        same_old, same_new = np.array_equal(got, want_old), np.array_equal(got, want_new)
        assert same_old or same_new, step
        seen.add("new" if same_new else "old")
        done = run_killer(spec, out, seed=1, step=0)  # the next run cleans up
        assert done.returncode == 0, done.stderr
        # a SIGKILL can leave a hidden temporary file; never a second pair or stray data
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert len(names) == 2 and names[0] == "tiny.onnx", names
        assert np.array_equal(outputs(out, x), want_new)
    assert seen == {"old", "new"}  # the kills landed both before and after the switch


def test_external_data_is_named_by_its_content(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    out = tmp_path / "tiny.onnx"
    assert compile_to(spec, out, "--external-data-threshold", "0")[0] == 0
    first = sorted(p.name for p in tmp_path.glob("tiny.onnx.*.data"))
    assert len(first) == 1 and len(first[0]) == len("tiny.onnx.") + 16 + len(".data")
    data = (tmp_path / first[0]).read_bytes()
    assert compile_to(spec, out, "--external-data-threshold", "0")[0] == 0
    assert sorted(p.name for p in tmp_path.glob("tiny.onnx.*.data")) == first
    assert (tmp_path / first[0]).read_bytes() == data  # same spec, byte-identical pair
    assert (tmp_path / first[0]).stat().st_mode == out.stat().st_mode
    assert compile_to(spec, out, "--seed", "3", "--external-data-threshold", "0")[0] == 0
    second = sorted(p.name for p in tmp_path.glob("tiny.onnx.*.data"))
    assert len(second) == 1 and second != first
    assert compile_to(spec, out)[0] == 0  # small again: the data file goes
    assert sorted(p.name for p in tmp_path.glob("tiny.onnx.*.data")) == []
    code, output = compile_to(spec, out, "--external-data-threshold", "-1")
    assert code == 1 and "error[E0603]" in output
    result = runner.invoke(app, ["compile", str(spec), "--to", "python", "-o",
                                 str(tmp_path / "t.py"), "--external-data-threshold", "0"])
    assert result.exit_code == 1 and "does not apply to --to python" in result.output


def test_write_onnx_in_the_library(tmp_path: Path) -> None:
    proto = ssnc.loads(SPEC).model().to_onnx(0)
    files = write_onnx(proto, tmp_path / "m.onnx", external_data_threshold=0)
    assert files[0].name == "m.onnx" and files[1].name.endswith(".data")
    assert proto.graph.initializer[0].raw_data  # the caller's model is left as it was


def test_the_pair_keeps_the_permissions_of_the_model_it_replaces(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    out = tmp_path / "tiny.onnx"
    assert compile_to(spec, out)[0] == 0
    out.chmod(0o640)
    result = runner.invoke(app, ["compile", str(spec), "-o", str(out),
                                 "--external-data-threshold", "0"])
    assert result.exit_code == 0, result.output
    (data,) = tmp_path.glob("tiny.onnx.*.data")
    assert f"wrote {out} and {data.name}" in result.stderr  # the line names both files
    assert out.stat().st_mode & 0o777 == data.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("args,message", [
    (["--to", "onnx", "-o", "m.pt2"], "m.pt2 does not end in .onnx, the extension of --to onnx"),
    (["--to", "python", "-o", "m.onnx"], "does not end in .py"),
    (["-o", "m.bin"], "what to compile to is not given: m.bin has no extension it can say"),
    (["-o", "m"], "what to compile to is not given"),
    ([], "no --to and no -o"),
])
def test_the_extension_says_the_target_or_is_refused(args: list[str], message: str,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compile", str(spec), *args])
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert "error[E0601]" in result.stderr and ".onnx (--to onnx), .pt2 (--to torch)" in \
        result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ssn"]  # nothing written


def test_to_is_inferred_from_the_extension(tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    for name, check in [("m.onnx", lambda p: onnx.load(str(p)).graph.node),
                        ("m.py", lambda p: "class Tiny(nn.Module)" in p.read_text())]:
        result = runner.invoke(app, ["compile", str(spec), "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert check(tmp_path / name)


@pytest.mark.parametrize("name", ["m.jpg", "m", "m.svgz"])
def test_graph_refuses_what_it_cannot_draw(name: str, tmp_path: Path) -> None:
    spec = spec_file(tmp_path)
    result = runner.invoke(app, ["graph", str(spec), "-o", str(tmp_path / name)])
    assert result.exit_code == 1 and "error[E0601]" in result.stderr
    assert "name a .dot, .svg, .png, .pdf or .mmd file" in result.stderr
    assert not (tmp_path / name).exists()


def test_outputs_are_the_same_from_any_folder_and_path_spelling(tmp_path: Path) -> None:
    """Compiled files record the spec by file name: no absolute or typed path."""
    exe = Path(sys.executable).with_name("ssnc")
    specs = ROOT / "specs"
    digests = {}
    for target in ("onnx", "py"):
        outs = []
        for i, (cwd, spelling) in enumerate([(ROOT, "specs/nin_cifar10.ssn"),
                                             (specs, "./nin_cifar10.ssn"),
                                             (tmp_path, str(specs / "nin_cifar10.ssn")),
                                             (specs, "../specs/./nin_cifar10.ssn")]):
            out = tmp_path / f"{i}.{target}"
            done = subprocess.run([str(exe), "compile", spelling, "-o", str(out)], cwd=cwd,
                                  capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr
            outs.append(out.read_bytes())
        assert all(o == outs[0] for o in outs), target
        digests[target] = outs[0]
    assert str(ROOT).encode() not in digests["onnx"] + digests["py"]
    assert b"nin_cifar10.ssn:" in digests["onnx"]
