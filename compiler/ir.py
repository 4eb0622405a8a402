"""The graph IR: one frozen record per op instance, a scope tree of rule instances, and (built
when asked for) a networkx MultiDiGraph whose edges mirror each node's ordered inputs."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import MISSING, dataclass, field, fields, replace
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import networkx as nx

from ..base.diagnostics import E_INTERNAL, Diagnostic, Note, Span, error
from .frozen import freeze_attrs
from .literals import ParamValue
from .ops import OPS, AttrValue, OpCall, OpDecl, ParamSpec, Shape


@dataclass(frozen=True)
class Scope:
    """One rule instance: which rule, with which arguments, inside which parent scope.

    The root scope (id 0) is the model itself. A transparent scope (one instance of a block
    passed as a rule argument, labelled by the parameter) adds no segment to names."""

    id: int
    parent: int | None
    rule: str
    args: tuple[tuple[str, str], ...]
    span: Span
    transparent: bool = False

    @property
    def signature(self) -> str:
        """`rule(arg=value, ...)`: identical for instances that compute the same function."""
        inner = ", ".join(f"{k}={v}" for k, v in self.args)
        return f"{self.rule}({inner})"


@dataclass(frozen=True)
class Node:
    """One op instance. ``name`` is its readable scope path; ``inputs`` are the nodes on its
    data ports in order, ``weights`` the values on its weight ports (parameter nodes, as
    torch.fx's ``get_attr``), in the order of the op's declared weights. Instances of a
    ``shared`` block read the same parameter nodes. ``params`` is what each weight port needs
    (set by shape inference). A node whose op declares a body owns ``body``, a graph of its
    own whose inputs the op binds (a loop's step input and states); its nodes may also read
    values of the graphs around it (captures), as ONNX subgraphs may. A node with several
    outputs (a loop's step outputs and final states) is tuple-valued: ``outputs`` holds their
    shapes (``shape`` is the first's) and only `item` nodes, in its scope, read it.

    Inside a fractal, ``column`` (1 = shallowest) and ``position`` (1-based index of its
    base instance along the column) locate the node; a fractal join has no column:
    ``depth`` is the position along the deepest column it closes and ``input_columns``
    gives the column of each input."""

    name: str
    op: str
    attrs: Mapping[str, AttrValue]
    inputs: tuple[str, ...]
    scope: int
    span: Span
    index: int
    shape: Shape | None = None
    dtype: str = "f32"
    params: tuple[ParamSpec, ...] = ()
    weights: tuple[str, ...] = ()
    body: Graph | None = field(default=None, compare=False, repr=False)
    outputs: tuple[Shape, ...] = ()
    fractal: int | None = None
    column: int | None = None
    position: int | None = None
    depth: int | None = None
    input_columns: tuple[int | None, ...] = ()

    def evolve(self, **changes: Any) -> Node:
        """A copy with some fields changed (records are immutable). Copies the fields
        directly: passes evolve every node, and `dataclasses.replace` re-runs `__init__`."""
        if "attrs" in changes:
            changes["attrs"] = freeze_attrs(changes["attrs"])
        if not _NODE_FIELDS.issuperset(changes):
            unknown = sorted(changes.keys() - _NODE_FIELDS)
            raise TypeError(f"Node has no field {unknown[0]!r}")
        new = object.__new__(Node)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def is_source(self) -> bool:
        """A value read rather than computed: the model's input or a parameter."""
        return OPS[self.op].source

    @property
    def is_input(self) -> bool:
        """A value the model (or a body) is given: a source that is not stored."""
        return OPS[self.op].source and not OPS[self.op].stored

    @property
    def is_param(self) -> bool:
        """A tensor stored with the model: a parameter or a buffer (op `param`)."""
        return OPS[self.op].stored

    def spec(self) -> ParamSpec:
        """A parameter node as the tensor it holds (named by its port; the node's name is
        the state_dict key)."""
        a = self.attrs
        return ParamSpec(str(a["role"]), tuple(int(d) for d in self.shape or ()), str(a["init"]),
                         int(a["fan_in"]), bool(a["trainable"]),  # type: ignore[arg-type]
                         float(a["fill"]), float(a["scale"]))  # type: ignore[arg-type]


_NODE_FIELDS = frozenset(f.name for f in fields(Node))
_REQUIRED = frozenset(f.name for f in fields(Node) if f.default is MISSING)
_PROTOTYPE = Node(name="", op="", attrs=MappingProxyType({}), inputs=(), scope=0,
                  span=Span.unknown(), index=0)


def op_call(node: Node, inputs: Sequence[Node]) -> OpCall:
    """``node`` (typed) as its op's declared lowerings see it, ``inputs`` its input nodes."""
    return OpCall(node.name, node.attrs, tuple(i.shape or () for i in inputs),
                  node.shape or (), tuple(i.dtype for i in inputs), node.params)


def _tuple_valued(node: Node) -> bool:
    """Whether ``node`` has several outputs (an unknown op, which verify reports, has not)."""
    op = OPS.get(node.op)
    return op is not None and op.tuple_valued


def make_node(**fields: Any) -> Node:
    """Build a node, freezing its attribute mapping. Fills the record directly, as `evolve`
    does (elaboration makes every node here, and the dataclass `__init__` costs twice as
    much); `Node(...)` itself makes the same record."""
    fields["attrs"] = freeze_attrs(fields.get("attrs", {}))
    if not fields.keys() >= _REQUIRED or not fields.keys() <= _NODE_FIELDS:
        return Node(**fields)  # its own error for a field missing or unknown
    new = object.__new__(Node)
    record = new.__dict__
    record.update(_PROTOTYPE.__dict__)  # so the records share the class's key table
    record.update(fields)
    return new


@dataclass(frozen=True)
class Region:
    """One rule instance seen as a subgraph, as an ONNX function or a torch submodule sees
    it. Transparent scopes (block arguments) fold into the instance that holds them.

    ``nodes`` are made directly by this instance (in order), ``children`` are its inner
    instances that make nodes, ``members`` every node inside (by creation index). The
    boundary: ``inputs`` are values read from outside and ``weights`` the parameter tensors
    used (state_dict keys), both in first-use order; ``outputs`` are the members read
    outside or returned by the model. ``prefix`` is the longest name prefix the members
    share (keeping at least the last segment of each)."""

    scope: Scope
    nodes: tuple[Node, ...]
    children: tuple[Region, ...]
    members: tuple[Node, ...]
    inputs: tuple[str, ...]
    weights: tuple[str, ...]
    outputs: tuple[str, ...]
    prefix: str

    @property
    def first(self) -> int:
        """Creation index of the first member: where the instance sits among its siblings."""
        return self.members[0].index if self.members else 0


@dataclass(frozen=True)
class Fractal:
    """One fractal block as tag_columns marked it: its scope, its number of columns and its
    column joins in order of depth (then creation). Backends, column extraction and naming
    look fractal facts up here."""

    block: int
    width: int
    joins: tuple[str, ...]


@dataclass(frozen=True)
class Binding:
    """A name bound to a wire: `let y = ...` or a `=>` block's parameter. ``scope`` is the
    text where the name means this wire (the whole `let` or the whole block); ``shown`` is
    how to print it (`rest[1]` for the second of a `*rest` parameter's wires)."""

    node: int
    name: str
    shown: str
    scope: Span


@dataclass
class Graph:
    """A model's IR. Read-only by convention: passes return new graphs.

    ``nx`` is the networkx view: nodes keyed by name with attribute ``node`` (the record),
    edges ``(src, dst, key=port)`` with attribute ``column`` where one is known."""

    model: str
    nodes_by_name: dict[str, Node]
    scopes: dict[int, Scope]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    """The model's parameters: data as itself, anything else as its spelling (literals.py)."""
    input_type: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Node names this model had before 0.2 -> their names now (only those that changed)."""
    output_names: tuple[str, ...] = ()
    """The outputs' names as the spec gave them (`outputs(logits = ...)`); empty: unnamed."""
    input_names: tuple[str, ...] = ()
    """The inputs' names as the spec gave them (`src: tokens[V], tgt: ...`); empty: one
    unnamed input, `input`. Naming gives the input nodes these names."""
    labels: Mapping[int, tuple[str, Span]] = field(default_factory=dict)
    """Creation index -> the `let` name bound to that node's value and where its value is
    written (what a warning calls a value nothing reads)."""
    bindings: tuple[Binding, ...] = ()
    """Every name a `let` or a `=>` block's parameter binds to a wire: what an editor shows
    as the shape of the name under the cursor."""
    full: Graph | None = field(default=None, repr=False)
    """This graph before the values nothing reads were removed (which a tap may read);
    None where nothing was removed. Any derived graph drops it."""
    warnings: tuple[Diagnostic, ...] = ()
    """What the passes reported without stopping (W codes); a derived graph drops them."""
    _nx: nx.MultiDiGraph | None = field(default=None, init=False, repr=False)
    _order: list[Node] | None = field(default=None, init=False, repr=False)
    _consumers: dict[str, list[tuple[str, int]]] | None = field(default=None, init=False,
                                                                repr=False)
    _regions: dict[int, Region] | None = field(default=None, init=False, repr=False)
    _children: dict[int, tuple[int, ...]] | None = field(default=None, init=False, repr=False)
    _paths: dict[int, tuple[Scope, ...]] | None = field(default=None, init=False, repr=False)
    _fractals: dict[int, Fractal] | None = field(default=None, init=False, repr=False)
    _readers: dict[str, str] | None = field(default=None, init=False, repr=False)
    _all: dict[str, Node] | None = field(default=None, init=False, repr=False)

    @property
    def nx(self) -> nx.MultiDiGraph:
        """The networkx view, built when first asked for (the compiler's own passes read
        `order`, `consumers` and `sources` instead)."""
        if self._nx is None:
            g = nx.MultiDiGraph(model=self.model)
            for node in self.nodes_by_name.values():
                g.add_node(node.name, node=node, op=node.op, shape=node.shape)
            for node in self.nodes_by_name.values():
                for port, src in enumerate(node.inputs):
                    column = node.input_columns[port] if node.input_columns else None
                    g.add_edge(src, node.name, key=port, column=column)
                for port, src in enumerate(node.weights, len(node.inputs)):
                    g.add_edge(src, node.name, key=port, weight=True)
                first = len(node.inputs) + len(node.weights)
                for port, src in enumerate(self._captured(node), first):
                    g.add_edge(src, node.name, key=port, capture=True)
            self._nx = g
        return self._nx

    def _captured(self, node: Node) -> list[str]:
        """What ``node``'s body reads from this graph: it orders the node too."""
        return [] if node.body is None else [
            c for c in captures(node.body) if c in self.nodes_by_name]

    def sources(self, node: Node) -> tuple[str, ...]:
        """The values ``node`` reads, in port order: its inputs, weights, and what its body
        reads from this graph (the edges into it)."""
        if node.body is None:
            return node.inputs + node.weights
        return (*node.inputs, *node.weights, *self._captured(node))

    @staticmethod
    def build(model: str, nodes: Iterable[Node], scopes: Mapping[int, Scope],
              inputs: Iterable[str], outputs: Iterable[str],
              params: Mapping[str, ParamValue] | None = None, input_type: str = "",
              aliases: Mapping[str, str] | None = None,
              output_names: Iterable[str] = (), input_names: Iterable[str] = (),
              labels: Mapping[int, tuple[str, Span]] | None = None,
              bindings: Iterable[Binding] = ()) -> Graph:
        """Construct from node records (in creation order)."""
        return Graph(model=model, nodes_by_name={n.name: n for n in nodes},
                     scopes=dict(scopes), inputs=tuple(inputs), outputs=tuple(outputs),
                     params=dict(params or {}), input_type=input_type,
                     aliases=dict(aliases or {}), output_names=tuple(output_names),
                     input_names=tuple(input_names), labels=dict(labels or {}),
                     bindings=tuple(bindings))

    def derive(self, *, nodes: Iterable[Node] | None = None, **changes: Any) -> Graph:
        """This graph with some fields changed (``nodes`` as records, in creation order): the
        one way to make a changed graph. Caches and the networkx view start afresh, except
        the order and the consumers where every node reads what it read (a pass that only
        annotates nodes, as tagging and typing do)."""
        if nodes is not None:
            changes["nodes_by_name"] = {n.name: n for n in nodes}
        for key in ("inputs", "outputs", "output_names"):
            if key in changes:
                changes[key] = tuple(changes[key])
        changes.setdefault("full", None)
        changes.setdefault("warnings", ())
        made = replace(self, **changes)
        if nodes is not None and self._order is not None and self._same_edges(made):
            made._order = [made.nodes_by_name[n.name] for n in self._order]
            made._consumers = self._consumers
        return made

    def _same_edges(self, other: Graph) -> bool:
        """Whether ``other`` has this graph's nodes, by name and creation index, each
        reading the same values (no bodies, whose captures would need a look inside)."""
        if len(other.nodes_by_name) != len(self.nodes_by_name):
            return False
        mine = self.nodes_by_name.get
        for name, node in other.nodes_by_name.items():
            old = mine(name)
            if (old is None or old.index != node.index or old.inputs != node.inputs
                    or old.weights != node.weights or old.body is not None
                    or node.body is not None):
                return False
        return True

    def with_nodes(self, nodes: Iterable[Node], outputs: Iterable[str] | None = None) -> Graph:
        """A new graph with these nodes, same scopes and inputs."""
        return self.derive(nodes=nodes, **({} if outputs is None else {"outputs": outputs}))

    def output_labels(self) -> tuple[str, ...]:
        """The names the outputs go by in every backend, stable whatever op comes last: the
        spec's, else `logits` (or `output1`, `output2`, ... for several unnamed ones)."""
        if self.output_names:
            return self.output_names
        if len(self.outputs) == 1:
            return ("logits",)
        return tuple(f"output{i + 1}" for i in range(len(self.outputs)))

    def read_outside(self, members: Sequence[str]) -> list[str]:
        """Of ``members``, those the model returns or a non-member reads: the values that
        set of nodes gives the rest of the model (a region's outputs, a tapped scope's)."""
        inside = set(members)
        return [m for m in members if m in self.outputs
                or any(c not in inside for c, _ in self.consumers(m))]

    def with_outputs(self, outputs: Iterable[str], names: Iterable[str]) -> Graph:
        """The same graph with these outputs, named ``names``."""
        return self.derive(outputs=outputs, output_names=names)

    def map_nodes(self, fn: Callable[[Node], Node],
                  rename: Mapping[str, str] | None = None) -> Graph:
        """A new graph with ``fn`` applied to every node, bodies included (each rebuilt the
        same way), and inputs and outputs renamed through ``rename``: how a pass changes
        nodes at every depth."""
        names = rename or {}

        def one(node: Node) -> Node:
            new = fn(node)
            return new if node.body is None else new.evolve(body=node.body.map_nodes(fn, rename))

        return self.derive(nodes=[one(n) for n in self.nodes_by_name.values()],
                           inputs=[names.get(i, i) for i in self.inputs],
                           outputs=[names.get(o, o) for o in self.outputs])

    def output_name(self, i: int) -> str:
        """The name output ``i`` goes by: the spec's, or its node's."""
        return self.output_names[i] if self.output_names else self.outputs[i]

    def __getitem__(self, name: str) -> Node:
        return self.nodes_by_name[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.order())

    def __len__(self) -> int:
        return len(self.nodes_by_name)

    def order(self) -> list[Node]:
        """Deterministic topological order: ties broken by creation index (computed once,
        in time linear in the edges, times log n for the choice)."""
        if self._order is None:
            found = self._sorted()
            if len(found) < len(self.nodes_by_name):
                raise ValueError(f"the IR of `{self.model}` has a cycle")
            self._order = found
        return self._order

    def _sorted(self) -> list[Node]:
        """Kahn's algorithm, the ready node of least creation index first; fewer nodes than
        the graph has where there is a cycle. Where every node reads only nodes made before
        it (as elaboration makes them), that is creation order."""
        made = {n.name: n.index for n in self.nodes_by_name.values()}
        get, sources = made.get, self.sources
        if all(get(s, -1) < n.index for n in self.nodes_by_name.values() for s in sources(n)):
            return sorted(self.nodes_by_name.values(), key=attrgetter("index"))
        waiting = {n.name: sum(1 for s in self.sources(n) if s in self.nodes_by_name)
                   for n in self.nodes_by_name.values()}
        ready = [(n.index, i, n.name) for i, n in enumerate(self.nodes_by_name.values())
                 if waiting[n.name] == 0]
        heapq.heapify(ready)
        position = {name: i for i, name in enumerate(self.nodes_by_name)}
        out: list[Node] = []
        while ready:
            name = heapq.heappop(ready)[2]
            out.append(self.nodes_by_name[name])
            for child, _ in self._consumer_map().get(name, ()):
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (self.nodes_by_name[child].index, position[child],
                                           child))
        return out

    def _consumer_map(self) -> dict[str, list[tuple[str, int]]]:
        """Every value's (consumer, port) pairs, ordered by the consumer's creation index
        then port (computed once)."""
        if self._consumers is None:
            found: dict[str, list[tuple[str, int]]] = {}
            for node in sorted(self.nodes_by_name.values(), key=attrgetter("index")):
                name = node.name
                for port, src in enumerate(self.sources(node)):
                    readers = found.get(src)
                    if readers is None:
                        found[src] = [(name, port)]
                    else:
                        readers.append((name, port))
            self._consumers = found
        return self._consumers

    def consumers(self, name: str) -> list[tuple[str, int]]:
        """(consumer, port) pairs reading node ``name``, in a stable order."""
        return list(self._consumer_map().get(name, ()))

    def scope_path(self, scope_id: int) -> tuple[Scope, ...]:
        """Scopes from the root down to ``scope_id`` (each scope's path made once, from its
        parent's, and shared by every caller)."""
        if self._paths is None:
            self._paths = {}
        found = self._paths.get(scope_id)
        if found is None:
            scope = self.scopes[scope_id]
            found = (*(self.scope_path(scope.parent) if scope.parent is not None else ()),
                     scope)
            self._paths[scope_id] = found
        return found

    def fractals(self) -> dict[int, Fractal]:
        """The fractal blocks, by block scope id (read once off the column tags)."""
        if self._fractals is None:
            joins: dict[int, list[Node]] = {}
            for node in self.order():
                if node.input_columns and node.fractal is not None:
                    joins.setdefault(node.fractal, []).append(node)
            self._fractals = {
                block: Fractal(block, max(c for j in js for c in j.input_columns if c is not None),
                               tuple(j.name for j in sorted(js, key=lambda j: (j.depth or 0,
                                                                              j.index))))
                for block, js in sorted(joins.items())}
        return self._fractals

    def scope_children(self, scope_id: int) -> tuple[int, ...]:
        """The scopes directly inside ``scope_id``, in creation order (computed once)."""
        if self._children is None:
            kids: dict[int, list[int]] = {sid: [] for sid in self.scopes}
            for sid, scope in sorted(self.scopes.items()):
                if scope.parent is not None:
                    kids[scope.parent].append(sid)
            self._children = {sid: tuple(k) for sid, k in kids.items()}
        return self._children[scope_id]

    def subtree(self, scope_id: int) -> list[int]:
        """``scope_id`` and every scope inside it, depth first in creation order."""
        out, stack = [], [scope_id]
        while stack:
            sid = stack.pop()
            out.append(sid)
            stack.extend(reversed(self.scope_children(sid)))
        return out

    def all_nodes(self) -> dict[str, Node]:
        """Every node of this graph and of the bodies inside it, by name (names are unique
        across bodies; computed once)."""
        if self._all is None:
            self._all = {node.name: node for node in _nested(self)}
        return self._all

    def first_reader(self, param: str) -> Node:
        """The node that reads parameter ``param`` first (in order, bodies included): the one
        whose module owns it where a backend makes modules."""
        if self._readers is None:
            self._readers = {}
            for _, node in walk(self):
                for w in node.weights:
                    self._readers.setdefault(w, node.name)
        return self.all_nodes()[self._readers[param]]

    def shares(self, node: Node) -> str | None:
        """The node whose weights ``node`` reads as a later instance of a ``shared`` block
        (None: it reads its own, or none, or only weights given to it)."""
        every = self.all_nodes()
        mine = [w for w in node.weights if owned(every[w])]
        if not mine:
            return None
        owner = self.first_reader(mine[0])
        return None if owner.name == node.name else owner.name

    def generated(self) -> dict[str, tuple[int | str, ...]]:
        """The tensors computed in the graph and read as weights (a hypernetwork's kernels),
        by node name, with their shapes: not parameters, so never counted as such."""
        every = self.all_nodes()
        return {w: every[w].shape or () for _, n in walk(self) for w in n.weights
                if not every[w].is_param}

    def tensors(self) -> dict[str, ParamSpec]:
        """Every parameter and buffer, bodies included, by state_dict key, in order of use."""
        return {n.name: n.spec() for _, n in walk(self) if n.is_param}

    def region(self, scope_id: int = 0) -> Region:
        """The region of a non-transparent scope (0: the whole model), computed once for every
        scope of the graph. Backends and passes read scope boundaries here, never rebuild
        them."""
        if self._regions is None:
            from .regions import build_regions  # it reads this module's records

            self._regions = build_regions(self)
        return self._regions[scope_id]

    def regions(self) -> list[Region]:
        """Every region that holds nodes, outermost first."""
        self.region(0)
        assert self._regions is not None
        return [self._regions[sid] for sid in sorted(self._regions)]

    def _tuple_problems(self, node: Node, op: OpDecl) -> list[str]:
        """A tuple-valued node is read only by `item`s in its scope, an `item` only reads one
        (a tuple never crosses a region's boundary), at an index it has."""
        problems = []
        if op.tuple_valued:
            for dst, _ in self.consumers(node.name):
                reader = self.nodes_by_name[dst]
                reads = OPS.get(reader.op)
                if reads is None or not reads.projects or reader.scope != node.scope:
                    problems.append(f"{node.name}: tuple-valued, read by `{dst}`, not by an "
                                    "`item` in its scope")
        if op.projects:
            src = self.nodes_by_name.get(node.inputs[0]) if node.inputs else None
            if src is not None and not _tuple_valued(src):
                problems.append(f"{node.name}: reads `{src.name}`, which is not tuple-valued")
            elif src is not None and src.outputs and not (
                    0 <= int(node.attrs["index"]) < len(src.outputs)):  # type: ignore[arg-type]
                problems.append(f"{node.name}: `{src.name}` has no output "
                                f"{node.attrs['index']}")
        return problems

    def verify(self, outer: frozenset[str] = frozenset(), within: str = "") -> None:
        """Check the invariants every pass must keep (torch.fx's ``Graph.lint``):
        known ops with the right arity, inputs and weights that exist, acyclicity, unique
        names, shapes where set, parameters read only on weight ports, and each op's weight
        ports holding the shapes it needs. A body is verified too, with the names of the
        graphs around it (``outer``) readable and not to be reused; ``within`` says where."""
        problems: list[str] = []
        for clash in sorted(outer & set(self.nodes_by_name))[:5]:
            problems.append(f"{clash}: named like a node of an enclosing graph")
        data = {i for n in self.nodes_by_name.values() for i in n.inputs}  # read on data ports
        other = {s for n in self.nodes_by_name.values() for s in self.sources(n)[len(n.inputs):]}
        for node in self.nodes_by_name.values():
            problems += self._node_problems(node, outer, data, other)
        for name in (*self.inputs, *self.outputs):
            if name in self.nodes_by_name and _tuple_valued(self.nodes_by_name[name]):
                problems.append(f"{name}: a tuple-valued node is not an output (its `item`s are)")
            if name not in self.nodes_by_name:
                problems.append(f"graph input/output `{name}` does not exist")
        try:
            self.order()
        except ValueError:
            problems.append("the graph has a cycle: " + " -> ".join(
                str(e[0]) for e in nx.find_cycle(self.nx)))
        where = within or f"model `{self.model}`"
        if problems:
            first = next(iter(self.nodes_by_name.values()), None)
            span = first.span if first else Span.unknown()
            raise error(E_INTERNAL, f"IR verification failed in {where}", span,
                        notes=[Note(p) for p in problems[:20]])
        for node in self.nodes_by_name.values():
            if node.body is not None:
                node.body.verify(outer | set(self.nodes_by_name),
                                 f"{where}, the body of `{node.name}`")


    def _node_problems(self, node: Node, outer: frozenset[str], data: AbstractSet[str],
                       other: AbstractSet[str]) -> list[str]:
        """What is wrong with one node: its op, arity, inputs and weights, body, parameter
        ports (``data``: the values read on data ports, ``other``: on the rest), weight
        shapes, tuple use and size."""
        problems: list[str] = []
        op = OPS.get(node.op)
        if op is None:
            return [f"{node.name}: unknown op `{node.op}`"]
        names = self.nodes_by_name
        if op.arity is not None and len(node.inputs) != op.arity:
            problems.append(f"{node.name}: {node.op} takes {op.arity} inputs, "
                            f"has {len(node.inputs)}")
        if op.arity is None and not node.inputs:
            problems.append(f"{node.name}: {node.op} has no inputs")
        for src in node.inputs:
            if src not in names and src not in outer:
                problems.append(f"{node.name}: input `{src}` does not exist")
        if (op.body is None) != (node.body is None):
            problems.append(f"{node.name}: {node.op} " + (
                "owns no body graph" if node.body is None else "cannot own a body graph"))
        if node.input_columns and len(node.input_columns) != len(node.inputs):
            problems.append(f"{node.name}: input_columns does not match inputs")
        for w in node.weights:
            if w not in names and w not in outer:
                problems.append(f"{node.name}: weight `{w}` does not exist")
        if op.stored and ((node.name not in data and node.name not in other)
                          or (owned(node) and node.name in data)):  # a parameter
            problems.append(f"{node.name}: a parameter must be read, and (unless a "
                            "`param` value) only on weight ports")
        if node.shape is not None and not op.stored:
            want = op.weights(node.attrs)
            if tuple(p.name for p in node.params) != want or len(node.weights) != len(want):
                problems.append(f"{node.name}: weights {node.weights} do not match the "
                                f"ports {want}")
            for p, w in zip(node.params, node.weights, strict=False):
                got = names.get(w)
                if got is not None and got.shape != p.shape:
                    problems.append(f"{node.name}: weight `{w}` is {got.shape}, the op "
                                    f"needs {p.shape}")
        problems += self._tuple_problems(node, op)
        if node.shape is not None and any(isinstance(d, int) and d <= 0
                                          for d in node.shape):
            problems.append(f"{node.name}: empty shape {node.shape}")
        return problems

def owned(node: Node) -> bool:
    """Whether ``node`` is a parameter an op made for its own weight port, named after that
    op (not a `param(...)` value, which is named by its scope and may be read on any port)."""
    return node.is_param and node.attrs["role"] != "value"


def numbered_name(text: str, number: int | None, *, legacy: bool = False) -> str:
    """``text`` with its running ``number`` (none: unnumbered), `_` between a final digit
    and the number (``legacy``: the pre-0.2 form without it)."""
    if number is None:
        return text
    sep = "_" if text[-1:].isdigit() and not legacy else ""
    return f"{text}{sep}{number}"


def walk(graph: Graph) -> Iterator[tuple[Graph, Node]]:
    """Every node of ``graph`` in order, each body-owning node followed by its body's nodes
    (depth first), with the graph that holds it: the one way to reach nested graphs."""
    for node in graph.order():
        yield graph, node
        if node.body is not None:
            yield from walk(node.body)


def upstream(nodes: Mapping[str, Node], roots: Iterable[str],
             known: AbstractSet[str] = frozenset()) -> set[str]:
    """The names of ``nodes`` that ``roots`` read, themselves included: on data and weight
    ports and through what bodies read from around them, not looking past ``known`` ones."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name in known or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        stack += (*node.inputs, *node.weights)
        if node.body is not None:
            stack += captures(node.body)
    return seen


def captures(body: Graph) -> tuple[str, ...]:
    """The values a body (and the bodies inside it) reads from the graphs around it, in
    first-use order."""
    own = set(body.all_nodes())
    seen: dict[str, None] = {}
    for node in _nested(body):
        seen.update((v, None) for v in (*node.inputs, *node.weights) if v not in own)
    return tuple(seen)


def _nested(graph: Graph) -> Iterator[Node]:
    """Every node of ``graph`` and its bodies in creation order, without ordering them (so
    that a graph under verification, which may be broken, can still be read)."""
    for node in sorted(graph.nodes_by_name.values(), key=lambda n: n.index):
        yield node
        if node.body is not None:
            yield from _nested(node.body)


def named_after(segment: str, text: str) -> bool:
    """Whether a name segment is ``text``, alone or with its running number."""
    if segment == text:
        return True
    number = segment[len(text) + (1 if text[-1:].isdigit() else 0):]
    return (segment.startswith(text) and number.isdigit()
            and numbered_name(text, int(number)) == segment)
