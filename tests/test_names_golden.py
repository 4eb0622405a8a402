"""Goldens of what users hold on to across compiler changes: `ssnc info --json`, the sorted
state_dict keys and the ONNX initializer names of every shipped spec. A refactor of the IR or
the backends must leave them byte-identical (regenerate only for a reviewed, documented
change: `pytest --update-goldens`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ssnc
from tests.conftest import GOLDEN, SPECS

SPEC_FILES = sorted(SPECS.glob("*.ssn"))


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_info_keys_and_initializers(spec: Path, golden) -> None:  # type: ignore[no-untyped-def]
    program = ssnc.load(spec)
    parts = []
    for name in program.models:
        m = program.model(name)
        keys = sorted(m.to_torch().state_dict())
        initializers = sorted(t.name for t in m.to_onnx().graph.initializer)
        info = m.info(99)
        rows = [json.dumps(row, sort_keys=True) for row in info.pop("scopes")]
        parts += [f"# model {name}: info --json", json.dumps(info, sort_keys=True), *rows,
                  "# sorted state_dict keys", *keys,
                  "# sorted ONNX initializer names", *initializers]
    golden(GOLDEN / "names" / f"{spec.stem}.txt", "\n".join(parts) + "\n")
