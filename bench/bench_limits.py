"""Hostile specs end within a second and 500 MB: each case runs in a fresh process that
imports ssnc, then elaborates the spec (it must end in its limit diagnostic); wall time and
the peak memory the case added are measured, against the same for the shipped FractalNet
(elaborated, not lowered) in the same run.

    python bench/bench_limits.py            # writes the `limits` section of BENCHMARKS.md
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from common import ROOT, arguments, write_section

sys.path.insert(0, str(ROOT))
from tests.fuzz.hostile import HOSTILE

PROBE = r"""
import json, resource, sys, time
import ssnc
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text, path = json.loads(sys.stdin.read())
start = time.perf_counter()
try:
    (ssnc.load(path) if path else ssnc.loads(text, "bench.ssn")).model()
    code = "ok"
except ssnc.SsnError as exc:
    code = exc.diagnostics[0].code.id
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([code, seconds, (after - before) / 1024]))
"""


def probe(text: str, path: str = "") -> tuple[str, float, float]:
    """(outcome, seconds, MB of peak memory added) for one spec in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps([text, path]),
                          capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    code, seconds, mb = json.loads(proc.stdout)
    return code, seconds, mb


def main() -> None:
    args = arguments(__doc__, reps=3)
    cases = [c for c in HOSTILE if c[2]][:4 if args.quick else None]
    base = [probe("", str(ROOT / "specs" / "fractalnet.ssn")) for _ in range(args.reps)]
    base_s = statistics.median(b[1] for b in base)
    base_mb = statistics.median(b[2] for b in base)
    lines = ["## Limits: hostile specs end in a diagnostic within 1 s and 500 MB", "",
             f"`python bench/bench_limits.py` — each case in a fresh process, median of "
             f"{args.reps}; the baseline is elaborating `specs/fractalnet.ssn` "
             f"({base_s:.3f} s, {base_mb:.0f} MB added) in the same run. Time and memory are "
             "those of the case alone (after `import ssnc`).", "",
             "| case | diagnostic | time (s) | ratio to baseline | peak memory added (MB) |",
             "|---|---|---:|---:|---:|"]
    worst_s = worst_mb = 0.0
    for name, text, want in cases:
        runs = [probe(text) for _ in range(args.reps)]
        code = runs[0][0]
        if code != want:
            raise SystemExit(f"{name}: expected {want}, got {code}")
        seconds = statistics.median(r[1] for r in runs)
        mb = statistics.median(r[2] for r in runs)
        worst_s, worst_mb = max(worst_s, seconds), max(worst_mb, mb)
        lines.append(f"| {name} | {code} | {seconds:.3f} | {seconds / base_s:.2f} | {mb:.0f} |")
    lines += ["", f"Slowest case {worst_s:.2f} s (goal < 1 s); largest {worst_mb:.0f} MB "
              "(goal < 500 MB)."]
    text = "\n".join(lines)
    write_section("limits-quick" if args.quick else "limits", text, args.out)
    print(text)


if __name__ == "__main__":
    main()
