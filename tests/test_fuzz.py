"""A bounded fuzz run in CI: grammar-generated and mutated specs through the library in
process (and a sample through the CLI) give diagnostics or models, never anything else.
The full run (100,000 cases, per-case limits in a worker) is `python -m tests.fuzz.run`."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from tests.fuzz.generate import cases
from tests.fuzz.run import run_case, run_cli

SEED = 20261130

# Cases the fuzzer once crashed on, kept as regressions (each must give a model or a
# diagnostic, through the library and its JSON and ONNX outputs).
REGRESSIONS = [
    # a fractal whose base makes no node: a join input came straight from the block's entry
    "model m : tensor[3, 8, 8] = conv(4) >> fractal(3, relu x0) >> gap >> linear(2)",
    # a model parameter that is an op: `info --json` and ONNX metadata must still serialise it
    "model m(x = flatten, y = [relu, 2]) : tensor[1, 4, 4] = maxpool x1 >> gap >> linear(2)",
]


def test_fuzz_cases_in_process(tmp_path: Path) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    crashes = []
    for kind, text in cases(SEED, 250):
        start = time.perf_counter()
        outcome = run_case(text, str(tmp_path))
        seconds = time.perf_counter() - start
        outcomes[outcome.split(":")[0]] += 1
        if outcome.startswith("crash") or seconds > 10:
            crashes.append((kind, outcome, seconds, text[:300]))
    assert not crashes, crashes[:3]
    assert outcomes["ok"] >= 25 and outcomes["diag"] >= 100, outcomes  # both kinds exercised


@pytest.mark.parametrize("text", REGRESSIONS)
def test_fuzz_regressions(text: str, tmp_path: Path) -> None:
    assert run_case(text, str(tmp_path)) == "ok"


def test_fuzz_sample_through_the_cli(tmp_path: Path) -> None:
    for _, text in list(cases(SEED + 1, 60))[::12]:
        assert not run_cli(text, str(tmp_path)).startswith("crash"), text[:300]
