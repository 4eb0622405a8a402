"""Every op, declared once: typed attributes, arity, shape rule, parameter shapes with their
initializers, and multiply-accumulate count. Backends register one lowering per op."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Dim = int | str
Shape = tuple[Dim, ...]
AttrValue = int | float | bool | str | None | tuple[int, ...]
Attrs = Mapping[str, AttrValue]

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
class OpDecl:
    """An op's declaration. ``arity`` None means one or more inputs (joins). ``reads`` is
    the dtype of the inputs it takes; ``fold`` computes the op on numbers (`mean(1, 2)`);
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
    reads: str = "f32"
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


# ---------------------------------------------------------------- shape helpers

def fmt_shape(shape: Shape) -> str:
    """`[N,64,32,32]`."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def _rank(shape: Shape, want: int, what: str, layout: str) -> None:
    if len(shape) != want:
        raise ShapeMismatch(
            f"{what} expects a {layout} input, got {fmt_shape(shape)}",
            inputs=(0,),
            hint="insert `flatten` before a linear layer" if want == 2 and len(shape) > 2 else None,
        )


def _spatial(size: Dim, k: int, stride: int, pad: int, dilation: int, ceil: bool,
             what: str) -> Dim:
    if isinstance(size, str):
        return size
    eff = dilation * (k - 1) + 1
    span = size + 2 * pad - eff
    if span < 0:
        raise ShapeMismatch(
            f"{what} window {k} (padding {pad}) does not fit in a spatial size of {size}",
            inputs=(0,),
        )
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1  # PyTorch drops a last window that would start in the right padding
    return out


def broadcast(shapes: Sequence[Shape], what: str) -> Shape:
    """NumPy broadcasting over all inputs; symbolic dims must match exactly."""
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
    return tuple(out)


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


def _conv_pad(attrs: Attrs) -> int:
    return _opt_int(attrs, "pad", (_int(attrs, "k") - 1) // 2 * _opt_int(attrs, "dilation", 1))


def _conv_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _rank(x, 4, "conv", "[N, C, H, W]")
    groups = _int(attrs, "groups")
    out = _opt_int(attrs, "out", x[1] if isinstance(x[1], int) else 0)
    if isinstance(x[1], int) and (x[1] % groups or out % groups):
        raise ShapeMismatch(
            f"conv with groups={groups} needs channels divisible by it: in {x[1]}, out {out}",
            inputs=(0,))
    k, s, d = _int(attrs, "k"), _int(attrs, "stride"), _int(attrs, "dilation")
    pad = _conv_pad(attrs)
    h = _spatial(x[2], k, s, pad, d, False, "conv")
    w = _spatial(x[3], k, s, pad, d, False, "conv")
    return (x[0], out, h, w)


def _conv_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    x = inputs[0]
    cin = int(x[1])
    k, groups = _int(attrs, "k"), _int(attrs, "groups")
    out = _opt_int(attrs, "out", cin)
    fan_in = cin // groups * k * k
    specs = [ParamSpec("weight", (out, cin // groups, k, k), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _conv_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    cin = int(inputs[0][1])
    k = _int(attrs, "k")
    return _per_sample(out) * cin // _int(attrs, "groups") * k * k


def _bn_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 2 or not isinstance(x[1], int):
        raise ShapeMismatch(f"bn expects [N, C, ...] with a known C, got {fmt_shape(x)}",
                            inputs=(0,))
    return x


def _layernorm_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 2 or not isinstance(x[-1], int):
        raise ShapeMismatch(f"layernorm normalises a last axis of known size, got {fmt_shape(x)}",
                            inputs=(0,))
    return x


def _layernorm_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    d = int(inputs[0][-1])
    if not attrs["affine"]:
        return ()
    return (ParamSpec("weight", (d,), "ones"), ParamSpec("bias", (d,), "zeros"))


def _affine_weights(attrs: Attrs) -> tuple[str, ...]:
    return ("weight", "bias") if attrs["affine"] else ()


def _bn_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    c = int(inputs[0][1])
    specs = []
    if attrs["affine"]:
        specs += [ParamSpec("weight", (c,), "ones"), ParamSpec("bias", (c,), "zeros")]
    specs += [ParamSpec("running_mean", (c,), "zeros", trainable=False),
              ParamSpec("running_var", (c,), "ones", trainable=False)]
    return tuple(specs)


def _same(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    return inputs[0]


def _pool_shape(what: str) -> ShapeRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
        (x,) = inputs
        _rank(x, 4, what, "[N, C, H, W]")
        k = _int(attrs, "k")
        s = _opt_int(attrs, "stride", k)
        p, ceil = _int(attrs, "pad"), bool(attrs["ceil"])
        if p * 2 > k:
            raise ShapeMismatch(f"{what} padding {p} is more than half its window {k}",
                                inputs=(0,))
        return (x[0], x[1], _spatial(x[2], k, s, p, 1, ceil, what),
                _spatial(x[3], k, s, p, 1, ceil, what))
    return rule


def _gap_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _rank(x, 4, "gap", "[N, C, H, W]")
    return (x[0], x[1])


def _flatten_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 2 or any(isinstance(d, str) for d in x[1:]):
        raise ShapeMismatch(f"flatten needs known non-batch dims, got {fmt_shape(x)}",
                            inputs=(0,))
    return (x[0], math.prod(int(d) for d in x[1:]))


def _linear_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    if len(x) < 2 or not isinstance(x[-1], int):
        raise ShapeMismatch(f"linear expects [N, ..., features], got {fmt_shape(x)}",
                            inputs=(0,))
    if len(x) == 4:
        raise ShapeMismatch(f"linear expects [N, features], got the image {fmt_shape(x)}",
                            inputs=(0,), hint="insert `flatten` (or `gap`) before `linear`")
    return (*x[:-1], _int(attrs, "out"))


def _linear_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    fan_in = int(inputs[0][-1])
    out = _int(attrs, "out")
    specs = [ParamSpec("weight", (out, fan_in), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _linear_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    return _per_sample(out) * int(inputs[0][-1])


def _join_shape(what: str) -> ShapeRule:
    def rule(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
        return broadcast(inputs, what)
    return rule


def _concat_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    axis = _int(attrs, "axis")
    rank = len(inputs[0])
    if not -rank < axis < rank or axis in (0, -rank):
        raise ShapeMismatch(f"concat axis {axis} is not a feature axis of a rank-{rank} tensor",
                            inputs=(0,))
    axis %= rank
    total = 0
    for i, s in enumerate(inputs):
        others = [d for j, d in enumerate(s) if j != axis]
        first = [d for j, d in enumerate(inputs[0]) if j != axis]
        if len(s) != rank or others != first:
            raise ShapeMismatch(
                f"concat inputs differ outside axis {axis}: "
                f"{fmt_shape(inputs[0])} vs {fmt_shape(s)}", inputs=(0, i))
        size = s[axis]
        if not isinstance(size, int):
            raise ShapeMismatch(f"concat axis {axis} must have a known size", inputs=(i,))
        total += size
    return (*inputs[0][:axis], total, *inputs[0][axis + 1:])


def _feature_axis(shape: Shape, axis: int, what: str) -> int:
    """``axis`` of ``shape`` made non-negative; the batch axis (0) is not a feature axis."""
    rank = len(shape)
    if not -rank < axis < rank or axis in (0, -rank):
        raise ShapeMismatch(f"{what}'s axis {axis} is not an axis after the batch axis of "
                            f"{fmt_shape(shape)}", inputs=(0,))
    return axis % rank


def _known(x: Shape, axis: int, what: str) -> int:
    """The size of ``x``'s ``axis``, which must be a number (not `N` or `T`)."""
    size = x[axis]
    if not isinstance(size, int):
        raise ShapeMismatch(f"{what} axis {axis} must have a known size, not `{size}`",
                            inputs=(0,))
    return size


def _slice_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = _feature_axis(x, _int(attrs, "axis"), "slice")
    size = _known(x, axis, "slice")
    start, stop = slice_bounds(size, attrs)
    if not 0 <= start < stop <= size:
        stop_text = "none" if attrs["stop"] is None else attrs["stop"]
        raise ShapeMismatch(f"slice [{attrs['start']}, {stop_text}) is empty or outside "
                            f"axis {axis} of size {size}", inputs=(0,))
    return (*x[:axis], stop - start, *x[axis + 1:])


def reshape_lead(x: Shape) -> int:
    """How many leading axes a reshape keeps: the symbolic batch (and time) axes."""
    lead = 0
    while lead < len(x) and isinstance(x[lead], str):
        lead += 1
    return lead


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
    return (*x[:lead], *(total // known if d == -1 else d for d in sizes))


def _slice_fixes(inputs: Sequence[Shape], attrs: Attrs) -> object:
    """A slice's lowering writes its bounds."""
    (x,) = inputs
    return slice_bounds(int(x[_feature_axis(x, _int(attrs, "axis"), "slice")]), attrs)


def _reshape_fixes(inputs: Sequence[Shape], attrs: Attrs) -> object:
    """A reshape's lowering writes the sizes after the batch (and time) axes."""
    return _reshape_shape(inputs, attrs)[reshape_lead(inputs[0]):]


def _batch_lead(x: Shape) -> int:
    """1 where ``x`` has the batch axis first, 0 for a tensor without one (a `param`)."""
    return 1 if x and x[0] == "N" else 0


def permute_axes(x: Shape, attrs: Attrs) -> tuple[int, ...]:
    """The full permutation a `permute` applies to ``x``: the batch axis stays; the time
    axis moves like any other (attention puts it beside the features)."""
    lead = _batch_lead(x)
    order = attrs["order"]
    assert isinstance(order, tuple)
    return (*range(lead), *(lead + int(i) for i in order))


def _conv_t_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _rank(x, 4, "conv_transpose", "[N, C, H, W]")
    groups, k, s = _int(attrs, "groups"), _int(attrs, "k"), _opt_int(attrs, "stride",
                                                                     _int(attrs, "k"))
    pad, extra, out = _int(attrs, "pad"), _int(attrs, "output_pad"), _int(attrs, "out")
    if isinstance(x[1], int) and (x[1] % groups or out % groups):
        raise ShapeMismatch(f"conv_transpose with groups={groups} needs channels divisible by "
                            f"it: in {x[1]}, out {out}", inputs=(0,))
    if extra >= s:
        raise ShapeMismatch(f"conv_transpose's output_pad {extra} must be below its stride {s}: "
                            f"it picks one of the {s} output sizes a stride-{s} convolution "
                            "maps to the same input size", inputs=(0,))

    def size(d: Dim) -> Dim:
        if isinstance(d, str):
            return d
        got = (d - 1) * s - 2 * pad + k + extra
        if got <= 0:
            raise ShapeMismatch(f"conv_transpose's padding {pad} leaves no output from a "
                                f"spatial size of {d}", inputs=(0,))
        return got
    return (x[0], out, size(x[2]), size(x[3]))


def _conv_t_params(inputs: Sequence[Shape], attrs: Attrs) -> tuple[ParamSpec, ...]:
    cin, k, groups, out = int(inputs[0][1]), _int(attrs, "k"), _int(attrs, "groups"), \
        _int(attrs, "out")
    fan_in = out // groups * k * k  # PyTorch's, from the weight's second axis
    specs = [ParamSpec("weight", (cin, out // groups, k, k), "kaiming_uniform", fan_in)]
    if attrs["bias"]:
        specs.append(ParamSpec("bias", (out,), "fan_in_uniform", fan_in))
    return tuple(specs)


def _conv_t_macs(inputs: Sequence[Shape], out: Shape, attrs: Attrs) -> int:
    x = inputs[0]
    k, groups = _int(attrs, "k"), _int(attrs, "groups")
    return _per_sample(x) * _int(attrs, "out") // groups * k * k


UPSAMPLE_MODES = ("nearest", "bilinear")


def _upsample_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _rank(x, 4, "upsample", "[N, C, H, W]")
    if attrs["mode"] not in UPSAMPLE_MODES:
        raise ShapeMismatch(f"upsample's mode {attrs['mode']!r} is not one of "
                            f"{', '.join(repr(m) for m in UPSAMPLE_MODES)}")
    if attrs["align_corners"] and attrs["mode"] != "bilinear":
        raise ShapeMismatch("upsample's align_corners applies to bilinear mode only")
    size = attrs["size"]
    if size is not None:
        return (x[0], x[1], size, size)  # type: ignore[return-value]
    scale = _int(attrs, "scale")
    return (x[0], x[1], *(d * scale if isinstance(d, int) else d for d in x[2:]))


def _pixel_shuffle_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    _rank(x, 4, "pixel_shuffle", "[N, C, H, W]")
    r = _int(attrs, "r")
    if isinstance(x[1], int) and x[1] % (r * r):
        raise ShapeMismatch(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got "
                            f"{x[1]}", inputs=(0,))
    c = x[1] // (r * r) if isinstance(x[1], int) else x[1]
    return (x[0], c, *(d * r if isinstance(d, int) else d for d in x[2:]))


def _pad_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = _feature_axis(x, _int(attrs, "axis"), "pad")
    size = _known(x, axis, "pad")
    return (*x[:axis], size + _int(attrs, "before") + _int(attrs, "after"), *x[axis + 1:])


def _unsqueeze_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis, index = _int(attrs, "axis"), unsqueeze_axis(x, attrs)
    if not 1 <= index <= len(x):
        raise ShapeMismatch(f"unsqueeze's axis {axis} is not a place after the batch axis of "
                            f"{fmt_shape(x)}", inputs=(0,))
    return (*x[:index], 1, *x[index:])


def _squeeze_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    index = _feature_axis(x, _int(attrs, "axis"), "squeeze")
    if x[index] != 1:
        raise ShapeMismatch(f"squeeze removes an axis of size 1, but axis {index} of "
                            f"{fmt_shape(x)} is {x[index]}", inputs=(0,))
    return (*x[:index], *x[index + 1:])


def unsqueeze_axis(x: Shape, attrs: Attrs) -> int:
    """The output position of the axis `unsqueeze` inserts into ``x``."""
    axis = int(attrs["axis"])  # type: ignore[arg-type]
    return axis + len(x) + 1 if axis < 0 else axis


def _softmax_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    (x,) = inputs
    axis = attrs["axis"]
    if axis is None and len(x) == 4 and all(isinstance(d, int) for d in x[1:]):
        raise ShapeMismatch(f"softmax over the image {fmt_shape(x)} must name its axis: its "
                            "last one is the width", inputs=(0,),
                            hint="write `softmax(axis = 1)` for the channels, `-1` for the last")
    if isinstance(axis, int):
        _feature_axis(x, axis, "softmax")
    return x


def _clip_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    low, high = attrs["min"], attrs["max"]
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if low > high:
        raise ShapeMismatch(f"clip's min {low:g} is above its max {high:g}")
    return inputs[0]


def _matmul_shape(inputs: Sequence[Shape], attrs: Attrs) -> Shape:
    a, b = inputs
    if len(a) < 2 or len(b) < 2:
        raise ShapeMismatch(f"matmul multiplies matrices (the last two axes), got "
                            f"{fmt_shape(a)} and {fmt_shape(b)}", inputs=(0, 1))
    if a[-1] != b[-2]:
        raise ShapeMismatch(f"matmul's inner dimensions differ: {fmt_shape(a)} @ "
                            f"{fmt_shape(b)} ({a[-1]} vs {b[-2]})", inputs=(0, 1),
                            hint="the first's last axis must be the second's next-to-last")
    return (*broadcast([a[:-2], b[:-2]], "matmul"), a[-2], b[-1])


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
    return tuple(x[i] for i in permute_axes(x, attrs))


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
    return (inputs[0][0], _int(attrs, "size"))


def _scan_body_inputs(inputs: Sequence[Shape], attrs: Attrs) -> tuple[Shape, ...]:
    x, *states = inputs
    if len(x) != 3:
        raise ShapeMismatch(f"scan runs over a sequence [N,T,D], got {fmt_shape(x)}",
                            inputs=(0,),
                            hint="a recurrent block reads `sequence[D]` (or `tokens[V]` after an "
                                 "embedding), not an image")
    return ((x[0], x[2]), *states)


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
    return (y[0], x[1], *y[1:])


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
    return (*x, _int(attrs, "dim"))


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
          fold: Callable[[Sequence[float]], float] | None = None) -> OpDecl:
    return OpDecl(name, doc, (_DROP_PATH, _MERGE, *extra), _join_shape(name), arity=None,
                  is_join=True, fold=fold)


_ELEMENTWISE = "Element-wise; shape unchanged."


def _stride_is_window(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    return {"stride": attrs["k"]} if attrs["stride"] is None else {}


def _same_padding(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    """`pad` none: (k - 1) / 2 dilated, which keeps the size for odd `k` ('same')."""
    if attrs["pad"] is not None:
        return {}
    return {"pad": (_int(attrs, "k") - 1) // 2 * _int(attrs, "dilation")}


def _last_axis(inputs: Sequence[Shape], attrs: Attrs) -> Attrs:
    return {"axis": -1} if attrs["axis"] is None else {}
_POOL_ATTRS = (
    Attr("k", _INT, 2, "window", POSITIVE),
    Attr("stride", _OPT_INT, None, "stride", POSITIVE),
    Attr("pad", _INT, 0, "implicit padding", NON_NEGATIVE),
    Attr("ceil", _BOOL, False, "ceil mode"),
)

OPS: dict[str, OpDecl] = {
    op.name: op
    for op in (
        OpDecl("input", "The model's input tensor.",
               (Attr("vocab", _OPT_INT, None, "token ids are below this (`tokens[vocab]`)",
                     POSITIVE),), _input_shape, arity=0, source=True),
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
            _input_shape, arity=0, source=True, stored=True,
        ),
        OpDecl(
            "conv",
            "2-D convolution; `out` none keeps the channel count, `pad` none pads to keep "
            "the spatial size for odd `k` ('same').",
            (
                Attr("out", _OPT_INT, None, "output channels", POSITIVE),
                Attr("k", _INT, 3, "kernel size", POSITIVE),
                Attr("stride", _INT, 1, "stride", POSITIVE),
                Attr("pad", _OPT_INT, None, "zero padding on each side", NON_NEGATIVE),
                _BIAS,
                _GROUPS,
                Attr("dilation", _INT, 1, "kernel dilation", POSITIVE),
                _GENERATED,
            ),
            _conv_shape, params=_conv_params, macs=_conv_macs, weights=_weight_bias,
            concrete=_same_padding,
        ),
        OpDecl(
            "conv_transpose",
            "2-D transposed convolution (learned upsampling): [N, C, H, W] -> [N, out, "
            "(H - 1) stride - 2 pad + k + output_pad, ...]; `stride` none means `k`.",
            (
                Attr("out", _INT, REQUIRED, "output channels", POSITIVE),
                Attr("k", _INT, 2, "kernel size", POSITIVE),
                Attr("stride", _OPT_INT, None, "stride (none: k)", POSITIVE),
                Attr("pad", _INT, 0, "padding removed from each side", NON_NEGATIVE),
                Attr("output_pad", _INT, 0, "added to one side, below the stride",
                     NON_NEGATIVE),
                _BIAS,
                _GROUPS,
            ),
            _conv_t_shape, params=_conv_t_params, macs=_conv_t_macs, weights=_weight_bias,
            concrete=_stride_is_window,
        ),
        OpDecl(
            "upsample",
            "Resize by an integer `scale` (or to `size` x `size`): nearest, or bilinear with "
            "`align_corners` as PyTorch's.",
            (Attr("scale", _INT, 2, "the factor", POSITIVE),
             Attr("mode", (str,), "nearest", "`\"nearest\"` or `\"bilinear\"`"),
             Attr("align_corners", _BOOL, False, "bilinear: corner pixels aligned"),
             Attr("size", _OPT_INT, None, "the output's height and width (none: by scale)",
                  POSITIVE)),
            _upsample_shape,
        ),
        OpDecl("pad", "Constant padding of one axis after the batch axis (channels by default): "
               "`before` and `after` positions of `value` (ResNet's parameter-free "
               "shortcut pads channels with zeros).",
               (Attr("before", _INT, 0, "positions added before", NON_NEGATIVE),
                Attr("after", _INT, 0, "positions added after", NON_NEGATIVE),
                Attr("axis", _INT, 1, "the axis (1 = channels; -1 = last)"),
                Attr("value", _FLOAT, 0.0, "the padding value", FINITE)),
               _pad_shape),
        OpDecl("unsqueeze", "A new axis of size 1 at `axis` (counted in the output): "
               "`unsqueeze(-1)` makes [N, C] into [N, C, 1].",
               (Attr("axis", _INT, REQUIRED, "where the new axis goes (-1: last)"),),
               _unsqueeze_shape),
        OpDecl("squeeze", "Removes `axis`, which must have size 1.",
               (Attr("axis", _INT, REQUIRED, "the axis (-1: last)"),), _squeeze_shape),
        OpDecl("pixel_shuffle", "[N, C r^2, H, W] -> [N, C, H r, W r] (sub-pixel convolution).",
               (Attr("r", _INT, 2, "the factor", POSITIVE),), _pixel_shuffle_shape),
        OpDecl(
            "bn",
            "Batch normalisation over the channel axis (1).",
            (
                Attr("affine", _BOOL, True, "learned scale and shift"),
                Attr("eps", _FLOAT, 1e-5, "added to the variance", POSITIVE_FINITE),
                Attr("momentum", _FLOAT, 0.1, "running-statistics update rate", UNIT_INTERVAL),
            ),
            _bn_shape, params=_bn_params, weights=_bn_weights,
        ),
        OpDecl(
            "layernorm",
            "Layer normalisation over the last axis (Ba et al. 2016), with a learned scale "
            "and shift when `affine`.",
            (
                Attr("affine", _BOOL, True, "learned scale and shift"),
                Attr("eps", _FLOAT, 1e-5, "added to the variance", POSITIVE_FINITE),
            ),
            _layernorm_shape, params=_layernorm_params, weights=_affine_weights,
        ),
        OpDecl("relu", _ELEMENTWISE, (), _same),
        OpDecl("sigmoid", _ELEMENTWISE, (), _same),
        OpDecl("tanh", _ELEMENTWISE, (), _same),
        OpDecl("identity", "Passes its input through; creates no node.", (), _same,
               passthrough=True),
        OpDecl("softmax", "Softmax over `axis` (none: the last; a rank-4 tensor must name it).",
               (Attr("axis", _OPT_INT, None, "the axis (none: the last)"),), _softmax_shape,
               concrete=_last_axis),
        OpDecl("gelu", "GELU, x Φ(x) (erf); `tanh`: PyTorch's tanh approximation.",
               (Attr("tanh", _BOOL, False, "the tanh approximation"),), _same),
        OpDecl("clip", "Clamp to [min, max] (`relu6` is `clip(0, 6)`).",
               (Attr("min", _FLOAT, REQUIRED, "lower bound", FINITE),
                Attr("max", _FLOAT, REQUIRED, "upper bound", FINITE)), _clip_shape),
        OpDecl("leaky_relu", "x where x > 0, else slope * x.",
               (Attr("slope", _FLOAT, 0.01, "the negative slope", FINITE),), _same),
        OpDecl("dropout", "Dropout while training; identity in eval.",
               (Attr("p", _FLOAT, 0.5, "drop probability", PROBABILITY),), _same),
        OpDecl(
            "maxpool",
            "2-D max pooling; `stride` none means `k`; `ceil` lets windows overhang the edge.",
            _POOL_ATTRS,
            _pool_shape("maxpool"), concrete=_stride_is_window,
        ),
        OpDecl(
            "avgpool",
            "2-D average pooling; arguments as `maxpool`. Padding is not counted in the "
            "average unless `count_pad` (PyTorch's `count_include_pad`, whose default is "
            "true).",
            (*_POOL_ATTRS, Attr("count_pad", _BOOL, False,
                                "count the padding in the average (count_include_pad)")),
            _pool_shape("avgpool"), concrete=_stride_is_window,
        ),
        OpDecl("gap", "Global average pooling: [N, C, H, W] -> [N, C].", (), _gap_shape),
        OpDecl("flatten", "[N, ...] -> [N, product].", (), _flatten_shape),
        OpDecl(
            "linear",
            "Fully connected layer over the last axis.",
            (Attr("out", _INT, REQUIRED, "output features", POSITIVE), _BIAS, _GENERATED),
            _linear_shape, params=_linear_params, macs=_linear_macs, weights=_weight_bias,
        ),
        OpDecl(
            "embedding",
            "Token ids [N, T] -> vectors [N, T, dim].",
            (Attr("vocab", _INT, REQUIRED, "vocabulary size", POSITIVE),
             Attr("dim", _INT, REQUIRED, "vector size", POSITIVE)),
            _embedding_shape, params=_embedding_params, weights=_weight, reads="i64",
        ),
        _join("mean", "Element-wise mean of its inputs (FractalNet's join).",
              fold=lambda xs: sum(xs) / len(xs)),
        _join("sum", "Element-wise sum of its inputs (`a + b` on wires).", fold=sum),
        _join("max", "Element-wise maximum of its inputs.", fold=max),
        OpDecl("concat", "Concatenation along `axis` (channels by default).",
               (_MERGE, Attr("axis", _INT, 1, "axis to join along")), _concat_shape,
               arity=None, is_join=True),
        OpDecl("mul", "Element-wise product (`a * b` on wires, `mul(f, g)` on blocks), with "
               "broadcasting.", (), _join_shape("mul"), arity=2, combines=True),
        OpDecl("div", "Element-wise quotient (`a / b` on wires), with broadcasting.", (),
               _join_shape("div"), arity=2),
        OpDecl("matmul", "Matrix product over the last two axes, batched (and broadcast) over "
               "the others: [..., n, k] @ [..., k, m] -> [..., n, m].", (), _matmul_shape,
               arity=2, macs=_matmul_macs),
        OpDecl("causal_mask", "Scores [..., T, T] with each query's future keys (column > row) "
               "at -inf, for causal attention.", (), _causal_shape),
        OpDecl("sub", "Element-wise difference (`a - b` on wires), with broadcasting.", (),
               _join_shape("sub"), arity=2),
        OpDecl("affine", "`scale * x + shift`: what `x * 0.5`, `1 - x` or `-x` make on a wire.",
               (Attr("scale", _FLOAT, 1.0, "factor", FINITE),
                Attr("shift", _FLOAT, 0.0, "added after scaling", FINITE)), _same),
        OpDecl("hard_sigmoid", "`max(0, min(1, (slope * x + 1) / 2))` (HM-RNN's boundary "
               "detector; a larger slope is closer to a step). The slope is a buffer that "
               "starts at `slope`, so training can anneal it without recompiling.",
               (Attr("slope", _FLOAT, 1.0, "initial slope of the linear part",
                     POSITIVE_FINITE),), _same,
               params=_slope_param, weights=_slope_weight),
        OpDecl("step", "Straight-through step: 1 where x > 0.5, else 0; its gradient is "
               "the identity (Bengio et al. 2013), so what feeds it still learns.", (), _same),
        OpDecl("zeros", "A [N, size] tensor of zeros, N from its input: a zero initial state.",
               (Attr("size", _INT, REQUIRED, "features", POSITIVE),), _zeros_shape,
               initial_state=True),
        OpDecl("scan", "Applies its body (a cell) at every step of a sequence [N, T, D]: the "
               "body reads the step's input and the states (inputs 2.. give their initial "
               "values) and returns the step's output and the new states; the node's value "
               "is the tuple (the step outputs [N, T, ...], each state's final value), which "
               "`item` nodes read.",
               (Attr("reverse", _BOOL, False, "run from the last step to the first"),),
               _input_shape, arity=None,
               body=BodyRule(_scan_body_inputs, _scan_output, _scan_finals)),
        OpDecl("item", "Output `index` of a node with several (0: a scan's step outputs, "
               "1..: its states' final values).",
               (Attr("index", _INT, REQUIRED, "which output", NON_NEGATIVE),), _item_shape,
               projects=True),
        OpDecl("slice", "Positions [start, stop) of a feature axis (negative: from the end).",
               (Attr("axis", _INT, -1, "the axis (1 = channels; -1 = last)"),
                Attr("start", _INT, 0, "first position"),
                Attr("stop", _OPT_INT, None, "one past the last position (none: the end)")),
               _slice_shape, fixes=_slice_fixes),
        OpDecl("reshape", "The axes after the batch (and time) axis take the sizes `shape`, "
               "in row-major order; one size may be -1, inferred.",
               (Attr("shape", (tuple,), REQUIRED, "the new sizes, a list such as [4, -1]"),),
               _reshape_shape, fixes=_reshape_fixes),
        OpDecl("permute", "The axes after the batch (and time) axis in the order `order` "
               "(0 is the first of them): `permute([1, 0])` swaps the two.",
               (Attr("order", (tuple,), REQUIRED, "the new order of the axes, a list such as "
                     "[1, 0, 2]"),),
               _permute_shape),
    )
}


@dataclass(frozen=True)
class InputType:
    """A model's declared input: shape with symbolic batch (and time) dims, and dtype."""

    shape: Shape
    dtype: str
    vocab: int | None = None
    """Token ids are below this (a `tokens` input)."""


INPUT_TYPES: dict[str, tuple[str, str]] = {
    "tensor": ("tensor[C, H, W] or tensor[D, ...]: float images or feature maps", "f32"),
    "tokens": ("tokens[vocab] or tokens[vocab, L]: int64 token ids of shape [N, T] "
               "(or a fixed length, [N, L])", "i64"),
    "sequence": ("sequence[D] or sequence[D, L]: float vectors of shape [N, T, D] "
                 "(or a fixed length, [N, L, D])", "f32"),
}


def input_type(name: str, args: Sequence[int]) -> InputType:
    """The input type `name[args]`; the caller has checked name and argument kinds. A
    sequence's second size fixes its length in place of the symbolic `T`."""
    if name == "tensor":
        return InputType(("N", *args), "f32")
    if len(args) > 2:
        what = "the vocabulary size" if name == "tokens" else "the vector size"
        raise ValueError(f"{name} takes {what} and optionally a fixed length, got "
                         f"{len(args)} sizes")
    time: Dim = args[1] if len(args) == 2 else "T"
    if name == "tokens":
        return InputType(("N", time), "i64", vocab=args[0])
    return InputType(("N", time, args[0]), "f32")
