"""Every op, declared once: typed attributes, arity, shape rule, parameter shapes with their
initializers, and multiply-accumulate count. Backends register one lowering per op."""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from .axes import (
    BATCH,
    CHANNEL,
    OTHER,
    ROLES,
    SLIDING,
    SPATIAL,
    SPATIAL_ROLES,
    TIME,
    Axes,
    Dim,
    add_to,
    describe,
    roles_of,
)

Shape = tuple[Dim, ...]
AttrValue = int | float | bool | str | None | tuple[Any, ...]
Attrs = Mapping[str, AttrValue]

ANY_DTYPE = "any"
"""An op that reads (and, as `writes`, gives back) values of any dtype: a mask's reshape."""
DTYPE_WORDS = {"f32": "float32", "i64": "token ids (int64)", "bool": "a mask (bool)"}

REQUIRED = object()
"""Marks an attribute with no default."""


class ShapeMismatch(Exception):  # noqa: N818 (a signal to the shape pass, not an error)
    """Raised by a shape rule; the shape pass turns it into a positioned diagnostic.

    ``inputs`` names the input positions at fault so the diagnostic can point at their
    producers ("the join's other input comes from here")."""

    def __init__(self, message: str, inputs: Sequence[int] = (), hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.inputs = tuple(inputs)
        self.hint = hint


@dataclass(frozen=True)
class Range:
    """The values a numeric attribute accepts, and how a diagnostic says so."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    words: str = ""

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        v = float(value)
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below


POSITIVE = Range(1, words="positive")
NON_NEGATIVE = Range(0, words="zero or more")
PROBABILITY = Range(0, 1, high_open=True, words="a probability in [0, 1)")
POSITIVE_FINITE = Range(0, math.inf, low_open=True, high_open=True, words="positive and finite")
UNIT_INTERVAL = Range(0, 1, words="in [0, 1]")
FINITE = Range(-math.inf, math.inf, low_open=True, high_open=True, words="finite")


@dataclass(frozen=True)
class Attr:
    """An op attribute: name, accepted Python types, default (or REQUIRED), meaning, and the
    range of values it accepts (`none`, where allowed, always passes)."""

    name: str
    types: tuple[type, ...]
    default: object
    doc: str
    range: Range | None = None
    check: Callable[[object], str | None] | None = None
    """For a value of several forms (one size or one per axis; a padding mode): what the
    value must be where a given one is wrong (None: nothing is), in place of the range and
    list checks."""


class TensorValue:
    """A tensor given as an attribute: a generated weight (`conv(64, weight = k)`). The
    elaborator's wires are these; an op reads one on the weight port of that name."""

    node: str


@dataclass(frozen=True)
class ParamSpec:
    """One tensor an op instance owns: a trainable parameter or a buffer (BN statistics).

    ``init`` names an initializer in ``compiler.initializers``; ``fan_in`` feeds it;
    ``fill`` is the value of a ``constant`` one and the mean (low end) of a ``normal``
    (``uniform``) one, ``scale`` its standard deviation (width)."""

    name: str
    shape: tuple[int, ...]
    init: str
    fan_in: int = 1
    trainable: bool = True
    fill: float = 0.0
    scale: float = 1.0

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


ShapeRule = Callable[[Sequence[Shape], Attrs], Shape]


@dataclass(frozen=True)
class BodyRule:
    """How an op that owns a body graph (as ONNX's Loop or torch.fx's cond) types it:
    ``inputs`` gives the shapes of the body's inputs from the node's input shapes, ``output``
    the node's shape from its input shapes and the body's output shapes. Any may raise
    ShapeMismatch.

    With ``extra``, the node has further outputs (a loop's final states), given from the same
    shapes: its value is then a tuple (output, *extra) that only `item` nodes read (as
    torch.fx's getitem), ``Node.outputs`` holding all their shapes."""

    inputs: Callable[[Sequence[Shape], Attrs], tuple[Shape, ...]]
    output: Callable[[Sequence[Shape], Sequence[Shape], Attrs], Shape]
    extra: Callable[[Sequence[Shape], Sequence[Shape], Attrs], tuple[Shape, ...]] | None = None

ParamRule = Callable[[Sequence[Shape], Attrs], tuple[ParamSpec, ...]]
MacRule = Callable[[Sequence[Shape], Shape, Attrs], int]
ConcreteRule = Callable[[Sequence[Shape], Attrs], Attrs]
"""The attributes whose given value (`none`) stands for one worked out from the others."""
Saves = tuple["str | int | Shape", ...]
SavesRule = Saves | Callable[[Sequence["Shape"], Attrs], Saves]
"""What an op's PyTorch lowering keeps for backward, for the memory estimate: `"inputs"`
(every input), an input's position, `"output"`, `"weights"` (computed ones: a
hypernetwork's), `"mask"` (a bool of the output's size: dropout), `"indices"` (int64 of the
output's size: max pooling), `"temp"` (an intermediate of the output's size), a shape (an
intermediate of that shape: a padded copy), and `"alias"`: its output is a view of its first
input (no storage of its own). A rule gives them from the input shapes and attributes."""
SAVE_WORDS = frozenset({"inputs", "output", "weights", "mask", "indices", "temp", "alias"})


def _no_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    return ()


def _no_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    return 0


def _no_weights(attrs: Attrs) -> tuple[str, ...]:
    return ()


def _weight_bias(attrs: Attrs) -> tuple[str, ...]:
    return ("weight", "bias") if attrs["bias"] else ("weight",)


def _weight(attrs: Attrs) -> tuple[str, ...]:
    return ("weight",)


def _bn_weights(attrs: Attrs) -> tuple[str, ...]:
    return (("weight", "bias") if attrs["affine"] else ()) + ("running_mean", "running_var")


@dataclass(frozen=True)
class Origin:
    """Where an op comes from: the installed distribution that declares it (its version)
    and the module holding the declaration, which generated PyTorch source imports."""

    package: str
    version: str
    module: str

    def __str__(self) -> str:
        return f"{self.package} {self.version}" if self.version else self.package


@dataclass(frozen=True)
class OpCall:
    """One instance of an op as its lowerings and initializers see it: its node's name
    (also its state_dict prefix), concrete attributes, input shapes and dtypes, output
    shape, and the tensors it owns. Shapes are tuples whose `.roles` name each axis."""

    name: str
    attrs: Attrs
    inputs: tuple[Shape, ...]
    shape: Shape
    dtypes: tuple[str, ...]
    params: tuple[ParamSpec, ...]


ArgsRule = Callable[[OpCall], Mapping[str, Any]]


@dataclass(frozen=True)
class PerChannel:
    """An op computing weight · x + bias per output channel (a convolution, a linear), so a
    per-channel scale and shift after it fold into its weight and bias: the weight's axis of
    output channels, and the output's axis they make (from the input shape and attributes)."""

    weight_axis: int
    output_axis: Callable[[Shape, Attrs], int]


EvalAffine = Callable[[Attrs, Mapping[str, Any]], tuple[Any, Any]]
"""An op that is, in eval, a per-channel scale and shift of its input (BatchNorm): the
numpy scale and shift from its attributes and tensors (by weight port)."""


@dataclass(frozen=True)
class TorchLowering:
    """How an op runs in the generated PyTorch source: exactly one of

    - ``expr``, a template over the inputs (`{0}`, `{1}`) and values (`{name}`, Python
      literals of the attributes and of ``args``): `"torch.relu({0})"`;
    - ``function``, `"package.module:name"`, called as `name(*inputs, **args)`;
    - ``module``, `"package.module:Class"`, built once as `Class(**args)` at the node's
      path (its parameters and buffers named as the op's tensors, so they are the node's
      state_dict entries) and called as `module(*inputs)`.

    ``args`` (default: the attributes) gives the keyword values from an `OpCall`."""

    expr: str | None = None
    function: str | None = None
    module: str | None = None
    args: ArgsRule | None = None

    def values(self, call: OpCall) -> dict[str, Any]:
        """The keyword values for ``call``: ``args``, or its attributes."""
        return dict(self.args(call) if self.args is not None else call.attrs)


OnnxEmit = Callable[[Any, OpCall, Sequence[str], Sequence[str], str], None]
"""(emitter, call, input values, weight values, output value) -> None: adds the op's nodes
through the emitter the built-in lowerings use (`add`, `constant`, `fresh`, `opset`)."""


@dataclass(frozen=True)
class OnnxLowering:
    """How an op is written in ONNX: ``emit`` (standard ops through the emitter), or one
    node of ``op_type`` with attributes ``args(call)``: a standard op where ``domain`` is
    empty, else a node of the plugin's own domain at ``opset``, whose ``function`` (an
    emit over the function's inputs, weights and output) is added to the model as an ONNX
    function where one can be given (without one, a runtime needs the domain's kernel)."""

    emit: OnnxEmit | None = None
    op_type: str | None = None
    args: ArgsRule | None = None
    domain: str = ""
    opset: int = 1
    function: OnnxEmit | None = None


@dataclass(frozen=True)
class OpDecl:
    """An op's declaration. ``arity`` None means one or more inputs (joins). ``reads`` is
    the dtype of the inputs it takes (one for all, or one per input; `any`), ``writes`` its
    output's (`any`: its first input's); ``fold`` computes the op on numbers (`mean(1, 2)`);
    a ``passthrough`` op makes no node (its block is its input).

    An op with a ``body`` owns a graph of its own (``Node.body``), typed by that rule. An op
    that ``projects`` reads one output of a tuple-valued node: its shape rule is given that
    node's output shapes.
    ``weights`` names the op's weight ports for given attributes; ``params`` gives the tensor
    each port needs once input shapes are known (same names, same order). A ``source`` is a
    value the graph reads rather than computes (the model's input, a parameter): it has no
    inputs, a spec cannot call it, and backends bind it instead of lowering it; a ``stored``
    source is saved with the model (a parameter or buffer).

    ``concrete`` works out the attributes whose `none` means a value computed from the others
    (`pad` none: 'same' padding; `stride` none: the window): shape inference stores them on
    the node, so backends read concrete attributes and never work out a default again. An op
    that ``combines`` blocks as well as wires (`mul(sigmoid, tanh)`, as joins do) is applied
    to parallel branches when given blocks. An ``initial_state`` makes a loop's starting
    state (`zeros`): where only its loop reads it, summaries and pictures fold it into the
    loop."""

    name: str
    doc: str
    attrs: tuple[Attr, ...]
    shape: ShapeRule
    arity: int | None = 1
    params: ParamRule = _no_params
    macs: MacRule = _no_macs
    weights: Callable[[Attrs], tuple[str, ...]] = _no_weights
    is_join: bool = False
    reads: str | tuple[str, ...] = "f32"
    writes: str = "f32"
    fold: Callable[[Sequence[float]], float] | None = None
    passthrough: bool = False
    source: bool = False
    body: BodyRule | None = None
    projects: bool = False
    fixes: Callable[[Sequence[Shape], Attrs], object] | None = None
    concrete: ConcreteRule | None = None
    stored: bool = False
    combines: bool = False
    initial_state: bool = False
    lowerings: Mapping[str, TorchLowering | OnnxLowering] = field(default_factory=dict)
    """Lowerings declared with the op (by backend: `torch`, `onnx`); ops without them are
    lowered by their backend's own table."""
    origin: Origin | None = None
    """The plugin package that declares the op (None: ssnc's own)."""
    initializers: Mapping[str, Callable[[ParamSpec, Any], Any]] = field(default_factory=dict)
    """The op's own initializers by name: (tensor, numpy Generator) -> float32 array."""
    half: bool = True
    """Whether it runs in fp16 and bf16 (checked by `ssnc.testing.check_op`)."""
    saves: SavesRule = ("inputs",)
    """What its PyTorch lowering keeps for backward (see `Saves`); by default its inputs,
    as most ops' do."""
    eval_identity: bool = False
    """It passes its input through in eval mode (dropout): an inference module drops it."""
    per_channel: PerChannel | None = None
    eval_affine: EvalAffine | None = None
    homogeneous: bool = False
    """f(a x) = a f(x) for every a > 0 (ReLU): a scale moves through it."""
    averages: str | None = None
    """The join it is 1/N of, over its N inputs (`mean`: `sum`)."""

    def saved(self, inputs: Sequence[Shape], attrs: Attrs) -> Saves:
        """What an instance on ``inputs`` with ``attrs`` keeps for backward."""
        return self.saves(inputs, attrs) if callable(self.saves) else self.saves

    def reads_at(self, count: int) -> tuple[str, ...]:
        """The dtype each of ``count`` inputs must have (`any`: whatever it is)."""
        return self.reads if isinstance(self.reads, tuple) else (self.reads,) * count

    @property
    def takes_branches(self) -> bool:
        """Whether a call on blocks runs them in parallel and combines their outputs."""
        return self.is_join or self.combines

    @property
    def tuple_valued(self) -> bool:
        """Whether instances have several outputs, read through `item` nodes."""
        return self.body is not None and self.body.extra is not None

    @property
    def has_params(self) -> bool:
        """Whether instances read weights (and so share them under `shared`)."""
        return self.weights is not _no_weights

    def attr(self, name: str) -> Attr:
        """The attribute declaration called ``name``."""
        return next(a for a in self.attrs if a.name == name)

    @property
    def attr_names(self) -> tuple[str, ...]:
        """Attribute names in declaration (= positional) order."""
        return tuple(a.name for a in self.attrs)

    def defaults(self) -> dict[str, AttrValue]:
        """Attributes that have defaults, with their values."""
        return {a.name: a.default for a in self.attrs if a.default is not REQUIRED}  # type: ignore[misc]


def op(name: str, doc: str, *, attrs: Sequence[Attr] = (), shape: ShapeRule | None = None,
       arity: int = 1, weights: Sequence[str] | Callable[[Attrs], tuple[str, ...]] = (),
       params: ParamRule | None = None, macs: MacRule | None = None,
       reads: str | tuple[str, ...] = "f32", writes: str = "f32",
       torch: TorchLowering | None = None, onnx: OnnxLowering | None = None,
       initializers: Mapping[str, Callable[[ParamSpec, Any], Any]] | None = None,
       half: bool = True, saves: SavesRule = ("inputs",),
       homogeneous: bool = False) -> OpDecl:
    """Declare an op, as ssnc's own activations are and as a plugin's are: its name (what a
    spec calls), one-line-first documentation, typed attributes (positional in this order),
    arity, shape rule (input shapes, attributes -> output shape; default: the input's; raise
    `ShapeMismatch` for inputs it cannot take), weight ports and the tensors each needs
    (``params``: input shapes, attributes -> one `ParamSpec` per port, in order; ``init``
    names an initializer, built-in or one of ``initializers``), multiply-accumulates, input
    and output dtypes, one lowering per backend, and what the PyTorch lowering keeps for
    backward (``saves``, for the memory estimate: see `Saves`), and whether it is positively
    homogeneous (``homogeneous``: f(a x) = a f(x) for a > 0, which inference folds use).
    Nothing here imports a backend."""
    if not name.isidentifier() or name in ("true", "false", "none") or keyword.iskeyword(name):
        raise ValueError(f"an op's name is an identifier, not {name!r}")
    names = [a.name for a in attrs]
    if len(set(names)) != len(names):
        raise ValueError(f"op `{name}` declares an attribute twice: {names}")
    if torch is not None and sum(x is not None for x in (torch.expr, torch.function,
                                                          torch.module)) != 1:
        raise ValueError(f"op `{name}`'s TorchLowering needs one of expr, function, module")
    for target in (torch.function, torch.module) if torch is not None else ():
        module, colon, attr = (target or "").partition(":")
        if target is not None and not (colon and _dotted(module) and _dotted(attr)):
            raise ValueError(f"op `{name}`: {target!r} is not `package.module:name`")
    if onnx is not None and (onnx.emit is None) == (onnx.op_type is None):
        raise ValueError(f"op `{name}`'s OnnxLowering needs one of emit, op_type")
    if not callable(saves) and any(not isinstance(w, int | tuple) and w not in SAVE_WORDS
                                   for w in saves):
        raise ValueError(f"op `{name}`: saves takes {sorted(SAVE_WORDS)} or input "
                         f"positions, not {saves!r}")
    fixed = tuple(weights) if not callable(weights) else None
    if params is None and fixed:
        raise ValueError(f"op `{name}` has weight ports {fixed}: give their `params`")
    own = dict(initializers or {})

    def ported(attrs: Attrs) -> tuple[str, ...]:
        return fixed if fixed is not None else tuple(weights(attrs))  # type: ignore[operator]

    def tensors(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
        specs = tuple(params(inputs, attrs)) if params is not None else ()
        return tuple(replace(p, init=f"{name}.{p.init}") if p.init in own else p
                     for p in specs)  # the op's own initializers, by qualified name

    lowerings: dict[str, TorchLowering | OnnxLowering] = {}
    if torch is not None:
        lowerings["torch"] = torch
    if onnx is not None:
        lowerings["onnx"] = onnx
    return OpDecl(name, doc, tuple(attrs), shape or _same, arity=arity,
                  params=tensors if params is not None else _no_params,
                  macs=macs or _no_macs,
                  weights=ported if (fixed or fixed is None) else _no_weights,
                  reads=reads, writes=writes, lowerings=lowerings, initializers=own, half=half,
                  saves=saves, homogeneous=homogeneous)


def _dotted(text: str) -> bool:
    """Whether ``text`` is a dotted Python name (what generated code may import)."""
    return all(p.isidentifier() and p.isascii() and not keyword.iskeyword(p)
               for p in text.split("."))


# ---------------------------------------------------------------- shape helpers

def fmt_shape(shape: Shape, roles: bool = True) -> str:
    """`[N,64,32,32]`, with its roles where it has any (and ``roles``):
    `[N,64,32,32]{NCHW}`."""
    dims = "[" + ",".join(str(d) for d in shape) + "]"
    given = roles_of(shape)
    return f"{dims}{{{given}}}" if roles and isinstance(shape, Axes) and given.strip(OTHER) \
        else dims


def _slide(size: Dim, k: int, stride: int, pads: tuple[int, int], dilation: int, ceil: bool,
           what: str, role: str) -> Dim:
    """The output size of a window sliding over an axis of ``size``; a symbolic size (time
    of any length) stays symbolic where the stride is 1 (`T` padded causally is `T`)."""
    before, after = pads
    eff = dilation * (k - 1) + 1
    if isinstance(size, str):
        if stride != 1:
            raise ShapeMismatch(
                f"{what} with stride {stride} over the {describe(role)} axis of symbolic size "
                f"`{size}` would need its length to be a multiple of {stride}", inputs=(0,),
                hint="use stride 1 along a symbolic axis (causal or 'same' padding keeps it "
                     "as long as the input), or give the input a fixed length")
        return add_to(size, before + after - eff + 1)
    span = size + before + after - eff
    if span < 0:
        raise ShapeMismatch(
            f"{what} window {k} (padding {before + after}) does not fit in a "
            f"{describe(role)} size of {size}", inputs=(0,))
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + before:
        out -= 1  # PyTorch drops a last window that would start in the right padding
    return out


def merge_roles(shapes: Sequence[Shape], what: str) -> str:
    """The roles of a broadcast of ``shapes`` (aligned at the last axis): an axis takes the
    role its inputs give it; two inputs that give it different roles are a mismatch."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        given = [(i, roles_of(s)[axis - rank + len(s)]) for i, s in enumerate(shapes)
                 if axis - rank + len(s) >= 0]
        named = [(i, r) for i, r in given if r != OTHER]
        if len({r for _, r in named}) > 1:
            (i, a), (j, b) = named[0], next((j, r) for j, r in named if r != named[0][1])
            raise ShapeMismatch(
                f"{what} inputs give axis {axis} different roles: {describe(a)} in "
                f"{fmt_shape(shapes[i])}, {describe(b)} in {fmt_shape(shapes[j])}",
                inputs=(i, j), hint="`permute` one of them so that the axes line up")
        out.append(named[0][1] if named else OTHER)
    return "".join(out)


def broadcast(shapes: Sequence[Shape], what: str) -> Shape:
    """NumPy broadcasting over all inputs (aligned at the last axis), roles with it;
    symbolic dims must match exactly."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for axis in range(rank):
        dims = [(i, s[axis - rank + len(s)]) for i, s in enumerate(shapes)
                if axis - rank + len(s) >= 0]
        sizes = {d for _, d in dims if d != 1}
        if len(sizes) > 1:
            bad = [i for i, d in dims if d != 1]
            listing = " vs ".join(fmt_shape(shapes[i]) for i in bad[:2])
            raise ShapeMismatch(f"{what} inputs do not match: {listing}", inputs=bad[:2])
        out.append(sizes.pop() if sizes else 1)
    return Axes(out, merge_roles(shapes, what))


def axis_of(x: Shape, value: AttrValue, what: str, batch: bool = False) -> int:
    """The axis an attribute names in ``x``: a number (negative from the end) or a role
    letter (`"C"`, `"T"`); the batch axis only where ``batch``."""
    roles = roles_of(x)
    if isinstance(value, str):
        if len(value) != 1 or roles.count(value) != 1:
            found = "no" if value not in roles else "more than one"
            raise ShapeMismatch(
                f"{what}'s axis {value!r}: {fmt_shape(x)} has {found} axis of that role",
                inputs=(0,), hint="name a role it has once ("
                + ", ".join(f'"{r}"' for r in roles if r != OTHER and roles.count(r) == 1)
                + ") or give the axis by number")
        index = roles.index(value)
    else:
        assert isinstance(value, int)
        rank = len(x)
        if not -rank <= value < rank:
            raise ShapeMismatch(f"{what}'s axis {value} is not an axis of {fmt_shape(x)}",
                                inputs=(0,))
        index = value % rank
    if roles[index] == BATCH and not batch:
        raise ShapeMismatch(f"{what} cannot act on the batch axis of {fmt_shape(x)}",
                            inputs=(0,), hint="name an axis after the batch axis")
    return index


def sliding_axes(x: Shape, what: str) -> tuple[int, tuple[int, ...]]:
    """The channel axis of ``x`` and the 1 to 3 spatial or time axes a convolution or a
    pool slides over: [N, C, ...] (channels first) or [N, ..., C] (channels last, as a
    sequence [N, T, C] is)."""
    found = _sliding(roles_of(x))
    if found is None:
        raise ShapeMismatch(
            f"{what} reads a batch axis, a channel axis and 1 to 3 spatial or time axes "
            f"([N, C, L]{{NCL}}, [N, C, H, W]{{NCHW}}, [N, C, D, H, W]{{NCDHW}}, "
            f"[N, T, C]{{NTC}}), got {fmt_shape(x)}", inputs=(0,),
            hint="`permute` the axes into such a layout" if len(x) > 2
            else "a flat [N, C] has nothing to slide over")
    return found


@cache
def _sliding(roles: str) -> tuple[int, tuple[int, ...]] | None:
    """`sliding_axes` by roles alone (None: not a layout a sliding op reads), worked out
    once per layout: a convolution asks for it a dozen times."""
    sliding = tuple(i for i, r in enumerate(roles) if r in SLIDING)
    channels = [i for i, r in enumerate(roles) if r == CHANNEL]
    if (roles[:1] != BATCH or len(channels) != 1 or not 1 <= len(sliding) <= 3
            or len(roles) != 2 + len(sliding) or channels[0] not in (1, len(roles) - 1)):
        return None
    return channels[0], sliding


def per_axis(value: AttrValue, n: int) -> tuple[int, ...]:
    """An attribute given once or once per axis, as one value per axis."""
    if isinstance(value, tuple):
        return tuple(int(v) for v in value)
    assert isinstance(value, int)
    return (value,) * n


def axis_values(x: Shape, attrs: Attrs, name: str, what: str) -> tuple[int, ...]:
    """Attribute ``name`` of a sliding op, one value per axis it slides over."""
    _, sliding = sliding_axes(x, what)
    value = attrs[name]
    _count(x, value, name, what, sliding)
    return per_axis(value, len(sliding))


def _count(x: Shape, value: AttrValue, name: str, what: str, sliding: tuple[int, ...]) -> None:
    """A list attribute gives one value per axis slid over."""
    if isinstance(value, tuple) and len(value) != len(sliding):
        roles = roles_of(x)
        listed = ", ".join(describe(roles[i]) for i in sliding)
        raise ShapeMismatch(
            f"{what}'s `{name}` gives {len(value)} values, but {fmt_shape(x)} has "
            f"{len(sliding)} {'axes' if len(sliding) > 1 else 'axis'} to slide over ({listed})",
            inputs=(0,), hint=f"give one value, or one for each of the {len(sliding)}")


PAD_MODES = ("same", "valid", "causal")


def pad_pairs(x: Shape, attrs: Attrs, what: str) -> tuple[tuple[int, int], ...]:
    """A sliding op's padding, (before, after) per axis it slides over, from `pad`: none
    (half the dilated window, rounded down, each side), a number, a mode (`"same"`,
    `"valid"`, `"causal"`), or one of these (or a [before, after] pair) per axis. `"causal"`
    pads only before: along the time axis, the others 'same'; an input without one must
    have a single axis to slide over."""
    _, sliding = sliding_axes(x, what)
    roles = roles_of(x)
    ks = axis_values(x, attrs, "k", what)
    ds = axis_values(x, attrs, "dilation", what) if "dilation" in attrs else (1,) * len(ks)
    spec = attrs["pad"]
    if isinstance(spec, tuple):
        _count(x, spec, "pad", what, sliding)
        entries: tuple[object, ...] = spec
    elif spec == "causal" and len(sliding) > 1:
        times = [j for j, i in enumerate(sliding) if roles[i] == TIME]
        if not times:
            listed = ", ".join(describe(roles[i]) for i in sliding)
            raise ShapeMismatch(
                f"{what}'s causal padding needs a time axis or a single axis to slide over; "
                f"{fmt_shape(x)} has {listed}", inputs=(0,),
                hint='give one padding per axis, such as pad = ["causal", "same"]')
        entries = tuple("causal" if j in times else "same" for j in range(len(sliding)))
    else:
        entries = (spec,) * len(sliding)
    pairs = []
    for entry, k, d in zip(entries, ks, ds, strict=True):
        total = d * (k - 1)
        if entry is None:
            pairs.append(((k - 1) // 2 * d, (k - 1) // 2 * d))
        elif entry == "same":
            pairs.append((total // 2, total - total // 2))
        elif entry == "valid":
            pairs.append((0, 0))
        elif entry == "causal":
            pairs.append((total, 0))
        elif isinstance(entry, tuple):
            before, after = entry
            pairs.append((int(before), int(after)))
        else:
            assert isinstance(entry, int)
            pairs.append((entry, entry))
    return tuple(pairs)


def _pad_form(value: object) -> str | None:
    """What a sliding op's `pad` must be, where the given one is wrong (None: it is right)."""
    def size(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def entry(v: object) -> bool:
        return size(v) or v in PAD_MODES or (isinstance(v, tuple) and len(v) == 2
                                            and all(size(i) for i in v))
    if (size(value) or value in PAD_MODES
            or (isinstance(value, tuple) and 1 <= len(value) <= 3
                and all(entry(v) for v in value))):
        return None
    return ("must be a size (zero or more), a mode (\"same\", \"valid\", \"causal\"), or one "
            "of these or a [before, after] pair per axis (at most 3)")


def _sizes_form(range_: Range) -> Callable[[object], str | None]:
    """A check for an attribute given once or once per axis (1 to 3 values in ``range_``)."""
    def check(value: object) -> str | None:
        items = value if isinstance(value, tuple) else (value,)
        if (1 <= len(items) <= 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                         and v in range_ for v in items)):
            return None
        return (f"must be {range_.words} (an integer), or a list of one such value per axis "
                "(at most 3)")
    return check


def _int(attrs: Attrs, name: str) -> int:
    value = attrs[name]
    assert isinstance(value, int)
    return value


def _opt_int(attrs: Attrs, name: str, default: int) -> int:
    value = attrs.get(name)
    assert not isinstance(value, tuple)
    return default if value is None else int(value)


def _per_sample(shape: Shape) -> int:
    """Elements per sample: symbolic (batch, time) dims count once; a tensor without them (a
    generated weight) counts whole, as it is made once per forward."""
    return math.prod(d for d in shape if isinstance(d, int))


# ---------------------------------------------------------------- the ops

def _input_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    raise AssertionError("input shapes are set by the elaborator, parameter shapes by their "
                         "readers' needs")


def _conv_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    c, sliding = sliding_axes(x, "conv")
    groups = _int(attrs, "groups")
    cin = x[c]
    out = _opt_int(attrs, "out", cin if isinstance(cin, int) else 0)
    if isinstance(x[c], int) and (x[c] % groups or out % groups):
        raise ShapeMismatch(
            f"conv with groups={groups} needs channels divisible by it: in {x[c]}, out {out}",
            inputs=(0,))
    ks, ss, ds = (axis_values(x, attrs, a, "conv") for a in ("k", "stride", "dilation"))
    pads = pad_pairs(x, attrs, "conv")
    dims = list(x)
    dims[c] = out
    roles = roles_of(x)
    for j, i in enumerate(sliding):
        dims[i] = _slide(x[i], ks[j], ss[j], pads[j], ds[j], False, "conv", roles[i])
    return Axes(dims, roles)


def _conv_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    x = inputs[0]
    c, _ = sliding_axes(x, "conv")
    cin = int(x[c])
    ks, groups = axis_values(x, attrs, "k", "conv"), _int(attrs, "groups")
    out = _opt_int(attrs, "out", cin)
    fan_in = cin // groups * math.prod(ks)
    specs = [ParamSpec("weight", (out, cin // groups, *ks), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _conv_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    x = inputs[0]
    c, _ = sliding_axes(x, "conv")
    ks = axis_values(x, attrs, "k", "conv")
    return _per_sample(out) * int(x[c]) // _int(attrs, "groups") * math.prod(ks)


def channel_axis(x: Shape, what: str) -> int:
    """The one channel (feature) axis of ``x``, of known size, that `bn` normalises."""
    roles = roles_of(x)
    if roles.count(CHANNEL) != 1 or not isinstance(x[roles.index(CHANNEL)], int):
        raise ShapeMismatch(f"{what} normalises the channel axis (C), with statistics over the "
                            f"others; {fmt_shape(x)} has "
                            + ("none" if CHANNEL not in roles else "no known one"),
                            inputs=(0,), hint="`permute` or `reshape` gives axes no role; "
                            "`layernorm(axis = ...)` normalises a numbered axis")
    return roles.index(CHANNEL)


def _bn_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    channel_axis(inputs[0], "bn")
    return inputs[0]


def _layernorm_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = axis_of(x, attrs["axis"], "layernorm")
    _known(x, axis, "layernorm")
    return x


def _layernorm_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    x = inputs[0]
    d = int(x[axis_of(x, attrs["axis"], "layernorm")])
    if not attrs["affine"]:
        return ()
    return (ParamSpec("weight", (d,), "ones"), ParamSpec("bias", (d,), "zeros"))


def _affine_weights(attrs: Attrs) -> tuple[str, ...]:
    return ("weight", "bias") if attrs["affine"] else ()


def _bn_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    x = inputs[0]
    c = int(x[channel_axis(x, "bn")])
    specs = []
    if attrs["affine"]:
        specs += [ParamSpec("weight", (c,), "ones"), ParamSpec("bias", (c,), "zeros")]
    specs += [ParamSpec("running_mean", (c,), "zeros", trainable=False),
              ParamSpec("running_var", (c,), "ones", trainable=False)]
    return tuple(specs)


def _same(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    return inputs[0]


def pool_window(x: Shape, attrs: Attrs, what: str) -> tuple[tuple[int, ...], tuple[int, ...],
                                                           tuple[tuple[int, int], ...]]:
    """A pool's window, stride and padding per axis it slides over."""
    ks = axis_values(x, attrs, "k", what)
    ss = ks if attrs["stride"] is None else axis_values(x, attrs, "stride", what)
    return ks, ss, pad_pairs(x, attrs, what)


def _pool_shape(what: str) -> ShapeRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
        (x,) = inputs
        _, sliding = sliding_axes(x, what)
        ks, ss, pads = pool_window(x, attrs, what)
        ds = axis_values(x, attrs, "dilation", what) if "dilation" in attrs else (1,) * len(ks)
        roles, dims = roles_of(x), list(x)
        for j, i in enumerate(sliding):
            if pads[j][0] != pads[j][1]:
                raise ShapeMismatch(f"{what} pads both sides of an axis alike, got "
                                    f"{list(pads[j])} along its {describe(roles[i])} axis",
                                    inputs=(0,), hint="put a `pad` before it for uneven "
                                    "padding")
            if max(pads[j]) * 2 > ks[j]:
                raise ShapeMismatch(f"{what} padding {max(pads[j])} is more than half its "
                                    f"window {ks[j]}", inputs=(0,))
            dims[i] = _slide(x[i], ks[j], ss[j], pads[j], ds[j], bool(attrs["ceil"]), what,
                             roles[i])
        return Axes(dims, roles)
    return rule


def _gap_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    c, _ = sliding_axes(x, "gap")
    return Axes((x[0], x[c]), BATCH + CHANNEL)


def _flatten_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 2 or any(isinstance(d, str) for d in x[1:]):
        raise ShapeMismatch(f"flatten needs known non-batch dims, got {fmt_shape(x)}",
                            inputs=(0,))
    return Axes((x[0], math.prod(int(d) for d in x[1:])), BATCH + CHANNEL)


def _reduce_shape(what: str) -> ShapeRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
        (x,) = inputs
        axis = axis_of(x, attrs["axis"], what)  # any but the batch axis
        roles = roles_of(x)
        if attrs["keep"]:
            return Axes((*x[:axis], 1, *x[axis + 1:]), roles)
        return Axes((*x[:axis], *x[axis + 1:]), roles[:axis] + roles[axis + 1:])
    return rule


def _reduce(name: str, doc: str, saves: Saves = ()) -> OpDecl:
    return OpDecl(name, doc, (
        Attr("axis", _AXIS, REQUIRED, f"the axis reduced: {_AXIS_DOC}"),
        Attr("keep", _BOOL, False, "keep the axis with size 1")),
        _reduce_shape(name), concrete=_named_axes("axis"), saves=saves)


def linear_axis(x: Shape, attrs: Attrs, what: str = "linear") -> int:
    """The axis a `linear` maps: the one it names (any but the batch axis), else the last,
    which must then be a channel or unnamed axis (not a spatial or time axis)."""
    given = attrs.get("axis")
    axis = axis_of(x, -1 if given is None else given, what)
    role = roles_of(x)[axis]
    if given is None and role in SLIDING:
        image = len(x) > 2 and roles_of(x)[1] == CHANNEL
        raise ShapeMismatch(
            f"{what} maps the last axis, but the last axis of {fmt_shape(x)} is its "
            f"{describe(role)} axis", inputs=(0,),
            hint="insert `flatten` (or `gap`) before `linear`, or name the axis it maps "
                 '(`linear(64, axis = "C")`)' if image else
                 'name the axis it maps (`linear(64, axis = "C")`)')
    _known(x, axis, what)
    return axis


def _channels_axis(x: Shape, attrs: Attrs) -> int:
    """A convolution's output channels: axis 1."""
    return 1


def _bn_affine(attrs: Attrs, tensors: Mapping[str, Any]) -> tuple[Any, Any]:
    """BatchNorm in eval as a scale and shift per channel: gamma / sqrt(var + eps) and
    beta - mean * that (gamma 1 and beta 0 without `affine`)."""
    scale = 1.0 / (tensors["running_var"] + float(attrs["eps"])) ** 0.5  # type: ignore[arg-type]
    shift = -tensors["running_mean"] * scale
    if "weight" in tensors:
        scale = scale * tensors["weight"]
        shift = shift * tensors["weight"] + tensors["bias"]
    return scale, shift


def _linear_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = linear_axis(x, attrs)
    dims = list(x)
    dims[axis] = _int(attrs, "out")
    return Axes(dims, roles_of(x))


def _linear_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    fan_in = int(inputs[0][linear_axis(inputs[0], attrs)])
    out = _int(attrs, "out")
    specs = [ParamSpec("weight", (out, fan_in), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _linear_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    return _per_sample(out) * int(inputs[0][linear_axis(inputs[0], attrs)])


def _join_shape(what: str) -> ShapeRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
        return broadcast(inputs, what)
    return rule


def concat_axis(inputs: Sequence[Shape], attrs: Attrs) -> int:
    """The axis `concat` joins along, counted in its output (the inputs' highest rank)."""
    widest = max(inputs, key=len)
    given = attrs["axis"]
    if isinstance(given, str):
        return axis_of(widest, given, "concat")
    axis, rank = _int(attrs, "axis"), len(widest)
    if not -rank < axis < rank or axis in (0, -rank):
        raise ShapeMismatch(f"concat axis {axis} is not a feature axis of a rank-{rank} "
                            "tensor", inputs=(0,))
    return axis % rank


def concat_reference(inputs: Sequence[Shape], out: Shape, axis: int) -> int:
    """An input of a `concat` (to ``out``, along ``axis``) that has every other axis at
    full size: where others broadcast (a batch-free `param`), their sizes are read from it."""
    wide = concat_broadcasts(inputs, out, axis)
    if False in wide:
        return wide.index(False)
    raise ShapeMismatch("concat broadcasts its inputs against one that has every other axis "
                        "at full size, and none has: " + " vs ".join(fmt_shape(s)
                                                                    for s in inputs),
                        inputs=tuple(range(len(inputs))))


def concat_broadcasts(inputs: Sequence[Shape], out: Shape, axis: int) -> list[bool]:
    """For each input of a `concat`, whether it must be broadcast to the output's sizes
    outside the joined axis (a lower rank, or a size-1 axis where the output has more)."""
    axis %= len(out)
    return [len(s) != len(out) or any(d != o for j, (d, o) in enumerate(zip(s, out,
                                                                          strict=True))
                                      if j != axis) for s in inputs]


def _concat_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    """Inputs of any rank, lined up from the last axis as broadcasting does: outside the
    joined axis each broadcasts (size 1, or an axis it lacks, takes the others' size); the
    joined axis adds up."""
    axis = concat_axis(inputs, attrs)
    rank = max(len(s) for s in inputs)
    known = 0
    symbolic = None
    for i, s in enumerate(inputs):
        own = axis - (rank - len(s))
        if own < 0:
            raise ShapeMismatch(f"concat input {fmt_shape(s)} has no axis {axis} to join "
                                "along", inputs=(i,))
        size = s[own]
        if isinstance(size, str):  # one input of any length: the sum stays symbolic (T+1)
            if symbolic is not None:
                raise ShapeMismatch(f"concat joins two axes of symbolic size along axis "
                                    f"{axis} (`{symbolic}` and `{size}`); at most one may be",
                                    inputs=(i,))
            symbolic = size
            continue
        known += size
    total = known if symbolic is None else add_to(symbolic, known)
    flat = [Axes((*s[:own], 1, *s[own + 1:]), roles_of(s))
            for s in inputs for own in [axis - (rank - len(s))]]
    try:
        outside = broadcast(flat, "concat")
    except ShapeMismatch as exc:
        bad = exc.inputs or (0,)
        raise ShapeMismatch(f"concat inputs differ outside axis {axis}: "
                            + " vs ".join(fmt_shape(inputs[i]) for i in bad),
                            inputs=bad, hint="outside the joined axis, inputs must agree or "
                            "broadcast (size 1, or an axis they lack)") from None
    out = Axes((*outside[:axis], total, *outside[axis + 1:]), roles_of(outside))
    concat_reference(inputs, out, axis)  # the backends read broadcast sizes from it
    return out


def _feature_axis(shape: Shape, axis: AttrValue, what: str) -> int:
    """``axis`` of ``shape`` (a number, negative from the end, or a role letter) made
    non-negative; the batch axis (0) is not a feature axis (a batch-free tensor, a `param`,
    has every axis)."""
    if isinstance(axis, str):
        return axis_of(shape, axis, what)
    assert isinstance(axis, int)
    rank = len(shape)
    batch = roles_of(shape)[:1] == BATCH
    if not -rank <= axis < rank or (batch and axis % rank == 0):
        raise ShapeMismatch(f"{what}'s axis {axis} is not an axis after the batch axis of "
                            f"{fmt_shape(shape)}", inputs=(0,))
    return axis % rank


def _named_axes(*names: str) -> ConcreteRule:
    """Axis attributes given as role letters (`axis = "C"`), stored as numbers."""
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
        return {n: axis_of(inputs[0], attrs[n], n) for n in names
                if isinstance(attrs.get(n), str)}
    return rule


def _known(x: Shape, axis: int, what: str) -> int:
    """The size of ``x``'s ``axis``, which must be a number (not `N` or `T`)."""
    size = x[axis]
    if not isinstance(size, int):
        raise ShapeMismatch(f"{what} axis {axis} must have a known size, not `{size}`",
                            inputs=(0,))
    return size


def _slice_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = _feature_axis(x, attrs["axis"], "slice")
    size = _known(x, axis, "slice")
    start, stop = slice_bounds(size, attrs)
    if not 0 <= start < stop <= size:
        stop_text = "none" if attrs["stop"] is None else attrs["stop"]
        raise ShapeMismatch(f"slice [{attrs['start']}, {stop_text}) is empty or outside "
                            f"axis {axis} of size {size}", inputs=(0,))
    return Axes((*x[:axis], stop - start, *x[axis + 1:]), roles_of(x))


def reshape_lead(x: Shape) -> int:
    """How many leading axes a reshape keeps: the batch (and time) axes, by role."""
    roles = roles_of(x)
    lead = 0
    while lead < len(x) and roles[lead] in (BATCH, TIME):
        lead += 1
    return lead


def tensor_roles(rank: int) -> str:
    """The roles of the axes after the batch axis of a `tensor[...]` of ``rank`` sizes (and
    of what a reshape of a batch makes): features `C`, a signal `CL`, an image `CHW`, a
    volume `CDHW`; unnamed past that."""
    if rank == 1:
        return CHANNEL
    if rank - 1 in SPATIAL_ROLES:
        return CHANNEL + SPATIAL_ROLES[rank - 1]
    return OTHER * rank


def _reshape_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    lead = reshape_lead(x)
    sizes = attrs["shape"]
    assert isinstance(sizes, tuple)
    if not sizes or not all(d > 0 or d == -1 for d in sizes) or sizes.count(-1) > 1:
        shown = "[" + ", ".join(str(d) for d in sizes) + "]"
        raise ShapeMismatch(f"reshape's shape {shown} must be positive integers, at most one "
                            "of them -1 (inferred)", inputs=(0,))
    moved = [d for d in x[lead:] if not isinstance(d, int)]
    if moved:
        raise ShapeMismatch(f"reshape cannot fold the symbolic axis `{moved[0]}` of "
                            f"{fmt_shape(x)} into fixed sizes", inputs=(0,),
                            hint=f"permute `{moved[0]}` back beside the batch axis first")
    total = math.prod(int(d) for d in x[lead:])
    known = math.prod(d for d in sizes if d != -1)
    if (total % known if -1 in sizes else total != known):
        raise ShapeMismatch(f"cannot reshape the {total} features of {fmt_shape(x)} into "
                            f"{list(sizes)}", inputs=(0,))
    roles = roles_of(x)[:lead]
    given = attrs.get("roles")
    if given is not None:
        assert isinstance(given, str)
        if len(given) != len(sizes) or any(r not in ROLES or r == BATCH for r in given):
            raise ShapeMismatch(
                f"reshape's roles {given!r} must give one role for each of its "
                f"{len(sizes)} sizes, from {', '.join(describe(r) for r in ROLES[1:])}",
                inputs=(0,))
        roles += given
    elif roles == BATCH:
        roles += tensor_roles(len(sizes))
    elif roles:  # after batch and time: one axis of features, or unnamed ones
        roles += CHANNEL if len(sizes) == 1 else OTHER * len(sizes)
    else:
        roles = OTHER * len(sizes)
    return Axes((*x[:lead], *(total // known if d == -1 else d for d in sizes)), roles)


def _slice_fixes(inputs: Sequence[Shape], attrs: Attrs) -> object:
    """A slice's lowering writes its bounds."""
    (x,) = inputs
    return slice_bounds(int(x[_feature_axis(x, attrs["axis"], "slice")]), attrs)


def _reshape_fixes(inputs: Sequence[Shape], attrs: Attrs) -> object:
    """A reshape's lowering writes the sizes after the batch (and time) axes."""
    return _reshape_shape(inputs, attrs)[reshape_lead(inputs[0]):]


def _batch_lead(x: Shape) -> int:
    """1 where ``x`` has the batch axis first, 0 for a tensor without one (a `param`)."""
    return 1 if roles_of(x)[:1] == BATCH else 0


def permute_axes(x: Shape, attrs: Attrs) -> tuple[int, ...]:
    """The full permutation a `permute` applies to ``x``: the batch axis stays; the time
    axis moves like any other (attention puts it beside the features)."""
    lead = _batch_lead(x)
    order = attrs["order"]
    assert isinstance(order, tuple)
    return (*range(lead), *(lead + int(i) for i in order))


def conv_t_values(x: Shape, attrs: Attrs) -> tuple[tuple[int, ...], ...]:
    """A transposed convolution's kernel, stride, padding, output padding and dilation,
    one value per axis it slides over."""
    window = {**attrs, **_stride_is_window((x,), attrs)}
    return tuple(axis_values(x, window, a, "conv_transpose")
                 for a in ("k", "stride", "pad", "output_pad", "dilation"))


def _conv_t_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    c, sliding = sliding_axes(x, "conv_transpose")
    groups, out = _int(attrs, "groups"), _int(attrs, "out")
    if isinstance(x[c], int) and (x[c] % groups or out % groups):
        raise ShapeMismatch(f"conv_transpose with groups={groups} needs channels divisible by "
                            f"it: in {x[c]}, out {out}", inputs=(0,))
    ks, ss, ps, extras, ds = conv_t_values(x, attrs)
    roles, dims = roles_of(x), list(x)
    dims[c] = out
    for j, i in enumerate(sliding):
        k, s, pad, extra, d = ks[j], ss[j], ps[j], extras[j], ds[j]
        if extra >= s and extra >= d:
            raise ShapeMismatch(f"conv_transpose's output_pad {extra} must be below its stride "
                                f"{s}: it picks one of the {s} output sizes a stride-{s} "
                                "convolution maps to the same input size", inputs=(0,))
        size = x[i]
        if isinstance(size, str):
            if s != 1:
                raise ShapeMismatch(f"conv_transpose with stride {s} over the "
                                    f"{describe(roles[i])} axis of symbolic size `{size}` "
                                    "would multiply its length", inputs=(0,),
                                    hint="give the input a fixed length")
            dims[i] = add_to(size, d * (k - 1) - 2 * pad + extra)
            continue
        got = (size - 1) * s - 2 * pad + d * (k - 1) + 1 + extra
        if got <= 0:
            raise ShapeMismatch(f"conv_transpose's padding {pad} leaves no output from a "
                                f"{describe(roles[i])} size of {size}", inputs=(0,))
        dims[i] = got
    return Axes(dims, roles)


def _conv_t_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    x = inputs[0]
    c, _ = sliding_axes(x, "conv_transpose")
    ks = axis_values(x, attrs, "k", "conv_transpose")
    cin, groups, out = int(x[c]), _int(attrs, "groups"), _int(attrs, "out")
    fan_in = out // groups * math.prod(ks)  # PyTorch's, from the weight's second axis
    specs = [ParamSpec("weight", (cin, out // groups, *ks), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _conv_t_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    x = inputs[0]
    ks = axis_values(x, attrs, "k", "conv_transpose")
    return _per_sample(x) * _int(attrs, "out") // _int(attrs, "groups") * math.prod(ks)


UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "trilinear")
LINEAR_MODES = {"linear": 0, "bilinear": 2, "trilinear": 3}
"""Interpolating modes and the number of axes each is for (0: any)."""


def _upsample_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _, sliding = sliding_axes(x, "upsample")
    mode = attrs["mode"]
    if mode not in UPSAMPLE_MODES:
        raise ShapeMismatch(f"upsample's mode {mode!r} is not one of "
                            f"{', '.join(repr(m) for m in UPSAMPLE_MODES)}")
    if LINEAR_MODES.get(str(mode)) not in (None, 0, len(sliding)):
        raise ShapeMismatch(f"upsample's mode {mode!r} interpolates over "
                            f"{LINEAR_MODES[str(mode)]} axes, but {fmt_shape(x)} has "
                            f"{len(sliding)}", inputs=(0,),
                            hint='mode "linear" interpolates over any number of axes')
    if attrs["align_corners"] and mode not in LINEAR_MODES:
        raise ShapeMismatch("upsample's align_corners applies to the linear modes only")
    roles, dims = roles_of(x), list(x)
    if attrs["size"] is not None:
        sizes = axis_values(x, attrs, "size", "upsample")
    else:
        scales = axis_values(x, attrs, "scale", "upsample")
        sizes = tuple(0 for _ in scales)
    for j, i in enumerate(sliding):
        if attrs["size"] is not None:
            dims[i] = sizes[j]
            continue
        if isinstance(x[i], str) and scales[j] != 1:
            raise ShapeMismatch(f"upsample by {scales[j]} over the {describe(roles[i])} axis of "
                                f"symbolic size `{x[i]}` would multiply its length",
                                inputs=(0,), hint="give the input a fixed length")
        dims[i] = x[i] * scales[j] if isinstance(x[i], int) else x[i]
    return Axes(dims, roles)


def _pixel_shuffle_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if roles_of(x) != "NCHW":
        raise ShapeMismatch(f"pixel_shuffle expects an image [N, C, H, W]{{NCHW}}, got "
                            f"{fmt_shape(x)}", inputs=(0,))
    r = _int(attrs, "r")
    if isinstance(x[1], int) and x[1] % (r * r):
        raise ShapeMismatch(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got "
                            f"{x[1]}", inputs=(0,))
    c = x[1] // (r * r) if isinstance(x[1], int) else x[1]
    return Axes((x[0], c, *(d * r if isinstance(d, int) else d for d in x[2:])), roles_of(x))


def _pad_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = _feature_axis(x, attrs["axis"], "pad")
    grow = _int(attrs, "before") + _int(attrs, "after")
    return Axes((*x[:axis], add_to(x[axis], grow), *x[axis + 1:]), roles_of(x))


def _unsqueeze_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis, index = _int(attrs, "axis"), unsqueeze_axis(x, attrs)
    if not 1 <= index <= len(x):
        raise ShapeMismatch(f"unsqueeze's axis {axis} is not a place after the batch axis of "
                            f"{fmt_shape(x)}", inputs=(0,))
    roles = roles_of(x)
    return Axes((*x[:index], 1, *x[index:]), roles[:index] + OTHER + roles[index:])


def _squeeze_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    index = _feature_axis(x, attrs["axis"], "squeeze")
    if x[index] != 1:
        raise ShapeMismatch(f"squeeze removes an axis of size 1, but axis {index} of "
                            f"{fmt_shape(x)} is {x[index]}", inputs=(0,))
    roles = roles_of(x)
    return Axes((*x[:index], *x[index + 1:]), roles[:index] + roles[index + 1:])


def unsqueeze_axis(x: Shape, attrs: Attrs) -> int:
    """The output position of the axis `unsqueeze` inserts into ``x``."""
    axis = int(attrs["axis"])  # type: ignore[arg-type]
    return axis + len(x) + 1 if axis < 0 else axis


def _softmax_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = attrs["axis"]
    if axis is None and roles_of(x)[-1:] in tuple(SPATIAL):
        raise ShapeMismatch(f"softmax over {fmt_shape(x)} must name its axis: its last one is "
                            f"its {describe(roles_of(x)[-1])} axis", inputs=(0,),
                            hint='write `softmax(axis = "C")` for the channels, `-1` for the '
                            "last")
    if axis is not None:
        _feature_axis(x, axis, "softmax")
    return x


def _stochastic_depth_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    if attrs["mode"] not in ("row", "batch"):
        raise ShapeMismatch(f"stochastic_depth's mode {attrs['mode']!r} is not 'row' or "
                            "'batch'")
    if roles_of(inputs[0])[:1] != BATCH:
        raise ShapeMismatch(f"stochastic_depth drops samples of a batch, but "
                            f"{fmt_shape(inputs[0])} has no batch axis", inputs=(0,))
    return inputs[0]


def _masked_fill_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    x, mask = inputs
    out = broadcast([x, mask], "masked_fill")
    if tuple(out) != tuple(x):
        raise ShapeMismatch(f"masked_fill's mask {fmt_shape(mask)} must broadcast to its input "
                            f"{fmt_shape(x)}, not widen it", inputs=(0, 1))
    return Axes(x, roles_of(out))


def _matmul_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    a, b = inputs
    if len(a) < 2 or len(b) < 2:
        raise ShapeMismatch(f"matmul multiplies matrices (the last two axes), got "
                            f"{fmt_shape(a)} and {fmt_shape(b)}", inputs=(0, 1))
    if a[-1] != b[-2]:
        raise ShapeMismatch(f"matmul's inner dimensions differ: {fmt_shape(a)} @ "
                            f"{fmt_shape(b)} ({a[-1]} vs {b[-2]})", inputs=(0, 1),
                            hint="the first's last axis must be the second's next-to-last")
    ra, rb = roles_of(a), roles_of(b)
    lead = broadcast([Axes(a[:-2], ra[:-2]), Axes(b[:-2], rb[:-2])], "matmul")
    return Axes((*lead, a[-2], b[-1]), roles_of(lead) + ra[-2] + rb[-1])


def _matmul_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    inner = inputs[0][-1]
    return _per_sample(out) * (inner if isinstance(inner, int) else 1)


def _causal_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 3 or x[-1] != x[-2]:
        raise ShapeMismatch(f"causal_mask masks square scores [..., T, T], got {fmt_shape(x)}",
                            inputs=(0,))
    return x


def _permute_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    order = attrs["order"]
    assert isinstance(order, tuple)
    lead = _batch_lead(x)
    if sorted(order) != list(range(len(x) - lead)):
        shown = "[" + ", ".join(str(d) for d in order) + "]"
        raise ShapeMismatch(f"permute's order {shown} must list each of the {len(x) - lead} "
                            f"axes after the batch axis of {fmt_shape(x)} once (0 to "
                            f"{len(x) - lead - 1})", inputs=(0,))
    axes = permute_axes(x, attrs)
    return Axes((x[i] for i in axes), "".join(roles_of(x)[i] for i in axes))


def slice_bounds(size: int, attrs: Attrs) -> tuple[int, int]:
    """A slice's [start, stop) on an axis of ``size`` (negative counts from the end, as in
    Python; a stop of none is the end)."""
    start = _int(attrs, "start")
    stop = size if attrs["stop"] is None else _int(attrs, "stop")
    return (start + size if start < 0 else start), (stop + size if stop < 0 else stop)


def _slope_weight(attrs: Attrs) -> tuple[str, ...]:
    return ("slope",)


def _slope_param(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    return (ParamSpec("slope", (), "constant", trainable=False,
                      fill=float(attrs["slope"])),)  # type: ignore[arg-type]


def _zeros_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    return Axes((inputs[0][0], _int(attrs, "size")), roles_of(inputs[0])[:1] + CHANNEL)


def _scan_body_inputs(inputs: Sequence[Shape], attrs: Attrs) -> tuple[Shape, ...]:
    x, *states = inputs
    roles = roles_of(x)
    if len(x) != 3 or roles[:2] != BATCH + TIME:
        raise ShapeMismatch(f"scan runs over a sequence [N,T,D]{{NTC}}, got {fmt_shape(x)}",
                            inputs=(0,),
                            hint="a recurrent block reads `sequence[D]` (or `tokens[V]` after an "
                                 "embedding), not an image; a reshape makes a sequence with "
                                 "`reshape([T, D], roles = \"TC\")`")
    return (Axes((x[0], x[2]), roles[0] + roles[2]), *states)


def _scan_output(inputs: Sequence[Shape], outputs: Sequence[Shape], attrs: Attrs) -> Shape:
    x, *states = inputs
    y, *new = outputs
    if len(new) != len(states):
        raise ShapeMismatch(f"the cell returns {len(outputs)} wires; a scan with "
                            f"{len(states)} state{'s' if len(states) != 1 else ''} needs the "
                            f"step's output and {len(states)} new state"
                            f"{'s' if len(states) != 1 else ''}", inputs=(0,))
    for i, (old, got) in enumerate(zip(states, new, strict=True), 1):
        if tuple(old) != tuple(got):
            raise ShapeMismatch(f"state {i} enters the cell as {fmt_shape(old)} and leaves it "
                                f"as {fmt_shape(got)}; a state keeps its shape from step to "
                                "step", inputs=(0,))
    if len(y) < 2:
        raise ShapeMismatch(f"the cell's step output is {fmt_shape(y)}, not [N, ...]",
                            inputs=(0,))
    ry = roles_of(y)
    return Axes((y[0], x[1], *y[1:]), ry[0] + TIME + ry[1:])


def _item_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    index = _int(attrs, "index")
    if index >= len(inputs):
        raise ShapeMismatch(f"output {index} does not exist: the node has {len(inputs)}",
                            inputs=(0,))
    return inputs[index]


def _scan_finals(inputs: Sequence[Shape], outputs: Sequence[Shape],
                 attrs: Attrs) -> tuple[Shape, ...]:
    return tuple(inputs[1:])  # the states keep their shapes: _scan_output checked


def _embedding_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    return Axes((*x, _int(attrs, "dim")), roles_of(x) + CHANNEL)


def _embedding_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    return (ParamSpec("weight", (_int(attrs, "vocab"), _int(attrs, "dim")), "normal"),)


_INT, _FLOAT, _BOOL = (int,), (int, float), (bool,)
_OPT_INT = (int, type(None))
_BIAS = Attr("bias", _BOOL, True, "add a learned bias")
_GROUPS = Attr("groups", _INT, 1, "channel groups", POSITIVE)
_GENERATED = Attr("weight", (TensorValue, type(None)), None,
                  "a generated weight (a wire), read in place of a learned one")

_DROP_PATH = Attr("drop_path", _FLOAT, 0.0,
                  "local drop-path rate: each input is dropped with this probability "
                  "while training (at least one kept)", PROBABILITY)
_MERGE = Attr("merge", _BOOL, True,
              "merge with a join of the same kind that feeds it (FractalNet's joins)")


def _join(name: str, doc: str, extra: tuple[Attr, ...] = (),
          fold: Callable[[Sequence[float]], float] | None = None, saves: Saves = (),
          averages: str | None = None) -> OpDecl:
    return OpDecl(name, doc, (_DROP_PATH, _MERGE, *extra), _join_shape(name), arity=None,
                  is_join=True, fold=fold, saves=saves, averages=averages)


_ELEMENTWISE = "Element-wise; shape unchanged."


def _stride_is_window(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    return {"stride": attrs["k"]} if attrs["stride"] is None else {}


def pad_value(pairs: Sequence[tuple[int, int]]) -> AttrValue:
    """Padding as the IR stores it: one number where every side of every axis is padded
    alike, one per axis where each axis is symmetric, else a [before, after] pair per axis."""
    if all(b == a for b, a in pairs):
        sizes = tuple(b for b, _ in pairs)
        return sizes[0] if len(set(sizes)) == 1 else sizes
    return tuple(pairs)


def _concrete_pad(what: str) -> ConcreteRule:
    """`pad` none or a mode ('same', 'causal') as the numbers it stands for."""
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
        value = pad_value(pad_pairs(inputs[0], attrs, what))
        return {"pad": value} if value != attrs["pad"] else {}
    return rule


def _pool_concrete(what: str) -> ConcreteRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
        window = {**attrs, **_stride_is_window(inputs, attrs)}
        return {**_stride_is_window(inputs, attrs), **_concrete_pad(what)(inputs, window)}
    return rule


def _concat_concrete(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    """A joined axis named by its role, as its number in the output."""
    return {"axis": concat_axis(inputs, attrs)} if isinstance(attrs["axis"], str) else {}


def _last_axis(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    if attrs["axis"] is None:
        return {"axis": -1}
    return _named_axes("axis")(inputs, attrs)


_SIZES = _sizes_form(POSITIVE)
_SIZES_0 = _sizes_form(NON_NEGATIVE)
_PER_AXIS = (int, tuple)
_AXIS = (int, str)
_AXIS_DOC = "a number (negative: from the end) or a role (\"C\", \"T\", \"H\")"


def _pad_attr(default: object, doc: str) -> Attr:
    return Attr("pad", (int, str, tuple, type(None)), default, doc, check=_pad_form)


_POOL_ATTRS = (
    Attr("k", _PER_AXIS, 2, "window", check=_SIZES),
    Attr("stride", (int, tuple, type(None)), None, "stride", check=_SIZES),
    _pad_attr(0, "implicit padding: a size, \"same\", or one per axis"),
    Attr("ceil", _BOOL, False, "ceil mode"),
)

from .activations import ACTIVATIONS  # noqa: E402 (declared through `op`, above)

OPS: dict[str, OpDecl] = {
    op.name: op
    for op in (
        OpDecl("input", "The model's input tensor.",
               (Attr("vocab", _OPT_INT, None, "token ids are below this (`tokens[vocab]`)",
                     POSITIVE),), _input_shape, arity=0, source=True, saves=()),
        OpDecl(
            "param",
            "A learned tensor (a parameter, or a buffer such as BN statistics) that ops read "
            "on their weight ports; its shape is what its first reader needs. A `param(...)` "
            "value (role `value`) has the shape the spec gives and may be read on any port.",
            (Attr("role", (str,), REQUIRED, "the weight port it was made for (`weight`), or "
                  "`value`"),
             Attr("init", (str,), "zeros", "initializer (compiler/initializers.py)"),
             Attr("fan_in", _INT, 1, "fan-in the initializer scales by", POSITIVE),
             Attr("trainable", _BOOL, True, "a parameter (true) or a buffer (false)"),
             Attr("fill", _FLOAT, 0.0, "a `constant`'s value, a `normal`'s mean"),
             Attr("scale", _FLOAT, 1.0, "a `normal`'s standard deviation, a `uniform`'s "
                  "width")),
            _input_shape, arity=0, source=True, stored=True, saves=(),
        ),
        OpDecl(
            "conv",
            "Convolution over the input's 1, 2 or 3 spatial or time axes (its rank says "
            "which); `k`, `stride`, `dilation` and `pad` take one value or one per axis. "
            "`out` none keeps the channel count; `pad` none pads half the window each side "
            "(the size kept for odd `k`), `\"same\"` keeps it for any `k`, `\"causal\"` "
            "pads only before, along time.",
            (
                Attr("out", _OPT_INT, None, "output channels", POSITIVE),
                Attr("k", _PER_AXIS, 3, "kernel size", check=_SIZES),
                Attr("stride", _PER_AXIS, 1, "stride", check=_SIZES),
                _pad_attr(None, "zero padding: a size each side, \"same\", \"valid\", "
                          "\"causal\", or one of these or a [before, after] pair per axis"),
                _BIAS,
                _GROUPS,
                Attr("dilation", _PER_AXIS, 1, "kernel dilation", check=_SIZES),
                _GENERATED,
            ),
            _conv_shape, params=_conv_params, macs=_conv_macs, weights=_weight_bias,
            concrete=_concrete_pad("conv"), saves=("inputs", "weights"),
            per_channel=PerChannel(0, _channels_axis),
        ),
        OpDecl(
            "conv_transpose",
            "Transposed convolution (learned upsampling) over 1, 2 or 3 axes: size (S - 1) "
            "stride - 2 pad + dilation (k - 1) + 1 + output_pad along each; `stride` none "
            "means `k`; each size takes one value or one per axis.",
            (
                Attr("out", _INT, REQUIRED, "output channels", POSITIVE),
                Attr("k", _PER_AXIS, 2, "kernel size", check=_SIZES),
                Attr("stride", (int, tuple, type(None)), None, "stride (none: k)",
                     check=_SIZES),
                Attr("pad", _PER_AXIS, 0, "padding removed from each side", check=_SIZES_0),
                Attr("output_pad", _PER_AXIS, 0, "added to one side, below the stride",
                     check=_SIZES_0),
                _BIAS,
                _GROUPS,
                Attr("dilation", _PER_AXIS, 1, "kernel dilation", check=_SIZES),
            ),
            _conv_t_shape, params=_conv_t_params, macs=_conv_t_macs, weights=_weight_bias,
            concrete=_stride_is_window, saves=("inputs", "weights"),
            per_channel=PerChannel(1, _channels_axis),
        ),
        OpDecl(
            "upsample",
            "Resize the 1, 2 or 3 spatial axes by an integer `scale` (or to `size`), each one "
            "value or one per axis: nearest, or linear (`\"bilinear\"` for 2 axes, "
            "`\"trilinear\"` for 3) with `align_corners` as PyTorch's.",
            (Attr("scale", _PER_AXIS, 2, "the factor", check=_SIZES),
             Attr("mode", (str,), "nearest", "`\"nearest\"`, `\"linear\"`, `\"bilinear\"` "
                  "or `\"trilinear\"`"),
             Attr("align_corners", _BOOL, False, "linear modes: corner pixels aligned"),
             Attr("size", (int, tuple, type(None)), None, "the output's sizes (none: by "
                  "scale)", check=_SIZES)),
            _upsample_shape, saves=(),
        ),
        OpDecl("pad", "Constant padding of one axis after the batch axis (channels by default): "
               "`before` and `after` positions of `value` (ResNet's parameter-free "
               "shortcut pads channels with zeros). A symbolic axis grows symbolically "
               "(`pad(2, axis = \"T\")` makes `T` into `T+2`).",
               (Attr("before", _INT, 0, "positions added before", NON_NEGATIVE),
                Attr("after", _INT, 0, "positions added after", NON_NEGATIVE),
                Attr("axis", _AXIS, 1, f"the axis: {_AXIS_DOC}"),
                Attr("value", _FLOAT, 0.0, "the padding value", FINITE)),
               _pad_shape, concrete=_named_axes("axis"), saves=()),
        OpDecl("unsqueeze", "A new axis of size 1 at `axis` (counted in the output): "
               "`unsqueeze(-1)` makes [N, C] into [N, C, 1]. Any dtype (a mask too).",
               (Attr("axis", _INT, REQUIRED, "where the new axis goes (-1: last)"),),
               _unsqueeze_shape, reads=ANY_DTYPE, writes=ANY_DTYPE, saves=("alias",)),
        OpDecl("squeeze", "Removes `axis`, which must have size 1. Any dtype.",
               (Attr("axis", _AXIS, REQUIRED, f"the axis: {_AXIS_DOC}"),), _squeeze_shape,
               concrete=_named_axes("axis"), reads=ANY_DTYPE, writes=ANY_DTYPE,
               saves=("alias",)),
        OpDecl("pad_mask", "Where token ids are the padding id `pad`: a mask (bool) of their "
               "shape, true at padded positions, for attention's key-padding mask.",
               (Attr("pad", _INT, 0, "the padding token's id", NON_NEGATIVE),), _same,
               reads="i64", writes="bool", saves=()),
        OpDecl("masked_fill", "Its first input where the mask (its second, broadcast to it) is "
               "false, `value` where it is true (-inf: a masked attention score).",
               (Attr("value", _FLOAT, -math.inf, "the value put where the mask is true"),),
               _masked_fill_shape, arity=2, reads=("f32", "bool"), saves=(1,)),
        OpDecl("pixel_shuffle", "[N, C r^2, H, W] -> [N, C, H r, W r] (sub-pixel convolution).",
               (Attr("r", _INT, 2, "the factor", POSITIVE),), _pixel_shuffle_shape, saves=()),
        OpDecl(
            "bn",
            "Batch normalisation of the channel axis (C, wherever it is: [N, C, H, W], "
            "[N, T, C]), with statistics over the others.",
            (
                Attr("affine", _BOOL, True, "learned scale and shift"),
                Attr("eps", _FLOAT, 1e-5, "added to the variance", POSITIVE_FINITE),
                Attr("momentum", _FLOAT, 0.1, "running-statistics update rate", UNIT_INTERVAL),
            ),
            _bn_shape, params=_bn_params, weights=_bn_weights, eval_affine=_bn_affine,
        ),
        OpDecl(
            "layernorm",
            "Layer normalisation over one axis (Ba et al. 2016), the last by default "
            "(`axis = \"C\"` normalises an image's channels at each position, as ConvNeXt), "
            "with a learned scale and shift when `affine`.",
            (
                Attr("affine", _BOOL, True, "learned scale and shift"),
                Attr("eps", _FLOAT, 1e-5, "added to the variance", POSITIVE_FINITE),
                Attr("axis", _AXIS, -1, f"the axis normalised: {_AXIS_DOC}"),
            ),
            _layernorm_shape, params=_layernorm_params, weights=_affine_weights,
            concrete=_named_axes("axis"),
        ),
        ACTIVATIONS["relu"],
        ACTIVATIONS["sigmoid"],
        ACTIVATIONS["tanh"],
        OpDecl("identity", "Passes its input through; creates no node.", (), _same,
               passthrough=True, saves=("alias",)),
        OpDecl("softmax", "Softmax over `axis` (none: the last, which must not be a spatial "
               "axis).",
               (Attr("axis", (int, str, type(None)), None, f"the axis (none: the last): "
                     f"{_AXIS_DOC}"),), _softmax_shape,
               concrete=_last_axis, saves=("output",)),
        ACTIVATIONS["gelu"],
        ACTIVATIONS["clip"],
        ACTIVATIONS["leaky_relu"],
        OpDecl("dropout", "Dropout while training; identity in eval.",
               (Attr("p", _FLOAT, 0.5, "drop probability", PROBABILITY),), _same,
               saves=lambda _, a: ("mask",) if a["p"] else ("alias",), eval_identity=True),
        OpDecl("stochastic_depth", "Stochastic depth (Huang et al. 2016), for a residual "
               "branch: while training, each sample's input is zeroed with probability `p` "
               "and kept scaled by 1 / (1 - p) (timm's DropPath; torchvision's "
               "StochasticDepth); identity in eval. `mode = \"batch\"` draws once for the "
               "whole batch.",
               (Attr("p", _FLOAT, 0.0, "drop probability", PROBABILITY),
                Attr("mode", (str,), "row", "`\"row\"` (per sample) or `\"batch\"`")),
               _stochastic_depth_shape, saves=lambda _, a: () if a["p"] else ("alias",),
               eval_identity=True),
        OpDecl(
            "maxpool",
            "Max pooling over 1, 2 or 3 spatial or time axes; `stride` none means `k`; "
            "`ceil` lets windows overhang the edge.",
            (*_POOL_ATTRS, Attr("dilation", _PER_AXIS, 1, "window dilation", check=_SIZES)),
            _pool_shape("maxpool"), concrete=_pool_concrete("maxpool"),
            saves=("inputs", "indices"),
        ),
        OpDecl(
            "avgpool",
            "Average pooling; arguments as `maxpool`. Padding is not counted in the "
            "average unless `count_pad` (PyTorch's `count_include_pad`, whose default is "
            "true).",
            (*_POOL_ATTRS, Attr("count_pad", _BOOL, False,
                                "count the padding in the average (count_include_pad)")),
            _pool_shape("avgpool"), concrete=_pool_concrete("avgpool"),
        ),
        OpDecl("gap", "Global average pooling over every spatial or time axis: [N, C, H, W] "
               "-> [N, C] (and [N, C, L], [N, C, D, H, W], [N, T, C]).", (), _gap_shape, saves=()),
        OpDecl("flatten", "[N, ...] -> [N, product].", (), _flatten_shape, saves=("alias",)),
        _reduce("reduce_mean", "The mean over one axis (a number or a role: `reduce_mean(\"T\")` "
                "pools a sequence over time), the axis removed unless `keep`."),
        _reduce("reduce_sum", "The sum over one axis, as `reduce_mean`."),
        _reduce("reduce_max", "The maximum over one axis, as `reduce_mean`.",
                saves=("inputs", "output")),
        OpDecl(
            "linear",
            "Fully connected layer over one axis of any rank: the last (a channel or "
            "unnamed axis), or `axis`.",
            (Attr("out", _INT, REQUIRED, "output features", POSITIVE), _BIAS, _GENERATED,
             Attr("axis", (int, str, type(None)), None, f"the axis it maps (none: the last): "
                  f"{_AXIS_DOC}")),
            _linear_shape, params=_linear_params, macs=_linear_macs, weights=_weight_bias,
            concrete=_named_axes("axis"), saves=("inputs", "weights"),
            per_channel=PerChannel(0, linear_axis),
        ),
        OpDecl(
            "embedding",
            "Token ids [N, T] -> vectors [N, T, dim].",
            (Attr("vocab", _INT, REQUIRED, "vocabulary size", POSITIVE),
             Attr("dim", _INT, REQUIRED, "vector size", POSITIVE)),
            _embedding_shape, params=_embedding_params, weights=_weight, reads="i64",
        ),
        _join("mean", "Element-wise mean of its inputs (FractalNet's join).",
              fold=lambda xs: sum(xs) / len(xs), averages="sum"),
        _join("sum", "Element-wise sum of its inputs (`a + b` on wires).", fold=sum),
        _join("max", "Element-wise maximum of its inputs.", fold=max, saves=("inputs",)),
        OpDecl("concat", "Concatenation along `axis` (channels by default).",
               (_MERGE, Attr("axis", _AXIS, 1, f"axis to join along: {_AXIS_DOC}")),
               _concat_shape, arity=None, is_join=True, concrete=_concat_concrete, saves=()),
        OpDecl("mul", "Element-wise product (`a * b` on wires, `mul(f, g)` on blocks), with "
               "broadcasting.", (), _join_shape("mul"), arity=2, combines=True),
        OpDecl("div", "Element-wise quotient (`a / b` on wires), with broadcasting.", (),
               _join_shape("div"), arity=2),
        OpDecl("matmul", "Matrix product over the last two axes, batched (and broadcast) over "
               "the others: [..., n, k] @ [..., k, m] -> [..., n, m].", (), _matmul_shape,
               arity=2, macs=_matmul_macs),
        OpDecl("causal_mask", "Scores [..., T, T] with each query's future keys (column > row) "
               "at -inf, for causal attention.", (), _causal_shape, saves=()),
        OpDecl("sub", "Element-wise difference (`a - b` on wires), with broadcasting.", (),
               _join_shape("sub"), arity=2, saves=()),
        OpDecl("affine", "`scale * x + shift`: what `x * 0.5`, `1 - x` or `-x` make on a wire.",
               (Attr("scale", _FLOAT, 1.0, "factor", FINITE),
                Attr("shift", _FLOAT, 0.0, "added after scaling", FINITE)), _same, saves=()),
        OpDecl("hard_sigmoid", "`max(0, min(1, (slope * x + 1) / 2))` (HM-RNN's boundary "
               "detector; a larger slope is closer to a step). The slope is a buffer that "
               "starts at `slope`, so training can anneal it without recompiling.",
               (Attr("slope", _FLOAT, 1.0, "initial slope of the linear part",
                     POSITIVE_FINITE),), _same,
               params=_slope_param, weights=_slope_weight, saves=("temp",)),
        OpDecl("step", "Straight-through step: 1 where x > 0.5, else 0; its gradient is "
               "the identity (Bengio et al. 2013), so what feeds it still learns.", (), _same,
               saves=()),
        OpDecl("zeros", "A [N, size] tensor of zeros, N from its input: a zero initial state.",
               (Attr("size", _INT, REQUIRED, "features", POSITIVE),), _zeros_shape,
               initial_state=True, saves=()),
        OpDecl("scan", "Applies its body (a cell) at every step of a sequence [N, T, D]: the "
               "body reads the step's input and the states (inputs 2.. give their initial "
               "values) and returns the step's output and the new states; the node's value "
               "is the tuple (the step outputs [N, T, ...], each state's final value), which "
               "`item` nodes read.",
               (Attr("reverse", _BOOL, False, "run from the last step to the first"),),
               _input_shape, arity=None,
               body=BodyRule(_scan_body_inputs, _scan_output, _scan_finals), saves=()),
        OpDecl("item", "Output `index` of a node with several (0: a scan's step outputs, "
               "1..: its states' final values).",
               (Attr("index", _INT, REQUIRED, "which output", NON_NEGATIVE),), _item_shape,
               projects=True, saves=("alias",)),
        OpDecl("slice", "Positions [start, stop) of a feature axis (negative: from the end).",
               (Attr("axis", _AXIS, -1, f"the axis: {_AXIS_DOC}"),
                Attr("start", _INT, 0, "first position"),
                Attr("stop", _OPT_INT, None, "one past the last position (none: the end)")),
               _slice_shape, fixes=_slice_fixes, concrete=_named_axes("axis"), saves=("alias",)),
        OpDecl("reshape", "The axes after the batch (and time) axis take the sizes `shape`, "
               "in row-major order; one size may be -1, inferred. `roles` names the new axes' "
               "roles (`\"TC\"`: a sequence), else they read as a `tensor[...]` type's.",
               (Attr("shape", (tuple,), REQUIRED, "the new sizes, a list such as [4, -1]"),
                Attr("roles", (str, type(None)), None, "the new axes' roles, one letter each "
                     "(none: as a `tensor[...]` of that many sizes)")),
               _reshape_shape, fixes=_reshape_fixes, saves=("alias",)),
        OpDecl("permute", "The axes after the batch (and time) axis in the order `order` "
               "(0 is the first of them): `permute([1, 0])` swaps the two.",
               (Attr("order", (tuple,), REQUIRED, "the new order of the axes, a list such as "
                     "[1, 0, 2]"),),
               _permute_shape, saves=("alias",)),
    )
}


@dataclass(frozen=True)
class InputType:
    """A model's declared input: shape with symbolic batch (and time) dims and axis roles,
    and dtype."""

    shape: Shape
    dtype: str
    vocab: int | None = None
    """Token ids are below this (a `tokens` input)."""


INPUT_TYPES: dict[str, tuple[str, str]] = {
    "tensor": ("tensor[C] features, tensor[C, L] a 1-D signal, tensor[C, H, W] an image, "
               "tensor[C, D, H, W] a volume: float, channels first", "f32"),
    "signal": ("signal[C] or signal[C, L]: a float time series [N, C, T] (or a fixed "
               "length, [N, C, L]), channels first, time last", "f32"),
    "tokens": ("tokens[vocab] or tokens[vocab, L]: int64 token ids of shape [N, T] "
               "(or a fixed length, [N, L])", "i64"),
    "sequence": ("sequence[D] or sequence[D, L]: float vectors of shape [N, T, D] "
                 "(or a fixed length, [N, L, D])", "f32"),
}


def input_type(name: str, args: Sequence[int], time_symbol: str = "T") -> InputType:
    """The input type `name[args]`; the caller has checked name and argument kinds. A
    sequence's or a signal's second size fixes its length in place of the symbolic `T`: it
    stays a time axis."""
    if name == "tensor":
        return InputType(Axes(("N", *args), BATCH + tensor_roles(len(args))), "f32")
    if len(args) > 2:
        what = {"tokens": "the vocabulary size", "sequence": "the vector size",
                "signal": "the channel count"}[name]
        raise ValueError(f"{name} takes {what} and optionally a fixed length, got "
                         f"{len(args)} sizes")
    time: Dim = args[1] if len(args) == 2 else time_symbol
    if name == "tokens":
        return InputType(Axes(("N", time), BATCH + TIME), "i64", vocab=args[0])
    if name == "signal":
        return InputType(Axes(("N", args[0], time), BATCH + CHANNEL + TIME), "f32")
    return InputType(Axes(("N", time, args[0]), BATCH + TIME + CHANNEL), "f32")
