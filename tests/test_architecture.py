"""The architecture as a test: which floor may import which (docs/architecture.md draws the
same picture). The import graph is read from the package's source, imports inside functions
included, so a lazy import cannot hide an arrow that points the wrong way."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import ssnc
from ssnc.base import diagnostics
from ssnc.compiler.ir import walk
from ssnc.compiler.ops import OPS
from tests.conftest import ROOT, SPECS

PACKAGES = ("base", "grammar", "compiler", "backends")
"""The package's folders; the modules at the root (api, cli, output, ...) are the top floor."""


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.glob("*.py")):
        yield f"ssnc.{path.stem}" if path.stem != "__init__" else "ssnc", path
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(("ssnc", *parts)), path


def _imports(module: str, path: Path) -> set[str]:
    """The ssnc modules ``module`` imports (a name imported from a package counts as that
    package's submodule when one exists)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ssnc"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "ssnc":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in GRAPH_NAMES else base)
    return found


GRAPH_NAMES = {name for name, _ in _modules()}
GRAPH = {name: _imports(name, path) for name, path in _modules()}


def _offenders(importer: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of modules under ``importer`` that are not under one of ``allowed`` (the
    package's root, `ssnc`, only re-exports the library and its version)."""
    return sorted(f"{m} -> {dep}" for m, deps in GRAPH.items()
                  if m == importer or m.startswith(importer + ".")
                  for dep in deps - {"ssnc"}
                  if not any(dep == a or dep.startswith(a + ".") for a in allowed))


def test_the_import_graph_is_read() -> None:
    assert "ssnc.base.diagnostics" in GRAPH["ssnc.grammar.parser"]
    assert "ssnc.compiler.ir" in GRAPH["ssnc.backends.onnx"]
    assert len(GRAPH) > 40


def test_base_imports_nothing_of_ssnc() -> None:
    assert _offenders("ssnc.base", ("ssnc.base",)) == []


def test_grammar_imports_nothing_from_the_compiler() -> None:
    assert _offenders("ssnc.grammar", ("ssnc.grammar", "ssnc.base")) == []


def test_the_cli_imports_no_backend() -> None:
    """The CLI reaches every backend through the library (`api.py`): adding a backend to it
    is a row in its target table (`targets.py`) and the flags, nothing else."""
    allowed = ("ssnc.api", "ssnc.base", "ssnc.compiler", "ssnc.extras", "ssnc.output",
               "ssnc.summary", "ssnc.targets")
    assert _offenders("ssnc.cli", allowed) == []
    assert _offenders("ssnc.targets", allowed) == []


BACKENDS = {"onnx": ("ssnc.backends.onnx",),
            "dot": ("ssnc.backends.dot", "ssnc.backends.clusters"),
            "torch": ("ssnc.backends.torch", "ssnc.backends.torch_runtime",
                      "ssnc.backends.pysource")}
"""Each backend and the modules it is made of."""


def test_no_backend_reaches_into_another() -> None:
    for modules in BACKENDS.values():
        others = tuple(m for other in BACKENDS.values() if other is not modules for m in other)
        for module in modules:
            inside = [f"{m} -> {dep}" for m, deps in GRAPH.items()
                      if m == module or m.startswith(module + ".")
                      for dep in deps if dep.startswith(others)]
            assert inside == [], inside


def test_the_old_diagnostics_module_re_exports_everything() -> None:
    public = {n for n, v in vars(diagnostics).items() if not n.startswith("_")
              and not isinstance(v, type(ast))  # modules it imports
              and getattr(v, "__module__", diagnostics.__name__) == diagnostics.__name__}
    assert public <= set(diagnostics.__all__), public - set(diagnostics.__all__)
    old = importlib.import_module("ssnc.compiler.diagnostics")
    for name in diagnostics.__all__:
        assert getattr(old, name) is getattr(diagnostics, name)
    assert ssnc.SsnError is diagnostics.SsnError


def test_no_op_is_special_cased_by_name_outside_its_declaration() -> None:
    """What an op is (a join, a parameter, something that combines blocks) is declared on
    the op (`compiler/ops.py`); nothing else asks for an op by its name. Lowering tables,
    keyed by op, are each backend's declaration of its lowerings."""
    test = re.compile(r"""\.(?:op|op\.name|name) *(?:==|!=) *["'](\w+)["']|"""
                      r"""\.op +(?:not +)?in +[({\[]\s*["'](\w+)["']""")
    found = []
    for module, path in _modules():
        if module == "ssnc.compiler.ops":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in test.finditer(line):
                if (m.group(1) or m.group(2)) in OPS:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], found


def test_no_attribute_is_left_for_a_backend_to_work_out() -> None:
    """After shape inference, an op's `concrete` rule finds nothing more to resolve on any
    node of a shipped spec: backends read concrete padding, strides and axes."""
    checked = 0
    for spec in sorted(SPECS.glob("*.ssn")):
        program = ssnc.load(spec)
        for name in program.models:
            graph = program.model(name).ir
            for holder, node in walk(graph):
                rule = OPS[node.op].concrete
                if rule is None:
                    continue
                shapes = [holder.all_nodes()[i].shape for i in node.inputs]
                assert rule(shapes, node.attrs) == {}, (spec.stem, node.name)  # type: ignore[arg-type]
                checked += 1
    assert checked > 100


EVALUATOR = ("ssnc.compiler.values", "ssnc.compiler.evaluate", "ssnc.compiler.instantiate",
             "ssnc.compiler.elaborate", "ssnc.compiler.builtins")


def test_backends_need_nothing_from_the_evaluator() -> None:
    """A backend reads the IR (graph, ops, parameters rendered by `literals.py`), never the
    evaluator's values: an IR built by other means lowers the same."""
    found = [f"{m} -> {dep}" for m, deps in GRAPH.items() if m.startswith("ssnc.backends")
             for dep in deps if dep.startswith(EVALUATOR)]
    assert found == [], found


def test_the_ir_record_derives_changed_graphs_one_way() -> None:
    """`Graph.derive` changes what it is given and keeps every other field; the cached views
    (order, regions, networkx) start afresh. Statistics and the pre-0.2 key mapping are
    functions over the record (stats.py, legacy.py), not methods of it."""
    from dataclasses import fields

    from ssnc.compiler.ir import Graph

    g = ssnc.load(SPECS / "rir_cifar.ssn").model().ir
    head = g.outputs[0]
    derived = g.derive(outputs=[head], output_names=["scores"])
    for f in fields(Graph):
        if f.init and f.name not in ("outputs", "output_names"):
            assert getattr(derived, f.name) == getattr(g, f.name), f.name
    assert derived.outputs == (head,) and derived.output_labels() == ("scores",)
    fewer = g.derive(nodes=[n for n in g.nodes_by_name.values() if n.name != head],
                     outputs=[g[head].inputs[0]])
    assert head in {n.name for n in g.order()} and head not in {n.name for n in fewer.order()}
    assert head not in fewer.nx
    for name in ("total_params", "total_macs", "macs", "param_count", "op_count",
                 "renamed_keys"):
        assert not hasattr(Graph, name), name


ELABORATION = ("ssnc.compiler.elaborate", "ssnc.compiler.evaluate", "ssnc.compiler.instantiate",
               "ssnc.compiler.builtins", "ssnc.compiler.values", "ssnc.compiler.shapes",
               "ssnc.compiler.joins")


def test_elaboration_imports_no_pass() -> None:
    """Typing a node (shapes.py) and the join-merging rule (joins.py) live beside the op
    table, so building a model needs no pass; the passes import them."""
    found = [f"{m} -> {dep}" for m in ELABORATION for dep in GRAPH[m]
             if dep.startswith("ssnc.compiler.passes")]
    assert found == [], found


def test_the_evaluator_and_the_instantiator_are_composed_not_inherited() -> None:
    """Two objects with a narrow interface: the instantiator imports nothing of the
    evaluator and is given one callable, the value of a `=>` body."""
    import inspect

    from ssnc.compiler.elaborate import Elaborator
    from ssnc.compiler.evaluate import Evaluator
    from ssnc.compiler.instantiate import Instantiator

    assert Evaluator.__mro__ == (Evaluator, object)
    assert Elaborator.__mro__ == (Elaborator, object)
    assert Instantiator.__mro__ == (Instantiator, object)
    assert "ssnc.compiler.evaluate" not in GRAPH["ssnc.compiler.instantiate"]
    assert list(inspect.signature(Instantiator).parameters) == ["evaluate", "limits"]


MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 60
OP_TABLE = "ssnc.compiler.ops"
"""The op table: one declaration per op, long by nature, exempt from the module limit."""


def test_no_module_or_function_outgrows_a_reader() -> None:
    """Modules of the package (not tests, bench, examples or docs) stay under 700 lines,
    the op table excepted; a function body, from its first statement (its docstring) to its
    end, under 60."""
    long_modules, long_functions = [], []
    for module, path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and module != OP_TABLE:
            long_modules.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body[-1].end_lineno or 0
                length = body - node.body[0].lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {length} lines")
    assert long_modules == [] and long_functions == [], long_modules + long_functions
