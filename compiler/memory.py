"""The memory a model needs before it runs (`ssnc info --memory`): bytes of weights,
gradients, optimizer state and the activations autograd keeps for backward, per scope, with
the peaks of a training step and of inference.

The peaks replay what the generated PyTorch code does: its forward frees each value after
its last reader; autograd keeps what each op declares it `saves`; backward runs the nodes in
reverse, making its inputs' gradients and releasing what it kept; the parameters' gradients
appear as backward reaches their readers (`zero_grad()` sets them to None). A loop counts its
cell's kept values once per step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..base.diagnostics import E_OPTION, did_you_mean, error
from ..base.options import option_span, positive, spell
from .axes import symbol_offset
from .ir import Graph, Node, captures, walk
from .ops import OPS, Shape
from .stats import sequence_steps, summarize

FLOAT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
"""Bytes per element of a float tensor in each precision (`--precision`)."""
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""State tensors an optimizer keeps per trainable parameter: SGD none, SGD with momentum
its buffer, Adam and AdamW the two moments."""
DEVICES = ("cuda", "cpu")
"""Where the model trains: dropout keeps a bool mask on a GPU and a float one on the CPU
(PyTorch's fused kernel is GPU-only), and a GPU's optimizer steps all tensors at once
(`foreach`), the CPU's one at a time."""


@dataclass(frozen=True)
class MemoryRow:
    """One scope's bytes: weights (parameters and buffers it brings), their gradients and
    optimizer state, the activations it keeps for backward (values it makes that some op
    keeps, loops counted once per step), and the activations it writes in one forward."""

    path: str
    depth: int
    weights: int
    gradients: int
    optimizer: int
    kept: int
    written: int

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return {"path": self.path, "depth": self.depth, "weights": self.weights,
                "gradients": self.gradients, "optimizer": self.optimizer,
                "kept_for_backward": self.kept, "activations_written": self.written}


@dataclass(frozen=True)
class Memory:
    """The estimate for one batch size, sequence length, precision and optimizer: totals
    in bytes, the training step's peak (weights, optimizer state and inputs resident, then the
    forward's and backward's activations and the gradients as they appear) and inference's
    (weights, inputs, and the most activations alive at once), and the per-scope rows."""

    model: str
    batch: int
    steps: int | None
    precision: str
    optimizer: str
    device: str
    weights: int
    buffers: int
    gradients: int
    optimizer_state: int
    inputs: int
    kept: int
    training_peak: int
    inference_peak: int
    rows: tuple[MemoryRow, ...] = field(repr=False)
    phase: str = "forward"
    """When the training peak is reached: forward, backward or optimizer step."""
    parts: tuple[tuple[str, int], ...] = ()
    """What the training peak holds besides weights, optimizer state and inputs, then."""
    global_column: int | None = None
    """With drop-path, the column a global draw computes at its largest (the deepest)..."""
    global_peak: int | None = None
    """... and the training peak of such a step; the peak above is a local draw's that keeps
    every path, which can happen."""

    def as_json(self) -> dict[str, Any]:
        """The estimate as JSON-ready data (`ssnc info --memory --json`)."""
        return {"model": self.model, "batch": self.batch, "steps": self.steps,
                "precision": self.precision, "optimizer": self.optimizer,
                "device": self.device,
                "weights": self.weights, "buffers": self.buffers,
                "gradients": self.gradients, "optimizer_state": self.optimizer_state,
                "inputs": self.inputs, "kept_for_backward": self.kept,
                "training_peak": self.training_peak, "inference_peak": self.inference_peak,
                "training_peak_phase": self.phase, "training_peak_parts": dict(self.parts),
                "global_draw": None if self.global_column is None else {
                    "column": self.global_column, "training_peak": self.global_peak},
                "scopes": [r.as_json() for r in self.rows]}


class _Sizes:
    """Element counts and bytes of values at a batch size and sequence length."""

    def __init__(self, batch: int, steps: int, precision: str, device: str):
        self.batch, self.steps, self.float = batch, steps, FLOAT_BYTES[precision]
        self.extra = {"mask": 1 if device == "cuda" else self.float, "indices": 8,
                      "temp": self.float}

    def numel(self, shape: Shape) -> int:
        """Elements of ``shape`` with `N` the batch and any other symbol (time) the steps."""
        total = 1
        for d in shape:
            if isinstance(d, int):
                total *= d
            else:
                symbol, offset = symbol_offset(d)
                total *= max(0, (self.batch if symbol == "N" else self.steps) + offset)
        return total

    def per(self, dtype: str) -> int:
        """Bytes per element of a value of ``dtype``."""
        return {"i64": 8, "bool": 1}.get(dtype, self.float)

    def of(self, node: Node) -> int:
        """Bytes of ``node``'s value (all its outputs, for a loop)."""
        shapes = node.outputs or (node.shape or (),)
        return sum(self.numel(s) for s in shapes) * self.per(node.dtype)


@dataclass
class _Pass:
    """What one replay of a graph found: the peaks of its forward and backward (activations
    only), what stays kept after its forward by storage, and each node's kept bytes."""

    forward: dict[str, int] = field(default_factory=dict)
    """What the forward's peak is made of (`Memory.parts`' names)."""
    backward: dict[str, int] = field(default_factory=dict)
    """What the backward's peak is made of."""
    kept: dict[str, int] = field(default_factory=dict)
    """Bytes kept for backward after the forward, by storage."""
    kept_by: dict[str, int] = field(default_factory=dict)
    """Kept bytes by the node that makes them (a loop's cell's, times the steps)."""
    outer: set[str] = field(default_factory=set)
    """Values of the graphs around it that it keeps (a loop's sequence, captures)."""
    kept_total: int = 0
    """The sum of ``kept``, kept as it grows."""

    @property
    def forward_peak(self) -> int:
        """The most activation bytes alive at once in the forward."""
        return sum(self.forward.values())

    @property
    def backward_peak(self) -> int:
        """The most bytes alive at once in the backward (gradients included)."""
        return sum(self.backward.values())

    def keep(self, storage: str, size: int) -> None:
        """Record ``storage`` as kept for backward, keeping the total."""
        self.kept_total += size - self.kept.get(storage, 0)
        self.kept[storage] = size


def _saved(graph: Graph, node: Node) -> tuple[Any, ...]:
    """What ``node``'s op declares it keeps for backward, on its inputs' shapes."""
    every = graph.all_nodes()
    return OPS[node.op].saved(tuple(every[i].shape or () for i in node.inputs), node.attrs)


def _alias(graph: Graph, node: Node) -> bool:
    """Whether ``node``'s value is a view of its first input's storage (or no node at all)."""
    return bool(node.inputs) and ("alias" in _saved(graph, node) or OPS[node.op].passthrough)


KEPT, LIVE, GRADIENTS, FLOWING, STEP = ("kept for backward", "other activations",
                                       "parameters' gradients", "activations' gradients",
                                       "the optimizer's step")
"""What a peak is made of, besides the weights, optimizer state and inputs."""
SEQUENCE = "#sequence"
"""What a loop's cell keeps of its step input: a view of the loop's sequence."""


class _Replay:
    """The forward and backward of one graph (a model, or a loop's cell for one step).
    ``params``: the trainable parameters whose gradients appear during this backward (the
    model's; none for a cell, whose loop counts them)."""

    def __init__(self, graph: Graph, sizes: _Sizes, train: bool, trainable: set[str],
                 params: Mapping[str, int], cell: bool = False, learn_inputs: bool = False):
        self.graph, self.sizes, self.train, self.params = graph, sizes, train, params
        self.cell, self.learn_inputs = cell, learn_inputs
        self.order = [n for n in graph.order() if not n.is_param]
        self.base: dict[str, str] = {}
        self.last: dict[str, int] = {}
        self.grad: dict[str, bool] = {}
        for i, node in enumerate(self.order):
            for name in self._reads(node):
                self.last[self.base.get(name, name)] = i
            self.base[node.name] = self.base.get(node.inputs[0], node.inputs[0]) \
                if _alias(self.graph, node) else node.name
            self.grad[node.name] = node.dtype == "f32" and (
                learn_inputs if node.is_input
                else any(self.grad.get(r, r in trainable) for r in self._reads(node)))
        for out in graph.outputs:
            self.last[self.base.get(out, out)] = len(self.order)
        self._kept_of: dict[str, dict[str, int]] = {}
        self.steps: dict[str, int] = {}
        self.inner: dict[str, _Pass] = {}
        for node in self.order:
            if node.body is not None:
                seq = self.graph[node.inputs[0]].shape or ()
                self.steps[node.name] = sizes.numel(seq[1:2])
                self.inner[node.name] = _Replay(node.body, sizes, train, trainable, {},
                                                cell=True).run()

    @staticmethod
    def _reads(node: Node) -> tuple[str, ...]:
        """Every value ``node`` reads: inputs, weights, and what its body reads around it."""
        return (*node.inputs, *node.weights, *(captures(node.body) if node.body else ()))

    def _bytes(self, name: str) -> int:
        """Bytes of the value ``name`` (0 for one outside this graph's)."""
        every = self.graph.all_nodes()
        return self.sizes.of(every[name]) if name in every else 0

    def _storage(self, name: str) -> str | None:
        """Where a kept value lives: its storage here, the loop's sequence or a value around
        (a cell's), the state's storage from the step before (a cell's state input), or None
        for the model's inputs (resident, counted apart)."""
        storage = self.base.get(name, name)
        if storage not in self.graph.inputs or self.learn_inputs:
            return storage
        position = self.graph.inputs.index(storage)
        if not self.cell:
            return None
        if position == 0:
            return SEQUENCE
        out = self.graph.outputs[position]
        return self.base.get(out, out)

    def _keeps(self, node: Node) -> dict[str, int]:
        """The storages ``node`` keeps for backward, with their bytes (extra tensors under
        `node#word`; values around a cell with no bytes, counted by the loop); worked out
        once per node, as forward and backward both ask."""
        found = self._kept_of.get(node.name)
        if found is None:
            found = self._kept_of[node.name] = self._work_out_keeps(node)
        return found

    def _work_out_keeps(self, node: Node) -> dict[str, int]:
        if not (self.train and self.grad[node.name]):
            return {}
        out = self.sizes.numel(node.shape or ())
        every = self.graph.all_nodes()
        kept: dict[str, int] = {}
        for i, word in enumerate(_saved(self.graph, node)):
            names: Sequence[str] = ()
            if isinstance(word, tuple):  # an intermediate of that shape
                kept[f"{node.name}#{i}"] = self.sizes.numel(word) * self.sizes.float
            elif word == "inputs":
                names = node.inputs
            elif isinstance(word, int) and word < len(node.inputs):
                names = (node.inputs[word],)
            elif word == "output":
                names = (node.name,)
            elif word == "weights":
                names = [w for w in node.weights if not every[w].is_param]
            elif word in self.sizes.extra:
                kept[f"{node.name}#{word}"] = out * self.sizes.extra[str(word)]
            for name in names:
                storage = self._storage(name)
                if storage is not None:
                    kept[storage] = self._bytes(storage) if storage in self.base else 0
        return kept

    def run(self) -> _Pass:
        """Replay the forward, then (training) the backward."""
        result = _Pass()
        live: dict[str, int] = {}  # values made and still read later (or kept)
        loose = 0  # the bytes of those that are not kept

        def keep(storage: str, size: int) -> None:
            nonlocal loose
            if storage not in result.kept:
                loose -= live.get(storage, 0)
            result.keep(storage, size)
        for i, node in enumerate(self.order):
            if node.is_input:
                continue
            if self.base[node.name] == node.name:
                live[node.name] = self.sizes.of(node)
                if node.name not in result.kept:  # a cell's state may be kept before made
                    loose += live[node.name]
            inner = self._loop_forward(node, result, keep)
            now = {KEPT: result.kept_total, LIVE: inner + loose}
            if sum(now.values()) > result.forward_peak:
                result.forward = now
            for storage, size in self._keeps(node).items():
                if storage in self.base or "#" in storage:
                    keep(storage, size)
                else:
                    result.outer.add(storage)
            for name in self._reads(node):
                storage = self.base.get(name, name)
                if self.last.get(storage) == i and storage not in result.kept \
                        and storage in live:
                    loose -= live.pop(storage)
        for storage, size in result.kept.items():  # each at the node that makes it
            if not storage.endswith("#steps"):
                maker = storage.split("#")[0]
                result.kept_by[maker] = result.kept_by.get(maker, 0) + size
        if self.train:
            result.backward = self._backward(result)
        return result

    def _loop_forward(self, node: Node, result: _Pass,
                      keep: Callable[[str, int], None]) -> int:
        """A loop's cell, once per step: its kept values join ``result`` (times the steps);
        returns the transient, one step's activations and the step outputs gathered."""
        if node.body is None:
            return 0
        cell, steps = self.inner[node.name], self.steps[node.name]
        per_step = sum(cell.kept.values())
        if per_step:
            keep(node.name + "#steps", per_step * steps)
            for name, size in cell.kept_by.items():
                result.kept_by[name] = result.kept_by.get(name, 0) + size * steps
        for name in cell.outer:
            storage = self._storage(node.inputs[0] if name == SEQUENCE else name)
            if storage in self.base:
                keep(storage, self._bytes(storage))
            elif storage is not None:
                result.outer.add(storage)
        return cell.forward_peak + self.sizes.of(node)

    def _backward(self, result: _Pass) -> dict[str, int]:
        """The most bytes alive at once during backward, in reverse order: kept values until
        their last holder's gradient is made, gradients in flight, the outputs the caller
        holds, and the parameters' gradients as they appear."""
        kept, kept_total = dict(result.kept), result.kept_total
        holders: dict[str, int] = {}
        for node in self.order:
            for storage in self._keeps(node):
                holders[storage] = holders.get(storage, 0) + 1
        held = sum(self._bytes(self.base[o]) for o in self.graph.outputs
                   if o in self.base and self.base[o] not in kept)
        grads = {o: self._bytes(o) for o in self.graph.outputs if self.grad.get(o)}
        flowing = sum(grads.values())
        param_grads, seen = 0, set()
        peak = {KEPT: kept_total, LIVE: held, FLOWING: flowing}
        for node in reversed(self.order):
            if node.name not in grads:
                continue
            flow, through = grads.pop(node.name), _alias(self.graph, node)
            flowing -= flow
            summed = 0  # a second gradient for an input, made and then added to the first
            for name in node.inputs:
                if not self.grad.get(name):
                    continue
                if name in grads:
                    summed += 0 if through else self._bytes(name)
                else:
                    grads[name] = self._bytes(name)
                    flowing += grads[name]
            for name in self._reads(node):
                if name in self.params and name not in seen:
                    seen.add(name)
                    param_grads += self.params[name]
            cell = self.inner.get(node.name)
            now = {KEPT: kept_total, LIVE: held, GRADIENTS: param_grads,
                   FLOWING: flowing + (0 if through else flow) + summed
                   + (cell.backward_peak if cell is not None else 0)}
            if sum(now.values()) > sum(peak.values()):
                peak = now
            for storage in (*self._keeps(node), node.name + "#steps"):
                holders[storage] = holders.get(storage, 1) - 1
                if holders[storage] == 0:
                    kept_total -= kept.pop(storage, 0)
        return peak


DEFAULT_STEPS = 64
"""The sequence length a model with a time axis is estimated at unless given."""


def _one_of(option: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else E0601 naming ``option``."""
    if isinstance(value, str) and value in allowed:
        return value
    raise error(E_OPTION, f"{spell(option)} must be one of {', '.join(allowed)}, not "
                f"{value!r}", option_span(option, str(value)),
                hint=did_you_mean(str(value), allowed) or None)


def memory(graph: Graph, batch: object = 1, *, steps: object = None,
           precision: object = "fp32", optimizer: object = "adam", device: object = "cuda",
           max_depth: int | None = None,
           column: Callable[[int], Graph] | None = None) -> Memory:
    """The estimate, once each option is checked (E0601 naming the one at fault); with
    drop-path, also a global draw's peak from ``column`` (a column's graph)."""
    options: dict[str, Any] = {
        "steps": None if steps is None else sequence_steps(graph, steps),  # type: ignore[arg-type]
        "precision": _one_of("precision", precision, tuple(FLOAT_BYTES)),
        "optimizer": _one_of("optimizer", optimizer, tuple(OPTIMIZER_STATES)),
        "device": _one_of("device", device, DEVICES)}
    found = estimate(graph, positive("batch", batch), max_depth=max_depth, **options)
    width = max((f.width for f in graph.fractals().values()), default=1)
    if column is None or width < 2 or not any(
            isinstance(rate := n.attrs.get("drop_path"), int | float) and rate > 0
            for _, n in walk(graph) if OPS[n.op].is_join):
        return found
    deepest = estimate(column(width), found.batch, max_depth=0, **options)
    return replace(found, global_column=width, global_peak=deepest.training_peak)


def estimate(graph: Graph, batch: int, *, steps: int | None = None, precision: str = "fp32",
             optimizer: str = "adam", device: str = "cuda",
             max_depth: int | None = None) -> Memory:
    """The memory of ``graph`` at batch size ``batch`` (time axes ``steps`` long) in
    ``precision``, trained with ``optimizer`` on ``device``; the caller has checked the
    options."""
    sizes = _Sizes(batch, steps or DEFAULT_STEPS, precision, device)
    tensors = graph.tensors()
    trainable = {name: spec.numel * sizes.float for name, spec in tensors.items()
                 if spec.trainable}
    train = _Replay(graph, sizes, True, set(trainable), trainable).run()
    infer = _Replay(graph, sizes, False, set(trainable), {}).run()
    weights = sum(spec.numel for spec in tensors.values()) * sizes.float
    grads = sum(trainable.values())
    state = OPTIMIZER_STATES[optimizer] * grads
    inputs = sum(sizes.of(graph[name]) for name in graph.inputs)
    # Adam's step makes sqrt(v) for one tensor at a time (CPU) or all at once (foreach)
    step = 0 if OPTIMIZER_STATES[optimizer] < 2 else grads if device == "cuda" \
        else max(trainable.values(), default=0)
    resident = weights + state + inputs
    phase, parts = max((("forward", train.forward), ("backward", train.backward),
                        ("optimizer step", {GRADIENTS: grads, STEP: step})),
                       key=lambda p: sum(p[1].values()))
    return Memory(graph.model, batch, steps or DEFAULT_STEPS if _timed(graph) else None,
                  precision, optimizer, device, weights, weights - grads, grads, state, inputs,
                  sum(train.kept.values()), resident + sum(parts.values()),
                  weights + inputs + infer.forward_peak,
                  tuple(_rows(graph, sizes, train, max_depth, OPTIMIZER_STATES[optimizer])),
                  phase, tuple((k, v) for k, v in parts.items() if v))


def kept_for_backward(graph: Graph, batch: int, *, steps: int = DEFAULT_STEPS,
                      device: str = "cpu") -> int:
    """The bytes autograd keeps in one forward of ``graph`` whose float inputs require
    gradients, the inputs counted where kept: what `ssnc.testing.check_op` measures an op's
    `saves` declaration against."""
    sizes = _Sizes(batch, steps, "fp32", device)
    trainable = {name for name, spec in graph.tensors().items() if spec.trainable}
    found = _Replay(graph, sizes, True, trainable, {}, learn_inputs=True).run()
    return sum(found.kept.values())


def kept_per_node(graph: Graph, *, steps: int = DEFAULT_STEPS) -> dict[str, int]:
    """The bytes of one sample's activations that backward keeps, by the node that makes
    them (float32; a loop's cell's times the steps): what checkpointing a region saves."""
    sizes = _Sizes(1, steps, "fp32", "cuda")
    trainable = {name for name, spec in graph.tensors().items() if spec.trainable}
    return dict(_Replay(graph, sizes, True, trainable, {}).run().kept_by)


def _timed(graph: Graph) -> bool:
    """Whether an input has a time axis of any length (so `steps` applies)."""
    return any(isinstance(d, str) and d != "N" for name in graph.inputs
               for d in graph[name].shape or ())


def _rows(graph: Graph, sizes: _Sizes, train: _Pass, max_depth: int | None,
          states: int) -> list[MemoryRow]:
    """The summary's scopes with their bytes; a loop's cell counted once per step."""
    if max_depth == 0:  # no rows asked for (a global draw's column)
        return []
    times: dict[str, int] = {}
    for _, node in walk(graph):
        if node.body is not None:
            seq = graph.all_nodes()[node.inputs[0]].shape or ()
            for _, inner in walk(node.body):
                times[inner.name] = times.get(node.name, 1) * sizes.numel(seq[1:2])
    every = graph.all_nodes()
    figures: dict[str, list[int]] = {}
    for _, node in walk(graph):
        if node.is_source:
            continue
        own = [w for w in node.weights if every[w].is_param
               and graph.first_reader(w).name == node.name]
        learned = sum(every[w].spec().numel for w in own if every[w].spec().trainable)
        stored = sum(every[w].spec().numel for w in own)
        written = 0 if _alias(graph, node) else sizes.of(node) * times.get(node.name, 1)
        values = (stored * sizes.float, learned * sizes.float,
                  states * learned * sizes.float, train.kept_by.get(node.name, 0), written)
        parts = node.name.split(".")
        for i in range(1, len(parts) + 1):
            key = ".".join(parts[:i])
            total = figures.setdefault(key, [0] * 5)
            for k, v in enumerate(values):
                total[k] += v
    return [MemoryRow(r.path, r.depth, *figures.get(r.path, [0] * 5))
            for r in summarize(graph, max_depth)]
