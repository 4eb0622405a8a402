"""The built-in functions of the language (`range`, `zip`, `seq`, `shared`, `min`, ...) and the
outermost frame that holds them with the primitive ops."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ..base.diagnostics import E_ARGUMENT, E_DUPLICATE, E_FAIL, E_TYPE, E_VALUE_LIMIT, Span, error
from .axes import CHANNEL, roles_of
from .evaluate import Evaluator, chain, check_int
from .ops import OPS, fmt_shape
from .values import (
    Block,
    Builtin,
    Env,
    Init,
    NamedOutputs,
    OpCtor,
    PrimBlock,
    ScanBlock,
    SeqBlock,
    SharedBlock,
    Value,
    Wire,
    kind_of,
    show,
)

# ---------------------------------------------------------------- built-ins

Args = tuple[Value, ...]
Kwargs = Mapping[str, tuple[Value, Span]]


def _no_kwargs(name: str, kwargs: Kwargs) -> None:
    if kwargs:
        _, (_, span) = next(iter(kwargs.items()))
        raise error(E_ARGUMENT, f"`{name}` takes no keyword arguments", span)


def _ints(el: Evaluator, name: str, args: Args, spans: tuple[Span, ...], span: Span,
          lo: int, hi: int) -> list[int]:
    if not lo <= len(args) <= hi:
        raise error(E_ARGUMENT, f"`{name}` takes {lo}..{hi} arguments, got {len(args)}", span)
    out = []
    for a, s in zip(args, spans, strict=True):
        if not isinstance(a, int) or isinstance(a, bool):
            raise error(E_TYPE, f"`{name}` takes integers, got {kind_of(a)}", s)
        out.append(a)
    return out


def _list_arg(name: str, args: Args, spans: tuple[Span, ...], span: Span) -> tuple[Value, ...]:
    if len(args) != 1 or not isinstance(args[0], tuple):
        raise error(E_TYPE, f"`{name}` takes one list", spans[0] if spans else span)
    items: tuple[Value, ...] = args[0]
    return items


def _b_range(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("range", kw)
    n = _ints(el, "range", args, spans, span, 1, 3)
    if len(n) == 3 and n[2] == 0:
        raise error(E_ARGUMENT, "`range` with a step of 0", spans[2])
    r = range(*n)
    count = (r.stop - r.start + r.step + (-1 if r.step > 0 else 1)) // r.step
    if count > el.limits.max_items:
        raise error(E_VALUE_LIMIT, f"a range of {count:,} items is longer than the limit of "
                    f"{el.limits.max_items:,}", span)
    return el.new_list(tuple(r), span)


def _b_len(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("len", kw)
    return len(_list_arg("len", args, spans, span))


def _b_zip(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("zip", kw)
    for a, s in zip(args, spans, strict=True):
        if not isinstance(a, tuple):
            raise error(E_TYPE, f"`zip` takes lists, got {kind_of(a)}", s)
    lengths = {len(a) for a in args}
    if len(lengths) > 1:
        raise error(E_TYPE, f"`zip` of lists of different lengths {sorted(lengths)}", span)
    return tuple(zip(*args, strict=True))


def _b_enumerate(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
                 span: Span) -> Value:
    _no_kwargs("enumerate", kw)
    return tuple(enumerate(_list_arg("enumerate", args, spans, span), start=1))


def _b_seq(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
    _no_kwargs("seq", kw)
    items = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    item_spans = spans * len(items) if len(args) == 1 else spans
    if not items:
        return PrimBlock(OPS["identity"], (), span)
    blocks = [el.as_block(v, s) for v, s in zip(items, item_spans, strict=True)]
    out: Block = blocks[0]
    for b in blocks[1:]:
        out = chain(out, b, span)
    return out if len(blocks) > 1 else SeqBlock((out,), span)


def _b_shared(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
              span: Span) -> Value:
    _no_kwargs("shared", kw)
    if len(args) != 1:
        raise error(E_ARGUMENT, f"`shared` takes one block, got {len(args)} arguments", span)
    el.inst.effects.count += 1
    return SharedBlock(el.as_block(args[0], spans[0]), span)


def _b_scan(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
            span: Span) -> Value:
    names = ("cell", "state", "reverse", "final")
    bound = el.bind_args("scan", names, args, kw, spans, span)
    where = {**dict(zip(names, spans, strict=False)),
             **{k: s for k, (_, s) in kw.items()}}
    if "cell" not in bound:
        raise error(E_ARGUMENT, "`scan` needs a cell: `scan((x, h) => ..., state = [64])`", span)
    states = bound.get("state", ())
    if isinstance(states, int) and not isinstance(states, bool):
        states = (states,)
    if not isinstance(states, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in states):
        raise error(E_TYPE, f"`scan`'s `state` is a list of positive sizes, got "
                    f"{kind_of(states)}", where.get("state", span))
    flags = {}
    for flag in ("reverse", "final"):
        flags[flag] = bound.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise error(E_TYPE, f"`scan`'s `{flag}` is true or false, got "
                        f"{kind_of(flags[flag])}", where.get(flag, span))
    cell = el.as_block(bound["cell"], where.get("cell", span))
    return ScanBlock(cell, tuple(int(s) for s in states), bool(flags["reverse"]),
                     bool(flags["final"]), span)


def _b_outputs(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
               span: Span) -> Value:
    if args or not kw:
        raise error(E_ARGUMENT, "`outputs` names the model's outputs: "
                    "`outputs(logits = a, boundaries = b)`", spans[0] if spans else span)
    for name, (value, where) in kw.items():
        if not isinstance(value, Wire):
            raise error(E_TYPE, f"output `{name}` must be a wire, got {kind_of(value)}", where)
        if name == "input":
            raise error(E_DUPLICATE, "`input` names the model's input, not an output", where)
    return NamedOutputs(tuple(kw), tuple(v for v, _ in kw.values()), span)


def _b_repeat(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
              span: Span) -> Value:
    _no_kwargs("repeat", kw)
    if len(args) != 2 or not isinstance(args[1], int) or isinstance(args[1], bool):
        raise error(E_ARGUMENT, "`repeat` takes a block and a count", span)
    return el.repeat(el.as_block(args[0], spans[0]), args[1], span)


def _b_fail(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
            span: Span) -> Value:
    """`fail("message {} ...", values...)`: each `{}` shows the next value (no other format)."""
    _no_kwargs("fail", kw)
    if not args or not isinstance(args[0], str):
        raise error(E_ARGUMENT, "`fail` takes a message string, then the values its `{}` "
                    "show", span)
    parts = args[0].split("{}")
    if len(parts) != len(args):
        raise error(E_ARGUMENT, f"`fail`'s message has {len(parts) - 1} `{{}}` for "
                    f"{len(args) - 1} values", span)
    shown = [show(v) for v in args[1:]] + [""]
    raise error(E_FAIL, "".join(p + v for p, v in zip(parts, shown, strict=True)), span)


MAX_PARAM_ELEMENTS = 1 << 40
"""The most elements one `param(...)` value may have (as for any activation)."""


def _b_param(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
             span: Span) -> Value:
    """A learned tensor as a wire, made where it is evaluated (once per instance of the
    `=>` block it is in; a `shared` block's later instances read the first's)."""
    bound = el.bind_args("param", ("shape", "init"), args, kw, spans, span)
    if "shape" not in bound:
        raise error(E_ARGUMENT, "`param` needs a shape: `param([16, 64])`", span)
    where = kw["shape"][1] if "shape" in kw else spans[0]
    shape = bound["shape"]
    if (not isinstance(shape, tuple) or not shape
            or any(not isinstance(d, int) or isinstance(d, bool) for d in shape)):
        raise error(E_TYPE, f"`param`'s shape must be a list of integers, got {kind_of(shape)}"
                    f"{' holding something else' if isinstance(shape, tuple) and shape else ''}",
                    where, hint="write the sizes as a list: `param([16, 64])`")
    if any(d <= 0 for d in shape):
        raise error(E_TYPE, f"`param`'s shape must be positive sizes, got "
                    f"[{', '.join(str(d) for d in shape)}]", where)
    elements = 1
    for d in shape:
        elements *= d
        if elements > MAX_PARAM_ELEMENTS:
            raise error(E_VALUE_LIMIT, f"`param` of shape [{', '.join(str(d) for d in shape)}] "
                        "holds more elements than any tensor can", where)
    init = bound.get("init", Init("normal", 0.0, 1.0))
    if not isinstance(init, Init):
        raise error(E_TYPE, f"`param`'s init must be `normal(mean, std)` or "
                    f"`uniform(low, high)`, got {kind_of(init)}",
                    kw["init"][1] if "init" in kw else spans[1])
    el.inst.effects.count += 1
    return Wire(el.inst.builder.value_param(tuple(shape), init.name, init.fill, init.scale, span),
                span)


def _b_size(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
            span: Span) -> Value:
    """`size(x, axis)`: the static size of a wire's axis, read while the model is built."""
    bound = el.bind_args("size", ("x", "axis"), args, kw, spans, span)
    if "x" not in bound or "axis" not in bound:
        raise error(E_ARGUMENT, "`size` takes a wire and an axis: `size(x, 1)`", span)
    return _axis_size(el, "size", bound["x"], bound["axis"], span)


def _b_channels(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
                span: Span) -> Value:
    """`channels(x)`: the size of x's channel axis (`size(x, "C")`), axis 1 where it has
    none."""
    bound = el.bind_args("channels", ("x",), args, kw, spans, span)
    if "x" not in bound:
        raise error(E_ARGUMENT, "`channels` takes a wire: `channels(x)`", span)
    x = bound["x"]
    has = isinstance(x, Wire) and CHANNEL in roles_of(el.inst.shape_of(x, span))
    return _axis_size(el, "channels", x, CHANNEL if has else 1, span)


def _b_join_inputs(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
               span: Span) -> Value:
    """`join_inputs(y)`: the wires a join merged from nested joins reads, in its order (for
    a fractal's output, its columns, the deepest first): deep supervision's heads read them."""
    bound = el.bind_args("join_inputs", ("x",), args, kw, spans, span)
    x = bound.get("x")
    if not isinstance(x, Wire):
        raise error(E_TYPE, f"`join_inputs` reads a wire, not {kind_of(x)}", span,
                    hint="use it inside a `=>` block: "
                    "`(x) => join_inputs(fractal(3, unit)(x))`")
    return el.inst.merged_inputs(x, span)


def _axis_size(el: Evaluator, what: str, x: Value, axis: Value, span: Span) -> Value:
    if not isinstance(x, Wire):
        raise error(E_TYPE, f"`{what}` reads the shape of a wire, not {kind_of(x)}", span,
                    hint="use it inside a `=>` block: `(x) => conv(channels(x) // 2)(x)`")
    if not isinstance(axis, int | str) or isinstance(axis, bool):
        raise error(E_TYPE, f"`{what}`'s axis must be an integer or a role (\"C\"), got "
                    f"{kind_of(axis)}", span)
    shape = el.inst.shape_of(x, span)
    if isinstance(axis, str):
        roles = roles_of(shape)
        if len(axis) != 1 or roles.count(axis) != 1:
            raise error(E_TYPE, f"{fmt_shape(shape)} has no single axis of role {axis!r}",
                        span)
        axis = roles.index(axis)
    index = axis + len(shape) if axis < 0 else axis
    if not 0 <= index < len(shape):
        raise error(E_TYPE, f"axis {axis} is not an axis of [{', '.join(map(str, shape))}]",
                    span)
    dim = shape[index]
    if not isinstance(dim, int):
        meaning = {"N": "the batch size", "T": "the sequence length"}.get(dim, "symbolic")
        raise error(E_TYPE, f"axis {axis} of [{', '.join(map(str, shape))}] is `{dim}`, "
                    f"{meaning}: it has no value while the model is built", span,
                    hint="a rule can read the fixed sizes only (channels, height, width, "
                    "features)")
    return dim


def _init(name: str, first: str, second: str) -> Callable[..., Value]:
    """`normal(mean, std)` and `uniform(low, high)`: how a `param(...)` starts."""
    def make(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...],
             span: Span) -> Value:
        bound = el.bind_args(name, (first, second), args, kw, spans, span)
        a, b = (el.number(bound.get(k, d), span) for k, d in ((first, 0), (second, 1)))
        if not all(math.isfinite(v) for v in (a, b)):
            raise error(E_TYPE, f"`{name}` takes finite numbers, got {a} and {b}", span)
        if name == "normal" and b < 0:
            raise error(E_TYPE, f"`normal`'s std must be a non-negative number, got {b}", span)
        if name == "uniform" and not a <= b:
            raise error(E_TYPE, f"`uniform` needs low <= high, got {a} and {b}", span)
        return Init(name, float(a), float(b - a if name == "uniform" else b))
    return make


def _numeric(name: str, fn: Callable[..., Value], *, many: bool = False) -> Callable[..., Value]:
    """A numeric built-in of one number, or (``many``) of a list or of two or more numbers."""
    def run(el: Evaluator, args: Args, kw: Kwargs, spans: tuple[Span, ...], span: Span) -> Value:
        _no_kwargs(name, kw)
        from_list = many and len(args) == 1 and isinstance(args[0], tuple)
        if not from_list and (len(args) < 2 if many else len(args) != 1):
            want = "a list or two or more numbers" if many else "one number"
            raise error(E_ARGUMENT, f"`{name}` takes {want}, got {len(args)} argument"
                        f"{'s' if len(args) != 1 else ''}", span)
        items = args[0] if from_list else args
        item_spans = spans * len(items) if from_list else spans
        nums = [el.number(v, s) for v, s in zip(items, item_spans, strict=True)]
        if not nums:
            raise error(E_ARGUMENT, f"`{name}` of nothing", span)
        try:
            return check_int(fn(nums) if many else fn(nums[0]), span)
        except (ValueError, OverflowError) as exc:
            raise error(E_TYPE, f"`{name}`: {exc}", span) from None
    return run


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("range", _b_range, "range(n), range(a, b), range(a, b, step): a list of integers"),
        Builtin("len", _b_len, "len(list): its length"),
        Builtin("zip", _b_zip, "zip(a, b, ...): the list of tuples of items at equal positions"),
        Builtin("enumerate", _b_enumerate, "enumerate(list): (i, item) pairs, i from 1"),
        Builtin("seq", _b_seq, "seq([a, b, c]) or seq(a, b, c): the blocks in sequence"),
        Builtin("shared", _b_shared, "shared(block): one set of weights for every use"),
        Builtin("repeat", _b_repeat, "repeat(block, n): the same as `block × n`"),
        Builtin("outputs", _b_outputs, "outputs(name = wire, ...): the model's outputs, "
                "named (returned last by the model's `=>` block)"),
        Builtin("scan", _b_scan, "scan(cell, state = [sizes], reverse = false, final = false): "
                "the cell applied at every step of a sequence, carrying states that start at "
                "zero; gives the step outputs, then with `final` each state's last value"),
        Builtin("channels", _b_channels, "channels(x): the channel count of wire x (its "
                "channel axis, C), read while the model is built"),
        Builtin("join_inputs", _b_join_inputs, "join_inputs(y): the inputs of the join that "
                "made wire y, nested joins merged (a fractal's columns, the deepest first)"),
        Builtin("size", _b_size, "size(x, axis): the fixed size of an axis of wire x (a "
                "number or a role such as \"T\")"),
        Builtin("param", _b_param, "param([sizes], init = normal(0, 1)): a learned tensor "
                "as a wire (an embedding, a generator's input), counted as parameters"),
        Builtin("normal", _init("normal", "mean", "std"),
                "normal(mean = 0, std = 1): a `param`'s initial values, drawn from N(mean, std²)"),
        Builtin("uniform", _init("uniform", "low", "high"),
                "uniform(low = 0, high = 1): a `param`'s initial values, drawn from U(low, high)"),
        Builtin("fail", _b_fail, 'fail("message {}", value): reject the arguments a rule was '
                'given; each `{}` shows the next value'),
        Builtin("min", _numeric("min", min, many=True), "min(a, b, ...) or min(list)"),
        Builtin("abs", _numeric("abs", abs), "abs(x)"),
        Builtin("int", _numeric("int", lambda x: int(x)), "int(x): rounds towards zero"),
        Builtin("float", _numeric("float", float), "float(x)"),
        Builtin("round", _numeric("round", round), "round(x): nearest integer"),
    )
}


def builtin_env() -> Env:
    """The outermost frame: primitive ops (not sources, nor ops that own a body or read one
    of its outputs: built-ins such as `scan` make those) and built-in functions."""
    names: dict[str, Value] = {n: OpCtor(op) for n, op in OPS.items()
                               if not op.source and op.body is None and not op.projects}
    names.update(BUILTINS)
    return Env(names)
