"""The one emitter of generated PyTorch code. Every piece of code — the model's forward, a
submodule class's forward, a loop body's method, a region emitted as a unit — is made the
same way: a `Writer` (the class being written: its local names, the path its modules are
reached by, its constructor lines) and `Emitter.statements`, which lowers each node once and
gives its statement; `render` turns statements into lines, freeing locals after their last
use."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from ...compiler.ir import Graph, Node, captures, owned
from ...compiler.ops import ParamSpec
from ..pysource import comment, docstring, identifier, is_plain, literal
from .lower import Lowered, lower
from .plan import DropPlan

# Spec names become Python names only through `pysource.identifier`; these are never given
# out: the forward's own locals, the runtime's globals and Python's builtins.
RUNTIME_GLOBALS = {"torch", "nn", "NamedTuple", "DropPath", "DropPlan", "MODEL"}
RESERVED = ({"self", "x", "keep", "masks", "plan", "np"} | RUNTIME_GLOBALS
            | set(dir(builtins)))
# Submodule names that attribute access would not reach (nn.Module's own attributes and the
# generated class's): those submodules are read through `_modules[...]`.
MODULE_ATTRS = set(dir(nn.Module)) | {"training", "DROP_JOINS", "FRACTAL_WIDTHS",
                                      "ssnc_drop_path", "forward_dropping", "forward_masked",
                                      "set_slope"}


def module_ref(path: str) -> str:
    """Source reading the submodule at the dotted ``path`` of ``self``."""
    ref = "self"
    for part in path.split("."):
        if is_plain(part) and not part.startswith("_") and part not in MODULE_ATTRS:
            ref = f"{ref}.{part}"
        else:
            ref = f"{ref}._modules[{literal(part)}]"
    return ref


def param_ref(path: str) -> str:
    """Source reading the `param` value registered at the dotted ``path`` of ``self``."""
    parent, _, leaf = path.rpartition(".")
    ref = module_ref(parent) if parent else "self"
    if is_plain(leaf) and not leaf.startswith("_") and leaf not in MODULE_ATTRS:
        return f"{ref}.{leaf}"
    return f"{ref}._parameters[{literal(leaf)}]"


def initial(spec: ParamSpec) -> str:
    """Source making a `param` value's initial tensor as its spec says (torch's generator,
    so standalone source trains as written; `to_torch` loads the compiler's values)."""
    shape = literal(spec.shape)
    if spec.init == "uniform":
        return f"torch.rand({shape}) * {literal(spec.scale)} + {literal(spec.fill)}"
    return f"torch.randn({shape}) * {literal(spec.scale)} + {literal(spec.fill)}"


def relative(path: str, prefix: str) -> str:
    """``path`` as seen from the module at ``prefix`` ("" is the model)."""
    return path[len(prefix) + 1:] if prefix else path


@dataclass(frozen=True)
class Stmt:
    """One statement: ``target = expr``, run only where ``guard`` holds (drop-path)."""

    target: str
    expr: str
    reads: tuple[str, ...]
    guard: str | None = None
    where: str = ""  # the spec position, shown as a trailing comment


@dataclass
class Writer:
    """One piece of generated code being written: how it names values (``names``, value ->
    expression), the path its modules hang under (``prefix``; "" for the model), the locals
    it has given out (``taken``), and its class's method names, constructor lines (``init``,
    then ``late``: the modules of loop bodies) and body methods, shared by every piece of
    code of that class."""

    prefix: str
    names: dict[str, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=lambda: set(RESERVED))
    method_names: set[str] = field(default_factory=lambda: set(RESERVED))
    init: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    methods: list[list[str]] = field(default_factory=list)


class Emitter:
    """Lowers nodes into statements for any `Writer`, each node once."""

    def __init__(self, graph: Graph, plan: DropPlan):
        self.graph = graph
        self.plan = plan
        self.every = graph.all_nodes()
        self.values = {n: v for n, v in self.every.items() if v.is_param and not owned(v)}
        """The `param(...)` values, by path: parameters the code reads as attributes."""

    def owner(self, node: Node) -> str:
        """The path of the module holding ``node``'s own parameters: where their names say
        (their first reader's path, which a single-column model may no longer hold)."""
        mine = [w for w in node.weights if owned(self.every[w])]
        if not mine:
            return node.name
        return mine[0][:-len(self.every[mine[0]].attrs["role"]) - 1]  # type: ignore[arg-type]

    def args(self, node: Node, names: dict[str, str]) -> list[str]:
        """The expressions ``node`` reads: its inputs, then the weights given to it (generated
        or `param` values; its own parameters live in its module)."""
        return [names[i] for i in node.inputs] + [names[w] for w in node.weights
                                                  if not owned(self.every[w])]

    @staticmethod
    def reads(args: Sequence[str]) -> tuple[str, ...]:
        """The locals among ``args`` (a `param` value is an attribute, never freed; a unit's
        output `u[0]` reads the local `u`)."""
        return tuple(dict.fromkeys(a.split("[")[0] for a in args if not a.startswith("self.")))

    def statements(self, w: Writer, nodes: Sequence[Node]) -> list[Stmt]:
        """``nodes`` as statements of ``w``, each lowered once; their modules go to ``w``'s
        constructor (a later instance of a `shared` block reads its first one's)."""
        stmts = []
        for node in nodes:
            low, args = self.lowered(w, node)
            if low.module is not None and not self.graph.shares(node):
                w.init.append(f"        _put(self, {relative(self.owner(node), w.prefix)!r}, "
                              f"{low.module})")
            stmts.append(Stmt(w.names[node.name], low.expr, self.reads(args),
                              where=node.span.position()))
        return stmts

    def lowered(self, w: Writer, node: Node) -> tuple[Lowered, list[str]]:
        """``node`` lowered in ``w``'s names, and the expressions it reads."""
        ref = (self.body_method(w, node) if node.body is not None
               else module_ref(relative(self.owner(node), w.prefix)))
        args = self.args(node, w.names)
        return lower(node, [self.every[i] for i in node.inputs], args, ref), args

    def body_method(self, w: Writer, node: Node) -> str:
        """A method of ``w``'s class computing ``node``'s body, and the callable the node's
        lowering calls: values the body reads from around it are passed along."""
        body = node.body
        assert body is not None
        method = identifier(f"body_{w.names[node.name]}", w.method_names)
        sub = Writer(w.prefix, method_names=w.method_names, init=w.late, late=w.late,
                     methods=w.methods)
        data_captures = [c for c in captures(body) if not self.every[c].is_param]
        for name in (*body.inputs, *data_captures):
            sub.names[name] = identifier(name, sub.taken)
        sub.names.update((n, self.value_ref(n, w.prefix)) for n in self.values)
        for inner in body.order():
            if not inner.is_source:
                sub.names[inner.name] = identifier(inner.name, sub.taken)
        stmts = self.statements(sub, [n for n in body.order() if not n.is_source])
        params = ", ".join(sub.names[i] for i in (*body.inputs, *data_captures))
        w.methods.append([
            f"    def {method}(self, {params}):  # type: ignore[no-untyped-def]",
            *docstring([f"The body of `{node.name}`: {node.op} calls it."], "        "),
            *render(stmts, tuple(sub.names[o] for o in body.outputs))])
        if not data_captures:
            return f"self.{method}"
        passed = ", ".join(w.names[c] for c in data_captures)
        return f"(lambda *xs: self.{method}(*xs, {passed}))"

    def value_ref(self, path: str, prefix: str) -> str:
        """A `param` value as the class at ``prefix`` reads it."""
        return param_ref(relative(path, prefix))

    def init_values(self, w: Writer, paths: Sequence[str]) -> list[str]:
        """Constructor lines registering the `param` values at ``paths`` (under ``w``)."""
        return [f"        _put_param(self, {literal(relative(n, w.prefix))}, "
                f"{initial(self.values[n].spec())})" for n in paths]


def render(stmts: Sequence[Stmt], outs: tuple[str, ...], result_type: str | None = None,
           indent: str = "        ") -> list[str]:
    """Statements as source lines: a guard opens a block, each local is set to None after its
    last read (so memory is freed as in a hand-written forward), the outputs returned."""
    last_use: dict[str, int] = {}
    for i, s in enumerate(stmts):
        for r in s.reads:
            last_use[r] = i
    outputs = {o.split("[")[0] for o in outs}
    lines: list[str] = []
    current: str | None = None
    for i, s in enumerate(stmts):
        if s.guard != current:
            current = s.guard
            if current is not None:
                lines.append(f"{indent}if {current}:")
        pad = indent + "    " if current is not None else indent
        line = f"{pad}{s.target} = {s.expr}"
        dead = sorted({r for r in s.reads if last_use[r] == i and r not in outputs
                       and r != s.target})
        if dead:
            line += "; " + " = ".join(dead) + " = None"
        if s.where:
            line += "  " + comment(s.where)
        lines.append(line)
    result = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ",)"
    if result_type is not None:  # the model's named outputs
        result = f"{result_type}({', '.join(outs)})"
    lines.append(f"{indent}return {result}")
    return lines
