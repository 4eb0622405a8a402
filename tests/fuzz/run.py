"""Run fuzz cases through the library (and a sample through the CLI), with per-case time and
memory limits enforced by a worker process. The outcome of a case is `ok`, `diag:E....` (a
diagnostic), `crash:...` (any other exception, or E9001), `hang` or `memory`.

    python -m tests.fuzz.run --count 100000 --write     # the full run; writes LAST_RUN.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .generate import ROOT, cases

TIME_LIMIT_S = 10.0
MEMORY_LIMIT = 1 << 30  # bytes of address space a worker may map beyond its start
ONNX_MAX_PARAMS = 200_000


def run_case(text: str, root: str) -> str:
    """One case in this process: parse, check, elaborate every model, render any diagnostic;
    small models are also lowered to ONNX and printed."""
    import ssnc

    try:
        program = ssnc.loads(text, "fuzz.ssn", root=root)
        for name in program.models:
            model = program.model(name)
            model.format_ir()
            model.info(3)
            if model.total_params <= ONNX_MAX_PARAMS and len(model.ir) <= 300:
                model.to_onnx()
        return "ok"
    except ssnc.SsnError as exc:
        exc.render()
        code = exc.diagnostics[0].code.id
        return f"crash:E9001 {exc.diagnostics[0].message[:150]}" if code == "E9001" \
            else f"diag:{code}"
    except Exception as exc:  # a bug: the library raised something else
        return f"crash:{type(exc).__name__}: {str(exc)[:150]}"


def run_cli(text: str, folder: str) -> str:
    """One case through `ssnc check` as a user runs it."""
    spec = Path(folder) / "cli_case.ssn"
    spec.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "ssnc.cli", "check", str(spec)],
                          capture_output=True, text=True, timeout=60, cwd=folder)
    if "Traceback" in proc.stderr or "E9001" in proc.stderr or proc.returncode not in (0, 1):
        return f"crash:cli {proc.returncode} {proc.stderr[-150:]}"
    return "ok" if proc.returncode == 0 else "diag:cli"


def _worker() -> None:
    """Serve cases from stdin (one JSON string a line), one JSON outcome a line."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    import ssnc.backends.onnx.exporter  # noqa: F401  (imported before the limit: not the case's size)

    with open("/proc/self/statm") as statm:
        usage = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (usage + MEMORY_LIMIT, hard))
    folder = tempfile.mkdtemp(prefix="ssnc-fuzz-")
    for line in sys.stdin:
        try:
            outcome = run_case(json.loads(line), folder)
        except MemoryError:
            outcome = "memory"
        sys.stdout.write(json.dumps(outcome) + "\n")
        sys.stdout.flush()


class Worker:
    """One worker process running one case at a time; restarted after a hang or a death."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.case: tuple[int, str, str] | None = None
        self.started = 0.0

    def send(self, case: tuple[int, str, str]) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.run", "--worker"],
                                         cwd=ROOT, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
        assert self.proc.stdin is not None
        self.case, self.started = case, time.perf_counter()
        self.proc.stdin.write(json.dumps(case[2]) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> str:
        """The outcome of the case in flight (its output is ready, or it died)."""
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            return "memory"  # the worker died: killed at its memory limit
        outcome: str = json.loads(line)
        return outcome

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def run_all(todo: Iterator[tuple[int, str, str]], jobs: int
            ) -> Iterator[tuple[tuple[int, str, str], str, float]]:
    """Run cases on ``jobs`` workers; yield (case, outcome, seconds) as they finish."""
    workers = [Worker() for _ in range(jobs)]
    pending = True
    while True:
        for w in workers:
            if w.case is None and pending:
                case = next(todo, None)
                if case is None:
                    pending = False
                else:
                    w.send(case)
        busy = [w for w in workers if w.case is not None]
        if not busy:
            break
        now = time.perf_counter()
        wait = max(0.0, min(w.started + TIME_LIMIT_S + 5 - now for w in busy))
        streams = {w.proc.stdout: w for w in busy if w.proc is not None}
        ready, _, _ = select.select(list(streams), [], [], wait)
        for stream in ready:
            w = streams[stream]
            case, seconds = w.case, time.perf_counter() - w.started
            assert case is not None
            w.case = None
            yield case, w.receive(), seconds
        now = time.perf_counter()
        for w in busy:
            if w.case is not None and now - w.started > TIME_LIMIT_S + 5:
                case, w.case = w.case, None
                w.close()
                yield case, "hang", now - w.started
    for w in workers:
        w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--cli-every", type=int, default=1000,
                        help="also run every Nth case through the CLI")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    parser.add_argument("--write", action="store_true", help="write tests/fuzz/LAST_RUN.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker()
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    commit += " (with uncommitted changes)" if dirty else ""
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[tuple[str, str, str]] = []
    slowest = 0.0
    start = time.perf_counter()
    todo = ((i, kind, text) for i, (kind, text) in enumerate(cases(args.seed, args.count)))
    with tempfile.TemporaryDirectory() as folder:
        for done, ((i, kind, text), outcome, seconds) in enumerate(run_all(todo, args.jobs)):
            slowest = max(slowest, seconds)
            if seconds > TIME_LIMIT_S and not outcome.startswith("crash"):
                outcome = "hang"
            if args.cli_every and i % args.cli_every == 0:
                cli = run_cli(text, folder)
                if cli.startswith("crash"):
                    failures.append((kind, cli, text))
                    outcomes["crash"] += 1
            key = outcome.split(":")[0] if outcome.startswith("diag") else outcome
            outcomes["diagnostic" if key == "diag" else key.split(":")[0]] += 1
            if outcome.startswith(("crash", "hang", "memory")):
                failures.append((kind, outcome, text))
            if (done + 1) % 1000 == 0:
                print(f"{done + 1:,} cases, {dict(outcomes)}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    summary = (f"seed {args.seed}, {args.count:,} cases in {elapsed:,.0f} s: "
               f"{outcomes['ok']:,} ok, {outcomes['diagnostic']:,} diagnostics, "
               f"{outcomes['crash']:,} crashes, {outcomes['hang']:,} hangs, "
               f"{outcomes['memory']:,} over the memory limit; slowest case {slowest:.2f} s")
    print(summary)
    for kind, outcome, text in failures[:20]:
        print(f"--- {kind}: {outcome}\n{text[:500]}")
    if args.write:
        lines = ["# Last full fuzz run", "",
                 "Written by `python -m tests.fuzz.run --count 100000 --write` "
                 "(see tests/fuzz/run.py).", "",
                 "| field | value |", "|---|---|",
                 f"| commit | {commit} |", f"| seed | {args.seed} |",
                 f"| cases | {args.count:,} (30 % generated from the grammar, 30 % built "
                 "from working blocks, 40 % mutated shipped specs) |",
                 f"| through the CLI | every {args.cli_every:,}th case |",
                 f"| workers | {args.jobs} |",
                 f"| limits per case | {TIME_LIMIT_S:.0f} s, {MEMORY_LIMIT >> 20} MiB |",
                 f"| ok | {outcomes['ok']:,} |", f"| diagnostics | {outcomes['diagnostic']:,} |",
                 f"| crashes | {outcomes['crash']:,} |", f"| hangs | {outcomes['hang']:,} |",
                 f"| over memory | {outcomes['memory']:,} |",
                 f"| slowest case | {slowest:.2f} s |", f"| wall time | {elapsed:,.0f} s |", ""]
        (ROOT / "tests" / "fuzz" / "LAST_RUN.md").write_text("\n".join(lines),
                                                              encoding="utf-8")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
