"""The ONNX every shipped spec compiles to, kept as canonical hashes: each form (flat,
functions, fp16, `--fold-weights`, and `--steps 7 --unroll` for models with a time axis) is
serialized with the `ssnc.source` positions and the version fields taken out and hashed; the
positions are hashed apart, since they move whenever a standard-library file is edited.

A refactoring must leave the canonical hashes alone. A change that alters a spec's graph on
purpose regenerates them (`pytest tests/test_canonical.py --update-goldens`) and says why in
its commit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import onnx

import ssnc
from ssnc.backends.onnx.build import all_graphs
from tests.conftest import GOLDEN, SPECS

FORMS: dict[str, dict[str, Any]] = {
    "flat": {},
    "functions": {"flat": False},
    "fp16": {"precision": "fp16"},
    "fold-weights": {"fold_weights": True},
}
TIMED_FORMS: dict[str, dict[str, Any]] = {"unroll": {"steps": 7, "unroll": True}}
"""Forms that apply only to a model with a time axis."""

VERSION_KEYS = {"ssnc.version"}
"""Model metadata that names the compiler's version (it changes with every release)."""


def _nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    for graph in all_graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def canonical(model: onnx.ModelProto) -> tuple[str, str]:
    """The hash of ``model`` without its positions and version fields, and the hash of the
    positions (every node's `ssnc.source`, in order)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    positions = []
    for node in _nodes(copy):
        kept = [p for p in node.metadata_props if p.key != "ssnc.source"]
        positions += [f"{node.name}={p.value}" for p in node.metadata_props
                      if p.key == "ssnc.source"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    kept_props = [p for p in copy.metadata_props if p.key not in VERSION_KEYS]
    del copy.metadata_props[:]
    copy.metadata_props.extend(kept_props)
    copy.producer_version = ""
    return (hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest(),
            hashlib.sha256("\n".join(positions).encode()).hexdigest())


def _lines() -> Iterator[str]:
    for spec in sorted(SPECS.glob("*.ssn")):
        program = ssnc.load(spec)
        for name in program.models:
            model = program.model(name)
            timed = "T" in (model.ir[model.ir.inputs[0]].shape or ())
            for form, options in {**FORMS, **(TIMED_FORMS if timed else {})}.items():
                graph, positions = canonical(model.to_onnx(**options))
                yield f"{spec.stem} {name} {form} {graph} positions {positions}"


def test_every_shipped_spec_compiles_to_the_recorded_onnx(golden: Any) -> None:
    golden(GOLDEN / "onnx" / "canonical.txt", "\n".join(_lines()) + "\n")


def test_the_canonical_form_ignores_only_positions_and_versions() -> None:
    model = ssnc.load(SPECS / "nin_cifar10.ssn").model().to_onnx()
    graph, positions = canonical(model)
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    for node in _nodes(moved):
        for prop in node.metadata_props:
            if prop.key == "ssnc.source":
                prop.value = prop.value.replace(":", ":1", 1)  # another line
    moved.producer_version = "9.9.9"
    assert canonical(moved) == (graph, canonical(moved)[1]) and canonical(moved)[1] != positions
    moved.graph.node[0].name += "_"
    assert canonical(moved)[0] != graph
