"""The front end against CPython's: parsing and building the AST of a generated 2 MB spec,
per byte, against `ast.parse` of a Python file of the same size and shape (the same
definitions written as Python functions), and the peak memory each adds, in fresh processes;
then the time and memory to load the issue's two slow specs.

    python bench/bench_frontend.py            # writes the `frontend` section of BENCHMARKS.md
    python bench/bench_frontend.py --quick    # 200 KB
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from common import ROOT, arguments, machine, write_section

PROBE = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
if kind == "ssnc":
    from ssnc.compiler.guard import guarded
    from ssnc.grammar.parser import parse
    guarded(lambda: parse("def warm = relu\n", "warm.ssn"))  # imports, once
    run = lambda: guarded(lambda: parse(text, "bench.ssn"))
elif kind == "load":  # parse, then check every rule and model, to the first diagnostic
    import ssnc
    ssnc.loads("model warm : tensor[3] = relu\n", "warm.ssn")

    def run():
        try:
            ssnc.loads(text, "bench.ssn")
        except ssnc.SsnError:
            pass
else:
    import ast
    run = lambda: ast.parse(text)
def status(key):  # kB, from /proc/self/status (VmRSS now, VmHWM the high-water mark)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))
try:  # reset the high-water mark, so that the warm-up's peak does not hide the run's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    peak = lambda: status("VmHWM:")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
run()
seconds = time.perf_counter() - start
print(json.dumps([seconds, (peak() - before) / 1024]))
"""


def texts(size: int) -> tuple[str, str]:
    """A spec of ``size`` bytes (rules with arguments, defaults, conditionals, list
    comprehensions and calls, then a model) and the same definitions as Python."""
    spec, python, i = [], [], 0
    while sum(map(len, spec)) < size:
        spec.append(f"def block{i}(w, k = 3) = conv(w, k) >> bn >> relu >> (if w > 8 then "
                    f"maxpool(2) else identity) >> [conv(w + {i % 7}, 1) for j in range(2)][0]\n")
        python.append(f"def block{i}(w, k=3):\n    return conv(w, k) >> bn >> relu >> "
                      f"(maxpool(2) if w > 8 else identity) >> [conv(w + {i % 7}, 1) for j in "
                      f"range(2)][0]\n")
        i += 1
    spec.append("model m : tensor[3, 32, 32] = block0(8) >> gap >> linear(10)\n")
    return "".join(spec), "".join(python)


def user_texts(scale: float) -> dict[str, str]:
    """The issue's two slow specs, as a user meets them: 100,000 definitions, then a model
    that names something unknown; and a 600 KB list literal (both scaled by ``scale``)."""
    count = int(100_000 * scale)
    defs = "".join(f"def r{i} = conv({i % 9 + 1})\n" for i in range(count))
    items = ", ".join(str(i % 1000) for i in range(int(123_000 * scale)))
    return {f"{count:,} definitions, then an unknown name":
            defs + "model m : tensor[3, 8, 8] = nothere >> gap\n",
            "a list literal": f"def xs = [{items}]\n"
                              "model m : tensor[3, 8, 8] = conv(len(xs)) >> gap\n"}


def probe(kind: str, path: str) -> tuple[float, float]:
    """(seconds, MB of peak memory added) of one parse in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", PROBE, kind, path], capture_output=True,
                          text=True, timeout=600, cwd=ROOT.parent)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    seconds, mb = json.loads(proc.stdout)
    return seconds, mb


def main() -> None:
    args = arguments(__doc__, reps=3)
    size = 200_000 if args.quick else 2_000_000
    spec, python = texts(size)
    work = ROOT / "build" / "bench_frontend"
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench.ssn").write_text(spec, encoding="utf-8")
    (work / "bench.py").write_text(python, encoding="utf-8")
    ours, theirs = [], []
    for _ in range(args.reps):  # alternating, each in a fresh process
        ours.append(probe("ssnc", str(work / "bench.ssn")))
        theirs.append(probe("python", str(work / "bench.py")))
    ours_s = statistics.median(o[0] for o in ours)
    theirs_s = statistics.median(t[0] for t in theirs)
    ours_mb = statistics.median(o[1] for o in ours)
    theirs_mb = statistics.median(t[1] for t in theirs)
    per_byte = (ours_s / len(spec)) / (theirs_s / len(python))
    lines = ["## Front end: parse and AST against CPython's `ast.parse`", "",
             f"`python bench/bench_frontend.py{' --quick' if args.quick else ''}` — a "
             f"generated spec of {len(spec):,} bytes ({spec.count(chr(10)):,} rules with "
             f"defaults, conditionals, comprehensions and calls) and the same definitions as "
             f"a {len(python):,}-byte Python file; each parse in a fresh process (ssnc's after a "
             f"first tiny parse has imported the parser), median of {args.reps}, "
             f"alternating. {machine()}", "",
             "| measurement | ssnc | ast.parse | ratio ssnc/ast.parse |",
             "|---|---:|---:|---:|",
             f"| seconds | {ours_s:.2f} | {theirs_s:.2f} | {ours_s / theirs_s:.2f} |",
             f"| seconds per byte | {ours_s / len(spec) * 1e6:.2f} µs | "
             f"{theirs_s / len(python) * 1e6:.2f} µs | **{per_byte:.2f}** |",
             f"| peak memory added | {ours_mb:.0f} MB | {theirs_mb:.0f} MB | "
             f"**{ours_mb / max(theirs_mb, 1e-9):.2f}** |", "",
             "The goals: at most 5 per byte, at most 2 in memory.", "",
             "Loading (parse, then the checks of every rule and model) to the first "
             "diagnostic or a loaded program, in a fresh process, median of "
             f"{args.reps}:", "",
             "| spec | bytes | seconds | peak memory added |", "|---|---:|---:|---:|"]
    for label, text in user_texts(0.1 if args.quick else 1.0).items():
        path = work / "user.ssn"
        path.write_text(text, encoding="utf-8")
        runs = [probe("load", str(path)) for _ in range(args.reps)]
        lines.append(f"| {label} | {len(text):,} | "
                     f"{statistics.median(r[0] for r in runs):.2f} | "
                     f"{statistics.median(r[1] for r in runs):.0f} MB |")
    write_section("frontend" + ("-quick" if args.quick else ""), "\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
