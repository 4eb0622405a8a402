"""A bounded fuzz run in CI: grammar-generated and mutated specs through the library in
process (and a sample through the CLI) give diagnostics or models, never anything else.
The full run (100,000 cases, per-case limits in a worker) is `python -m tests.fuzz.run`."""

from __future__ import annotations

import collections
import time
from pathlib import Path

from tests.fuzz.generate import cases
from tests.fuzz.run import run_case, run_cli

SEED = 20261130


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


def test_fuzz_sample_through_the_cli(tmp_path: Path) -> None:
    for _, text in list(cases(SEED + 1, 60))[::12]:
        assert not run_cli(text, str(tmp_path)).startswith("crash"), text[:300]
