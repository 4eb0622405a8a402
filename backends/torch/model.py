"""The model's own class, and the regions emitted as units: their values named, their nodes
lowered once (rule instances that are classes lowered in their class), their constructor
lines, and their forward in each drop-path mode: eval, one draw for the batch (dropped
paths not computed), per-sample masks.

A *unit* is a rule instance chosen by the caller (`units`, a predicate over regions) that
becomes a submodule whose own ``forward`` computes it, called as one step of the model's:
what FSDP2 and activation checkpointing need, since their hooks run when a module's forward
is called. Drop-path's decisions are passed down (``keep`` and ``need`` for a batch's draw,
``masks`` per sample), so a model with units computes exactly what it computes without."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...compiler.ir import Graph, Node, Region, walk
from ..pysource import docstring, identifier, literal
from .classes import Classes, ClassUse
from .emit import Emitter, Stmt, Writer, module_ref, param_ref, relative, render
from .lower import DROP_JOIN_FN, Lowered
from .plan import DropPlan

Units = Callable[[Region], bool]
"""Which rule instances become units (the outermost chosen one wins)."""


@dataclass(frozen=True, eq=False)
class UnitUse:
    """Where a unit sits: its region and module path, and whether it holds droppable joins
    (then its forward takes this batch's drop-path decisions)."""

    region: Region
    prefix: str
    drops: bool


@dataclass(frozen=True)
class _Item:
    """One statement before its mode is chosen: a node and its lowering, the call of a
    class instance ending at that node, or the call of a unit."""

    node: Node
    lowered: Lowered | None
    args: list[str]
    use: ClassUse | None = None
    unit: UnitUse | None = None


class _Body:
    """The forward of one class over its nodes (the model's, or a unit's), in each mode.
    ``calls`` are the units it calls (by the node they end at; their members are skipped);
    ``need`` spells drop-path's need flag of join j there (a local, or passed down)."""

    def __init__(self, code: ModelCode, w: Writer, nodes: Sequence[Node],
                 calls: dict[str, UnitUse], need: Callable[[int], str]):
        self.code, self.w, self.need = code, w, need
        self.items: list[_Item] = []
        inside = {m.name for u in calls.values() for m in u.region.members}
        em, classes = code.emitter, code.classes
        for node in nodes:
            unit = calls.get(node.name)
            use = classes.uses.get(node.name)
            if unit is not None:
                self.items.append(_Item(node, None, [w.names[i] for i in unit.region.inputs],
                                        unit=unit))
            elif node.name in inside:
                continue  # computed by its unit
            elif use is not None:
                self.items.append(_Item(node, None, [w.names[use.source]], use))
            elif node.name not in classes.members:
                self.items.append(_Item(node, *em.lowered(w, node)))

    def statements(self, mode: str) -> list[Stmt]:
        """The statements of one forward variant: "eval", "dropping" or "masked"."""
        plan, names = self.code.plan, self.w.names
        stmts: list[Stmt] = []
        for item in self.items:
            node, args = item.node, item.args
            guard, where, target = None, node.span.position(), names[node.name]
            if item.unit is not None:
                target, expr, where = self._unit_call(item.unit, args, mode)
            elif item.use is not None:
                ref = module_ref(relative(item.use.prefix, self.w.prefix))
                expr, where = f"{ref}({args[0]})", item.use.where
            else:
                assert item.lowered is not None
                expr = item.lowered.expr
            if node.name in plan.index and mode != "eval":
                if item.unit is None:
                    expr, guard = self._drop_join(node, args, mode)
                elif mode == "dropping" and plan.column_join(node):  # a unit ending at a join:
                    guard = self.need(plan.index[node.name])  # called, decisions passed down
            if mode == "dropping" and guard is None and node.name in plan.segment:
                j, port = plan.segment[node.name]  # inside a column: computed only if kept
                guard = f"{self.need(j)} and keep[{j}][{port}]"
            stmts.append(Stmt(target, expr, self.code.emitter.reads(args), guard, where))
        return stmts

    def _unit_call(self, unit: UnitUse, args: list[str], mode: str) -> tuple[str, str, str]:
        """The call of a unit: its inputs, and this batch's drop-path decisions."""
        passed = {"eval": "", "dropping": ", keep=keep, need=need", "masked": ", masks=masks"}
        extra = passed[mode] if unit.drops else ""
        ref = module_ref(relative(unit.prefix, self.w.prefix))
        return (self.code.unit_vars[unit.prefix], f"{ref}({', '.join(args)}{extra})",
                unit.region.scope.span.position())

    def _drop_join(self, node: Node, args: list[str], mode: str) -> tuple[str, str | None]:
        """A droppable join while training: masked per sample, or with this batch's keep
        flags (a column join computed only when its output is needed)."""
        plan = self.code.plan
        j = plan.index[node.name]
        fn = DROP_JOIN_FN[node.op]
        if mode == "masked":
            return f"{fn}_masked(({', '.join(args)},), masks[{j}])", None
        expr = f"{fn}((" + ", ".join(f"{a} if keep[{j}][{i}] else None"
                                     for i, a in enumerate(args)) + ",))"
        return expr, self.need(j) if plan.column_join(node) else None


class ModelCode:
    """Everything the model's class (and its units' classes) is made of, worked out once."""

    def __init__(self, graph: Graph, reserved: str, units: Units | None = None):
        self.graph = graph
        order = [n for n in graph.order() if not n.is_source]
        self.plan = DropPlan.of(graph, order)
        self.emitter = em = Emitter(graph, self.plan)
        self.classes = Classes.find(graph, em, order)
        self.units = choose_units(graph, em, self.classes, order, self.plan, units)
        in_units = {m.name for u in self.units for m in u.region.members}
        self.root = root = Writer("")
        root.method_names = root.taken  # the model's locals and methods share one namespace
        root.taken |= {f"need{j}" for j in range(len(self.plan.joins))}
        root.names = input_args(graph, root.taken)
        root.names.update((n, param_ref(n)) for n in em.values if n not in in_units)
        for node in order:
            root.names[node.name] = identifier(node.name, root.taken)
        self.classes.name_outputs(root, in_units)
        self.unit_vars = {u.prefix: self._name_unit_outputs(u) for u in self.units}
        taken = self.classes.name(reserved)
        self.result_type: str | None = None
        """The named tuple of the model's named outputs (the source template names it)."""
        calls = {_last(u.region, order).name: u for u in self.units}
        self.body = _Body(self, root, order, calls, lambda j: f"need{j}")
        self.unit_classes = [UnitClass(self, u, order, taken) for u in self.units]

    def _name_unit_outputs(self, unit: UnitUse) -> str:
        """The local a unit's call sets; its outputs read it (`u`, or `u[0]`, `u[1]`)."""
        var = identifier(unit.prefix, self.root.taken)
        outs = unit.region.outputs
        for i, out in enumerate(outs):
            self.root.names[out] = var if len(outs) == 1 else f"{var}[{i}]"
        return var

    def init_lines(self) -> list[str]:
        """The constructor's lines: `param` values, then each module where its parameters'
        names say (a class instance or unit at its prefix), then the modules of loop bodies."""
        in_units = {m.name for u in self.units for m in u.region.members}
        values = [n for n in self.emitter.values if n not in in_units]
        return self.emitter.init_values(self.root, values) + self.body_inits(self.body)

    def body_inits(self, body: _Body) -> list[str]:
        """The constructor lines of ``body``'s modules, in order, then its loops' modules."""
        lines = []
        for item in body.items:
            if item.unit is not None:
                cls = next(c.name for c in self.unit_classes if c.unit is item.unit)
                lines.append(f"        _put(self, {item.unit.prefix!r}, {cls}())")
            elif item.use is not None:
                use = item.use
                lines.append(f"        _put(self, {relative(use.prefix, body.w.prefix)!r}, "
                             f"{use.definition.name}({', '.join(use.args)}))")
            elif item.lowered is not None and item.lowered.module is not None \
                    and not self.graph.shares(item.node):
                owner = relative(self.emitter.owner(item.node), body.w.prefix)
                lines.append(f"        _put(self, {owner!r}, {item.lowered.module})")
        return lines + body.w.late

    def forward(self, mode: str) -> list[str]:
        """The model's forward in one mode, with its need flags first when dropping (and,
        for units, all of them as the tuple `need`)."""
        stmts: list[Stmt] = []
        if mode == "dropping":
            flags = self.plan.need_flags(self.graph)
            stmts += [Stmt(f"need{j}", expr, ()) for j, expr in flags]
            if any(u.drops for u in self.units):
                have = {j for j, _ in flags}
                every = [f"need{j}" if j in have else "True" for j in range(len(self.plan.joins))]
                stmts.append(Stmt("need", "(" + ", ".join(every) + ",)", ()))
        stmts += self.body.statements(mode)
        return render(stmts, tuple(self.root.names[o] for o in self.graph.outputs),
                      self.result_type)

    def drop_table(self) -> str:
        """The `DROP_JOINS` class attribute."""
        return self.plan.table()

    def widths(self) -> str:
        """The `FRACTAL_WIDTHS` class attribute."""
        return literal(tuple(self.plan.widths))


class UnitClass:
    """The class of one unit: its own names (its inputs as parameters, its members relative
    to its path), its constructor and its forward, which takes this batch's drop-path
    decisions where it holds droppable joins."""

    def __init__(self, code: ModelCode, unit: UnitUse, order: Sequence[Node], taken: set[str]):
        from .source import class_name_for

        self.code, self.unit = code, unit
        self.name = class_name_for(unit.region.scope.rule, taken)
        em, prefix = code.emitter, unit.prefix
        members = [n for n in order if n.name in {m.name for m in unit.region.members}]
        self.w = w = Writer(prefix)
        w.method_names = w.taken
        w.taken.add("need")
        inputs = unit.region.inputs
        w.names = ({inputs[0]: "x"} if len(inputs) == 1
                   else {i: identifier(i, w.taken) for i in inputs})
        self.values = [n for n in em.values if n.startswith(prefix + ".")]
        w.names.update((n, param_ref(relative(n, prefix))) for n in em.values
                       if n.startswith(prefix + "."))
        for node in members:
            w.names[node.name] = identifier(relative(node.name, prefix), w.taken)
        code.classes.name_outputs(w, set(), within=prefix)
        self.body = _Body(code, w, members, {}, lambda j: f"need[{j}]")

    def source(self) -> list[str]:
        """The class's source lines."""
        w, region = self.w, self.unit.region
        params = ", ".join(f"{w.names[i]}: torch.Tensor" for i in region.inputs)
        outs = tuple(w.names[o] for o in region.outputs)
        lines = [f"class {self.name}(nn.Module):",
                 *docstring([region.scope.signature], "    "), "",
                 "    ssnc_unit = True  # called as one step of the model's forward", "",
                 "    def __init__(self) -> None:", "        super().__init__()",
                 *self.code.emitter.init_values(w, self.values),
                 *self.code.body_inits(self.body), ""]
        if not self.unit.drops:
            lines += [f"    def forward(self, {params}):  # type: ignore[no-untyped-def]",
                      *render(self.body.statements("eval"), outs)]
        else:
            lines += [f"    def forward(self, {params}, keep=None, need=None, masks=None):"
                      "  # type: ignore[no-untyped-def]",
                      "        if keep is not None:",
                      *render(self._dropping(outs), outs, indent=" " * 12),
                      "        if masks is not None:",
                      *render(self.body.statements("masked"), outs, indent=" " * 12),
                      *render(self.body.statements("eval"), outs)]
        for method in w.methods:
            lines += ["", *method]
        return [*lines, "", ""]

    def _dropping(self, outs: tuple[str, ...]) -> list[Stmt]:
        """The dropping forward's statements; an output computed only under a guard starts
        as None (a column nobody needs this batch)."""
        stmts = self.body.statements("dropping")
        guarded = {s.target for s in stmts if s.guard is not None}
        return [Stmt(o, "None", ()) for o in outs if o in guarded] + stmts


def choose_units(graph: Graph, em: Emitter, classes: Classes, order: Sequence[Node],
                 plan: DropPlan, units: Units | None) -> list[UnitUse]:
    """The regions ``units`` chooses that can be units, outermost first: a unit owns its
    name prefix and every weight it reads, shares none with the rest of the model, and is
    called where its last member was computed (every reader of its outputs comes later)."""
    if units is None:
        return []
    chosen: list[UnitUse] = []
    position = {n.name: i for i, n in enumerate(order)}
    todo = list(graph.region(0).children)
    while todo:
        region = todo.pop(0)
        if units(region) and _can_be_unit(graph, em, classes, region, order, position):
            drops = any(n.name in plan.index for n in region.members)
            chosen.append(UnitUse(region, region.prefix, drops))
        else:
            todo[:0] = region.children
    return chosen


def _can_be_unit(graph: Graph, em: Emitter, classes: Classes, region: Region,
                 order: Sequence[Node], position: dict[str, int]) -> bool:
    prefix = region.prefix
    inside = {n.name for n in region.members}
    inside |= {inner.name for n in region.members if n.body is not None
               for _, inner in walk(n.body)}  # a loop's body reads inside its node
    readers: dict[str, set[str]] = {}
    for _, node in walk(graph):
        for w in node.weights:
            readers.setdefault(w, set()).add(node.name)
    if not prefix or not region.outputs or any(
            not n.name.startswith(prefix + ".") for n in region.members):
        return False
    if any(n.name.startswith(prefix + ".") and n.name not in inside for n in order):
        return False
    if any(not w.startswith(prefix + ".") or not readers[w] <= inside for w in region.weights):
        return False  # a weight shared with the rest of the model stays in one unit
    if any(use.prefix.startswith(prefix + ".") != (out in inside)
           for out, use in classes.uses.items()):
        return False  # a class instance is wholly inside or wholly outside
    last = position[_last(region, order).name]
    return all(position[c] > last for o in region.outputs
               for c, _ in graph.consumers(o) if c not in inside)


def _last(region: Region, order: Sequence[Node]) -> Node:
    """The member computed last: where the unit is called."""
    inside = {n.name for n in region.members}
    return [n for n in order if n.name in inside][-1]


def input_args(graph: Graph, taken: set[str]) -> dict[str, str]:
    """The generated forward's parameter for each input, in order: `x` for a model's only
    input, else a checked identifier from each input's name."""
    if len(graph.inputs) == 1:
        return {graph.inputs[0]: "x"}
    return {i: identifier(i, taken) for i in graph.inputs}
