"""Rule instances as submodule classes. An innermost rule instance with one input and one
output, no drop-path join, no shared weights and a name prefix of its own becomes a class;
instances whose code is equal up to its numbers are one class whose constructor takes the
numbers that differ (`Unit(3)`, `Unit(4)`), while a structural difference (a dropout in one,
none in the other) keeps them apart. State-dict keys are the same either way."""

from __future__ import annotations

import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...compiler.ir import Graph, Node, Region, Scope, named_after
from ..pysource import docstring, identifier
from .emit import RESERVED, Emitter, Writer, relative, render


@dataclass
class ClassDef:
    """One generated class: the rule it comes from, its code after the constructor's
    signature, its parameters (name, type: the numbers that differ between its instances)
    and the instances it serves."""

    rule: str
    code: str
    params: list[tuple[str, str]]
    signatures: list[str]
    first: int
    name: str = ""

    def source(self) -> list[str]:
        """The class's source lines, with a docstring naming the rule instances it serves."""
        shown = self.signatures[:3]
        if len(self.signatures) > 3:
            shown[-1] += f" and {len(self.signatures) - 3} more"
        args = "".join(f", {n}: {t}" for n, t in self.params)
        return [f"class {self.name}(nn.Module):", *docstring(shown, "    "), "",
                f"    def __init__(self{args}) -> None:",
                self.code, "", ""]


@dataclass(frozen=True)
class ClassUse:
    """Where an instance of a class sits: its module path, the value it reads, the numbers
    its constructor takes, and its spec position."""

    prefix: str
    definition: ClassDef
    source: str
    args: tuple[str, ...]
    where: str


@dataclass
class _Instance:
    scope: Scope
    prefix: str
    source: str
    output: Node
    numbers: list[str]
    forward_from: int  # numbers at and after this index are in the forward
    template: str


@dataclass
class Classes:
    """The classes of one model, by the output node of each instance."""

    uses: dict[str, ClassUse] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    definitions: list[ClassDef] = field(default_factory=list)
    found: list[tuple[str, str]] = field(default_factory=list)
    """(output, prefix) of each instance, in the order found (innermost first)."""

    @staticmethod
    def find(graph: Graph, em: Emitter, order: Sequence[Node]) -> Classes:
        """The classes of ``graph`` (`name_outputs` names each instance's output)."""
        found = Classes()
        instances: list[_Instance] = []
        position = {n.name: i for i, n in enumerate(order)}
        names = [n.name for n in order]
        for region in sorted(graph.regions(), key=lambda r: r.scope.id, reverse=True):
            nodes = sorted(region.members, key=lambda n: position.get(n.name, -1))
            prefix = nodes[0].name.rsplit(".", 1)[0] if nodes and "." in nodes[0].name else ""
            if region.scope.id == 0 or not region.members or any(
                    n.name in found.members for n in nodes) or not _fits(
                    graph, em, region, nodes, prefix, names):
                continue  # innermost first: an inner instance claims its nodes first
            instances.append(_instance(em, region, nodes, prefix))
            found.members |= {n.name for n in nodes}
        found.found = [(inst.output.name, inst.prefix) for inst in instances]
        found._define(instances)
        return found

    def name_outputs(self, w: Writer, skip: set[str], within: str = "") -> None:
        """Name each instance's output in ``w`` (the code that calls it: the model's, or
        the unit at ``within``), in the order the instances were found."""
        for output, prefix in self.found:
            if output not in skip and (not within or prefix.startswith(within + ".")):
                w.names[output] = identifier(relative(prefix, within), w.taken)

    def _define(self, instances: list[_Instance]) -> None:
        """One class per template; the numbers that differ between its instances become
        its constructor's parameters (positions whose numbers agree in every instance, a
        conv's outputs and its batch norm's channels, share one)."""
        groups: dict[str, list[_Instance]] = {}
        for inst in sorted(instances, key=lambda i: i.output.index):
            groups.setdefault(inst.template, []).append(inst)
        for template, group in groups.items():
            first = group[0]
            columns = [tuple(inst.numbers[k] for inst in group)
                       for k in range(len(first.numbers))]
            varying = list(dict.fromkeys(c for c in columns if len(set(c)) > 1))
            params = [(f"n{i + 1}", _kind(c[0])) for i, c in enumerate(varying)]
            fills, stores = [], []
            for k, column in enumerate(columns):
                if column not in varying:
                    fills.append(column[0])
                    continue
                name = params[varying.index(column)][0]
                if k < first.forward_from:
                    fills.append(name)
                else:
                    fills.append(f"self._{name}")
                    stores.append(f"        self._{name} = {name}")
            definition = ClassDef(first.scope.rule, _fill(template, fills,
                                                          list(dict.fromkeys(stores))),
                                  params, [], first.output.index)
            for i, inst in enumerate(group):
                if inst.scope.signature not in definition.signatures:
                    definition.signatures.append(inst.scope.signature)
                self.uses[inst.output.name] = ClassUse(
                    inst.prefix, definition, inst.source, tuple(c[i] for c in varying),
                    inst.scope.span.position())
            self.definitions.append(definition)

    def name(self, reserved: str) -> set[str]:
        """`Unit`, `Unit2`, ... in order of first use; never a runtime or the model's name.
        The names taken, which units' classes then avoid."""
        from .source import class_name_for

        taken = RESERVED | {reserved}
        for d in self.ordered():
            d.name = class_name_for(d.rule, taken)
        return taken

    def ordered(self) -> list[ClassDef]:
        """The classes in order of first use."""
        return sorted(self.definitions, key=lambda d: d.first)


def _fits(graph: Graph, em: Emitter, region: Region, nodes: list[Node], prefix: str,
          names: list[str]) -> bool:
    """Whether ``region`` reads naturally as a class: one input, one output, its own name
    prefix, no drop-path join, shared weights or loop."""
    own = named_after(prefix.rsplit(".", 1)[-1], region.scope.rule)
    inside = {n.name for n in nodes}
    return not (len(nodes) < 2 or not prefix or not own
                or any(not n.name.startswith(prefix + ".") for n in nodes)
                or any(n.startswith(prefix + ".") and n not in inside for n in names)
                or any(n.name in em.plan.index or graph.shares(n) or n.body is not None
                       or em.owner(n) != n.name for n in nodes)
                or len(region.inputs) != 1 or len(region.outputs) != 1)


def _instance(em: Emitter, region: Region, nodes: list[Node], prefix: str) -> _Instance:
    """The code of one instance, with its numbers taken out."""
    w = Writer(prefix, {region.inputs[0]: "x"})
    for n in nodes:
        w.names[n.name] = identifier(n.name[len(prefix) + 1:], w.taken)
    stmts = em.statements(w, nodes)
    head = ["        super().__init__()", *w.init, ""]
    forward = ["    def forward(self, x: torch.Tensor) -> torch.Tensor:",
               *render(stmts, (w.names[region.outputs[0]],))]
    numbers_head, head_template = _numbers("\n".join(head))
    numbers_forward, forward_template = _numbers("\n".join(forward))
    return _Instance(region.scope, prefix, region.inputs[0], em.graph[region.outputs[0]],
                     numbers_head + numbers_forward, len(numbers_head),
                     head_template + "\n\x00\n" + forward_template)


def _numbers(code: str) -> tuple[list[str], str]:
    """The number literals of ``code`` (not in comments or strings), and the code with each
    replaced by a placeholder that keeps its kind (an int and a float never share one)."""
    found: list[tuple[int, int, int, str]] = []
    lines = code.split("\n")
    tokens = tokenize.generate_tokens(io.StringIO("if 1:\n" + code + "\n").readline)
    for tok in tokens:
        if tok.type == tokenize.NUMBER and tok.start[0] > 1:
            found.append((tok.start[0] - 2, tok.start[1], tok.end[1], tok.string))
    for row, start, end, text in reversed(found):
        line = lines[row]
        lines[row] = line[:start] + "\x01" + _kind(text) + "\x02" + line[end:]
    return [text for *_, text in found], "\n".join(lines)


def _kind(number: str) -> str:
    return "int" if number.isdigit() else "float"


def _fill(template: str, fills: list[str], stores: list[str]) -> str:
    """The class body from ``template``: each placeholder in turn replaced by its literal or
    parameter, and the forward's parameters stored after `super().__init__()`."""
    out = template
    for fill in fills:
        start = out.index("\x01")
        end = out.index("\x02", start)
        out = out[:start] + fill + out[end + 1:]
    head, forward = out.split("\n\x00\n")
    lines = head.split("\n")
    return "\n".join([lines[0], *stores, *lines[1:], forward])
