"""Instantiation: make the IR nodes of a block inside the scope tree, one fresh instance at a
time, with `shared` instances reading their first instance's parameters.

The lower floor of elaboration (compiler/evaluate.py evaluates the spec into blocks; this
makes their nodes). A construct that owns a body of its own, such as a loop over time, is
instantiated here, beside the scope and sharing machinery it reuses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..base.diagnostics import (
    E_ARGUMENT,
    E_EXPANSION,
    E_OPTION,
    E_SHAPE,
    E_TYPE,
    MAX_INT,
    Note,
    Span,
    SsnError,
    error,
    note_call_site,
)
from ..base.options import option_span, spell
from ..grammar import ast
from .ir import Binding, Graph, Node, Scope, make_node
from .joins import merges
from .ops import OPS, OpDecl, Shape, ShapeMismatch, TensorValue
from .shapes import type_node
from .values import (
    Block,
    Env,
    GroupBlock,
    LambdaBlock,
    NamedOutputs,
    ParBlock,
    PrimBlock,
    ScanBlock,
    ScopeBlock,
    SeqBlock,
    SharedBlock,
    Value,
    Wire,
    kind_of,
)


@dataclass(frozen=True)
class Limits:
    """Expansion and evaluation limits, sized so every published configuration fits with room
    to spare (FractalNet C=4 is about 400 nodes; C=8 about 6,400) while any spec ends within
    a second: ``max_steps`` counts evaluation steps and list items made, ``max_items`` bounds
    one list's length."""

    max_nodes: int = 50_000
    max_depth: int = 100
    max_calls: int = 20_000
    max_steps: int = 300_000
    max_items: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_nodes", "max_depth", "max_calls", "max_steps", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
                raise error(E_OPTION, f"{spell(name)} must be a positive integer, not "
                            f"{value!r}", option_span(name))


Progress = Callable[[str, int | None, int | None], None]
"""``progress(phase, done, total)``: long work reports how far it is (total None: unknown)."""

PROGRESS_EVERY = 500


class _Effects:
    """Counts side effects (nodes made, `shared` values made) so memoisation stays sound."""

    def __init__(self) -> None:
        self.count = 0


@dataclass
class Frame:
    """The nodes of one graph under construction: the model's, or a loop cell's (its body).
    A cell's ``inputs`` give the shapes of its input nodes (from the loop's inputs, by the
    op's body rule), worked out only when a rule inside the cell asks for a shape."""

    nodes: list[Node] = field(default_factory=list)
    inputs: Callable[[], Sequence[Shape]] | None = None
    typed: int = 0
    """How many of ``nodes`` are typed."""
    typed_inputs: int = 0
    """How many of its input nodes are typed."""


@dataclass
class NodeBuilder:
    """Accumulates node records and scopes while blocks are instantiated, in a stack of
    frames: the model's graph, and the body of each loop cell being built inside it."""

    limits: Limits
    frames: list[Frame] = field(default_factory=lambda: [Frame()])
    scopes: dict[int, Scope] = field(default_factory=dict)
    current: int = 0
    # shared block id -> the parameter nodes of each op its first instance made, in order
    shared_owners: dict[int, list[tuple[str, ...]]] = field(default_factory=dict)
    # stack of (shared block id, weights being recorded or replayed, cursor)
    sharing: list[tuple[int, list[tuple[str, ...]], list[int]]] = field(default_factory=list)
    ops: int = 0
    """Nodes made that compute (parameters do not count against the node budget)."""
    made: int = 0
    """Every node made, bodies included: the next creation index."""
    progress: Progress | None = None
    """Told ``("elaborating", nodes made, None)`` every PROGRESS_EVERY nodes."""
    labels: dict[int, tuple[str, Span]] = field(default_factory=dict)
    """Creation index -> the `let` name last bound to the node's value and where its value
    is written: how a warning names a value nothing reads."""

    bindings: list[Binding] = field(default_factory=list)
    """Every name bound to a wire (`let`, a `=>` block's parameters), for editors."""

    def label(self, node: str, name: str, span: Span) -> None:
        """Record that `let name = ...` (its value at ``span``) binds node ``node``."""
        if node.startswith("#"):
            self.labels[int(node[1:])] = (name, span)

    def bind(self, node: str, name: str, scope: Span, shown: str | None = None) -> None:
        """Record that ``name`` means node ``node`` within the text ``scope``."""
        if node.startswith("#"):
            self.bindings.append(Binding(int(node[1:]), name, shown or name, scope))

    @property
    def nodes(self) -> list[Node]:
        """The nodes of the graph being built now (the innermost frame)."""
        return self.frames[-1].nodes

    @contextmanager
    def frame(self, inputs: Callable[[], Sequence[Shape]]) -> Iterator[Frame]:
        """A body graph built inside the current one, whose input nodes take ``inputs``."""
        made = Frame(inputs=inputs)
        self.frames.append(made)
        try:
            yield made
        finally:
            self.frames.pop()

    def open_scope(self, rule: str, args: tuple[tuple[str, str], ...], span: Span,
                   transparent: bool = False) -> int:
        sid = len(self.scopes)
        self.scopes[sid] = Scope(sid, self.current if sid else None, rule, args, span,
                                 transparent)
        return sid

    def add(self, op: OpDecl, attrs: Mapping[str, Any], inputs: Sequence[str], span: Span,
            **extra: Any) -> str:
        """A node of ``op`` reading ``inputs``; an op with weights also gets its parameter
        nodes, or, as a later instance of a `shared` block, reads its first instance's."""
        self._count(span)
        weights: tuple[str, ...] = ()
        if op.has_params:
            roles = op.weights(attrs)
            given = {r: attrs[r].node for r in roles if isinstance(attrs.get(r), TensorValue)}
            owned = self._owned(tuple(r for r in roles if r not in given), span)
            weights = tuple(given[r] if r in given else owned.pop(0) for r in roles)
            attrs = {k: None if k in given else v for k, v in attrs.items()}
        return self._node(op, attrs, inputs, span, weights=weights, **extra)

    def _count(self, span: Span) -> None:
        """One more node against the budget (and the progress report)."""
        if self.ops >= self.limits.max_nodes:
            raise error(E_EXPANSION,
                        f"the model expands beyond {self.limits.max_nodes:,} nodes", span,
                        hint=f"reduce the model's size, or raise the limit ({spell('max_nodes')})")
        self.ops += 1
        if self.progress is not None and self.ops % PROGRESS_EVERY == 0:
            self.progress("elaborating", self.ops, None)

    def _owned(self, roles: tuple[str, ...], span: Span, attrs: Mapping[str, Any] | None = None,
               shape: tuple[int, ...] | None = None) -> list[str]:
        """Parameter nodes for ``roles``: fresh (with ``attrs`` and ``shape`` where given),
        or, as a later instance of a `shared` block, its first instance's (recorded in
        order, so they replay in order)."""
        replay = self.sharing[-1] if self.sharing else None
        if replay is not None and replay[2][0] >= 0:
            _, recorded, cursor = replay
            cursor[0] += 1
            return list(recorded[cursor[0] - 1])
        made = tuple(self._node(OPS["param"], {"role": role, **(attrs or {})}, (), span,
                                shape=shape) for role in roles)
        if replay is not None:
            replay[1].append(made)
        return list(made)

    def value_param(self, shape: tuple[int, ...], init: str, fill: float, scale: float,
                    span: Span) -> str:
        """A `param(...)` value: a parameter node of the given shape that any port may read
        (in a `shared` block's later instances, the first instance's). It counts against
        the node budget like an op: nothing else bounds how many a spec makes."""
        self._count(span)
        (name,) = self._owned(("value",), span, shape=shape,
                              attrs={"init": init, "fill": fill, "scale": scale})
        return name

    def _node(self, op: OpDecl, attrs: Mapping[str, Any], inputs: Sequence[str], span: Span,
              **extra: Any) -> str:
        index = self.made  # across body graphs too, so names never collide
        self.made += 1
        name = f"#{index}"
        if op.source:  # a parameter or an input records every attribute
            attrs = {**attrs, **{k: v for k, v in op.defaults().items() if k not in attrs}}
        self.nodes.append(make_node(name=name, op=op.name, attrs=attrs,
                                    inputs=tuple(inputs), scope=self.current, span=span,
                                    index=index, **extra))
        return name


class Instantiator:
    """Makes the nodes of blocks: the state of one model's instantiation (nodes, scopes,
    sharing) and the budget that bounds it. It asks one thing of the evaluator:
    ``evaluate``, the value of a `=>` block's body."""

    def __init__(self, evaluate: Callable[[ast.Expr, Env], Value], limits: Limits):
        self.evaluate = evaluate
        self.limits = limits
        self.builder = NodeBuilder(self.limits)
        self.effects = _Effects()
        self._typed: dict[str, Node] = {}  # nodes typed so far, for `channels(x)`
        self._readers: dict[str, Node] = {}

    def shape_of(self, wire: Wire, span: Span) -> tuple[int | str, ...]:
        """The static shape of ``wire``: the nodes made so far, in every frame, are typed
        (once each) as shape inference will type them, so a rule can read its input's size,
        inside a loop's cell too."""
        for frame in self.builder.frames:  # outer frames first: a cell reads what they made
            for node in frame.nodes[frame.typed:]:
                if node.is_input and frame.inputs is not None:
                    node = node.evolve(shape=frame.inputs()[frame.typed_inputs])
                    frame.typed_inputs += 1
                for w in node.weights:
                    self._readers.setdefault(w, node)
                type_node(node, self._typed, self._readers.__getitem__)
            frame.typed = len(frame.nodes)
        return self._typed[wire.node].shape or ()

    def merged_inputs(self, wire: Wire, span: Span) -> tuple[Wire, ...]:
        """The inputs of the join that made ``wire``, with the joins that merge into it (as
        flatten_joins will merge them) replaced by their own inputs: a fractal's columns."""
        made = [n for frame in self.builder.frames for n in frame.nodes]
        by_name = {n.name: n for n in made}
        readers = Counter(i for n in made for i in n.inputs)
        node = by_name[wire.node]
        if not OPS[node.op].is_join:
            raise error(E_TYPE, f"`join_inputs` reads the output of a join, not of `{node.op}`",
                        span, hint="pass it a fractal's (or another join's) output")

        def expand(outer: Node) -> list[str]:
            names: list[str] = []
            for i in outer.inputs:
                inner = by_name.get(i)
                if inner is not None and merges(outer, inner, readers[i], False):
                    names += expand(inner)
                else:
                    names.append(i)
            return names

        return tuple(Wire(n, span) for n in expand(node))

    def join_wires(self, op: OpDecl, wires: Sequence[Value], attrs: Mapping[str, Value],
                   span: Span) -> Wire:
        """A join node over existing wires (`x + y`, `mean(a, b)` inside `=>`)."""
        if op.arity is not None and len(wires) != op.arity:
            raise error(E_ARGUMENT, f"`{op.name}` takes {op.arity} inputs, got {len(wires)}",
                        span)
        full = {**op.defaults(), **attrs}
        self.effects.count += 1
        return Wire(self.builder.add(op, full, [w.node for w in wires], span), span)


    @contextmanager
    def scope(self, rule: str, args: tuple[tuple[str, str], ...], span: Span,
               transparent: bool = False) -> Iterator[None]:
        b = self.builder
        parent = b.current
        b.current = b.open_scope(rule, args, span, transparent)
        try:
            yield
        finally:
            b.current = parent

    def apply(self, block: Block, wires: tuple[Wire, ...], span: Span) -> Value:
        """Instantiate ``block`` on ``wires``; one wire comes back as itself, several as a
        tuple, named outputs as the `outputs(...)` value (an enclosing block returns it)."""
        out = self.instantiate(block, wires)
        if isinstance(out, NamedWires):
            return out.named
        return out[0] if len(out) == 1 else out

    def instantiate(self, block: Block, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """Make the nodes of one fresh instance of ``block`` reading ``wires``. Named outputs
        come back as `NamedWires`, which nothing may read: they are the model's."""
        if isinstance(wires, NamedWires):
            raise comes_last(wires.named, block.span)
        if isinstance(block, PrimBlock):
            return self._instantiate_prim(block, wires)
        if isinstance(block, SeqBlock):
            for part in block.parts:
                wires = self.instantiate(part, wires)
            return wires
        if isinstance(block, ParBlock):
            return self._instantiate_par(block, wires)
        if isinstance(block, ScopeBlock):
            with self.scope(block.rule, block.args, block.span):
                try:
                    return self.instantiate(block.inner, wires)
                except SsnError as exc:  # a check of the wires inside a stdlib rule's block
                    raise note_call_site(exc, block.rule, block.args, block.span,
                                         "applied") from None
        if isinstance(block, GroupBlock):
            with self.scope(block.label, (), block.span, transparent=True):
                return self.instantiate(block.inner, wires)
        if isinstance(block, SharedBlock):
            return self._instantiate_shared(block, wires)
        if isinstance(block, ScanBlock):
            return self._instantiate_scan(block, wires)
        if isinstance(block, LambdaBlock):
            return self._instantiate_lambda(block, wires)
        raise AssertionError(f"unknown block {block!r}")

    def _instantiate_prim(self, block: PrimBlock, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """One op's node (none for a passthrough op: its block is its input)."""
        arity = block.op.arity if block.op.arity is not None else len(wires)
        if len(wires) != arity:
            raise error(E_TYPE, f"`{block.op.name}` takes {arity} stream"
                        f"{'s' if arity != 1 else ''}, got {len(wires)}", block.span)
        if block.op.passthrough:
            return wires
        self.effects.count += 1
        name = self.builder.add(block.op, dict(block.attrs), [w.node for w in wires],
                                block.span)
        return (Wire(name, block.span),)

    def _instantiate_par(self, block: ParBlock, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """Branches on the same wires, joined: each branch gives one stream."""
        outs = []
        for branch in block.branches:
            got = self.instantiate(branch, wires)
            if isinstance(got, NamedWires):
                raise comes_last(got.named, block.span)
            if len(got) != 1:
                raise error(E_TYPE, f"a `{block.op.name}` branch must produce one stream, "
                            f"this one produces {len(got)}", branch.span)
            outs.append(got[0])
        return (self.join_wires(block.op, outs, dict(block.attrs), block.span),)

    def _instantiate_lambda(self, block: LambdaBlock,
                            wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """A `=>` block: its parameters bound to the wires, its body evaluated to wires (or
        to named outputs, which come back as `NamedWires`)."""
        fixed = len(block.params) - block.rest
        if len(wires) < fixed if block.rest else len(wires) != fixed:
            at_least = "at least " if block.rest else ""
            raise error(E_TYPE, f"this block takes {at_least}{fixed} stream"
                        f"{'s' if fixed != 1 else ''}, got {len(wires)}", block.span)
        bound: dict[str, Value] = dict(zip(block.params[:fixed], wires, strict=False))
        for name, wire in zip(block.params[:fixed], wires, strict=False):
            self.builder.bind(wire.node, name, block.span)
        if block.rest:
            bound[block.params[-1]] = wires[fixed:]
            for i, wire in enumerate(wires[fixed:]):
                self.builder.bind(wire.node, block.params[-1], block.span,
                                  f"{block.params[-1]}[{i}]")
        result = self.evaluate(block.body, Env(bound, block.env))
        if isinstance(result, NamedOutputs):
            return NamedWires(result)
        if not is_wires(result):
            raise error(E_TYPE, f"a `=>` block must return wires, got {kind_of(result)}",
                        block.body.span,
                        hint="apply blocks to the parameters, e.g. `(x) => conv(64)(x)`"
                        if isinstance(result, Block) else None)
        return flatten_wires((result,))

    def _instantiate_scan(self, block: ScanBlock, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        """A `scan` node reading the sequence and zero initial states, owning a body graph:
        one instance of the cell on the step input and the states, in a `scan` scope; `item`
        nodes give its step outputs (and, with ``final``, the states' final values)."""
        if len(wires) != 1:
            raise error(E_TYPE, f"`scan` reads one sequence, got {len(wires)} streams",
                        block.span)
        b = self.builder
        (x,) = wires
        with self.scope("scan", (), block.span):
            inits = [b.add(OPS["zeros"], {"size": size}, [x.node], block.span)
                     for size in block.states]
            given: list[Shape] = []

            def cell_inputs() -> Sequence[Shape]:  # the step input's and the states' shapes
                if not given:
                    outer = [self._typed[n].shape or () for n in (x.node, *inits)]
                    try:
                        given.extend(OPS["scan"].body.inputs(  # type: ignore[union-attr]
                            outer, {"reverse": block.reverse}))
                    except ShapeMismatch as exc:
                        raise error(E_SHAPE, exc.message, block.span, hint=exc.hint) from None
                return given

            with b.frame(cell_inputs) as cell:
                ins = [b.add(OPS["input"], {}, (), block.span) for _ in range(1 + len(inits))]
                outs = self.instantiate(block.cell, tuple(Wire(n, block.span) for n in ins))
            if isinstance(outs, NamedWires):
                raise comes_last(outs.named, block.span)
            made = cell.nodes
            if len(outs) != 1 + len(inits):
                raise error(E_TYPE, f"the cell returns {len(outs)} stream"
                            f"{'s' if len(outs) != 1 else ''}; with {len(inits)} state"
                            f"{'s' if len(inits) != 1 else ''} it must return the step's output "
                            f"and {len(inits)} new state{'s' if len(inits) != 1 else ''}",
                            block.span, hint="a cell is `(x, h) => ...` returning `(y, h2)`")
            body = Graph.build("scan", made, b.scopes, ins, [w.node for w in outs])
            node = b.add(OPS["scan"], {"reverse": block.reverse}, [x.node, *inits],
                         block.span, body=body)
            wanted = range(1 + len(inits)) if block.final else range(1)
            items = [b.add(OPS["item"], {"index": i}, [node], block.span) for i in wanted]
        return tuple(Wire(item, block.span) for item in items)

    def _instantiate_shared(self, block: SharedBlock, wires: tuple[Wire, ...]) -> tuple[Wire, ...]:
        b = self.builder
        key = id(block)
        first = key not in b.shared_owners
        owners = b.shared_owners.setdefault(key, [])
        cursor = [-1 if first else 0]
        b.sharing.append((key, owners, cursor))
        try:
            return self.instantiate(block.inner, wires)
        finally:
            b.sharing.pop()


    # ------------------------------------------------------------ size estimate

    def estimate(self, block: Block, *, steps: bool = False,
                 sizes: dict[str, dict[int, Span]] | None = None) -> int:
        """Nodes an instance of ``block`` would make (named-wire blocks count once); with
        ``steps``, the instantiation steps instead (an `identity` counts too). ``sizes``
        collects each rule's instance sizes (a recursion's, level by level), each with
        where that instance is called."""
        return _size(block, {}, steps, sizes)

    def growth(self, block: Block) -> tuple[str, Span | None, list[Note]]:
        """What to change when ``block`` is too large: the recursive rule that grows most,
        with its measured growth per level; where it recurses (its call one level in) and,
        as a note, the outermost call of it."""
        sizes: dict[str, dict[int, Span]] = {}
        self.estimate(block, sizes=sizes)
        levels = {rule: sorted(s) for rule, s in sizes.items() if len(s) > 1}
        if not levels:
            return f"reduce the model's size, or raise the limit ({spell('max_nodes')})", \
                None, []
        rule = max(levels, key=lambda r: levels[r][-1])
        *_, before, last = levels[rule]
        hint = (f"`{rule}` grows about ×{last / max(before, 1):.1f} per level of its "
                f"recursion ({before:,} -> {last:,} nodes); reduce its depth (e.g. fewer "
                f"fractal columns), or raise the limit ({spell('max_nodes')})")
        outer = sizes[rule][last]
        return hint, sizes[rule][before], [Note(f"the outermost `{rule}`, called here, would "
                                                f"make {last:,} nodes", outer)]

    def growth_hint(self, block: Block) -> str:
        """The hint of `growth`."""
        return self.growth(block)[0]


# ---------------------------------------------------------------- wires

class NamedWires(tuple[Wire, ...]):
    """The wires of `outputs(...)`, with their names: the model's outputs, when they are
    what its body returns last."""

    named: NamedOutputs

    def __new__(cls, named: NamedOutputs) -> NamedWires:
        made = super().__new__(cls, named.wires)
        made.named = named
        return made


def comes_last(named: NamedOutputs, reader: Span) -> SsnError:
    """The error for named outputs that something reads: they are the model's outputs."""
    return error(E_TYPE, "`outputs(...)` names the model's outputs, so it comes last",
                 named.span, notes=[Note("they are read here", reader)],
                 hint="name the outputs in the model's last `=>` block")


def is_wires(v: Value) -> bool:
    return isinstance(v, Wire) or (isinstance(v, tuple) and bool(v)
                                   and all(isinstance(x, Wire) for x in v))



def as_wires(v: Value) -> tuple[Wire, ...]:
    return (v,) if isinstance(v, Wire) else tuple(v)



def flatten_wires(args: tuple[Value, ...]) -> tuple[Wire, ...]:
    out: list[Wire] = []
    for a in args:
        out.extend(as_wires(a))
    return tuple(out)


def _size(b: Block, memo: dict[int, int], steps: bool,
          sizes: dict[str, dict[int, Span]] | None) -> int:
    """`Instantiator.estimate` of ``b``, each shared block counted once in ``memo`` (a
    function of the module, not a recursive closure: that would be a reference cycle)."""
    got = memo.get(id(b))
    if got is not None:
        return got
    if isinstance(b, PrimBlock):
        n = 0 if b.op.passthrough and not steps else 1
    elif isinstance(b, SeqBlock):
        n = sum(_size(p, memo, steps, sizes) for p in b.parts)
    elif isinstance(b, ParBlock):
        n = 1 + sum(_size(p, memo, steps, sizes) for p in b.branches)
    elif isinstance(b, ScopeBlock | SharedBlock | GroupBlock):
        n = _size(b.inner, memo, steps, sizes)
    elif isinstance(b, ScanBlock):  # the loop node, its initial states, its body
        n = 2 * (1 + len(b.states)) + _size(b.cell, memo, steps, sizes)
    else:
        n = 1
    memo[id(b)] = n
    if sizes is not None and isinstance(b, ScopeBlock):
        sizes.setdefault(b.rule, {}).setdefault(n, b.span)
    return n
