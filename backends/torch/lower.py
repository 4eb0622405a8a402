"""PyTorch lowering: one row per op (`LOWERINGS`), each giving the constructor of the module
that owns the op's parameters (None for a stateless op) and the expression computing its
output, as Python source."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...base.diagnostics import SsnError, lowering_error
from ...compiler.ir import Node, op_call
from ...compiler.ops import (
    LINEAR_MODES,
    OPS,
    TorchLowering,
    channel_axis,
    concat_broadcasts,
    concat_reference,
    linear_axis,
    pad_pairs,
    per_axis,
    permute_axes,
    reshape_lead,
    slice_bounds,
    sliding_axes,
    unsqueeze_axis,
)
from ...compiler.plugins import no_lowering, plugin_fault
from ..pysource import literal


@dataclass(frozen=True)
class Lowered:
    """An op instance in PyTorch: the constructor of the module that owns its parameters
    (None for stateless ops) and the expression computing its output."""

    module: str | None
    expr: str


Lowering = Callable[[Node, Sequence[Node], Sequence[str], str], Lowered]
"""(node, input nodes, input expressions, module reference) -> Lowered. For an op that owns
a body graph, the reference is a callable computing the body (its inputs in, its outputs
out: one value, or a tuple for several)."""


def _shape(node: Node) -> tuple[int | str, ...]:
    assert node.shape is not None
    return node.shape


def _given_bias(node: Node) -> str | None:
    """The module owning the bias of an op whose weight is given to it (generated)."""
    if len(node.params) < 2:
        return None
    bias = node.params[1]
    return f"_Bias({bias.shape[0]}, {literal(1.0 / math.sqrt(bias.fan_in))})"


def _moved(x: Node, arg: str, build: Callable[[str], Lowered], axis: int, to: int) -> Lowered:
    """``build`` (which writes the op for its axis at ``to``) on ``arg``, whose axis is at
    ``axis``: moved there before, and back after."""
    if axis % len(_shape(x)) == to % len(_shape(x)):
        return build(arg)
    lowered = build(f"{arg}.movedim({axis}, {to})")
    return Lowered(lowered.module, f"{lowered.expr}.movedim({to}, {axis})")


def _channels_first(x: Node, arg: str, build: Callable[[str], Lowered]) -> Lowered:
    """``build`` (written for channels first) on an input whose channel axis is last (a
    sequence [N, T, C])."""
    c, _ = sliding_axes(_shape(x), "")
    return _moved(x, arg, build, c, 1)


def _conv_input(x: Node, node: Node, arg: str) -> tuple[str, object]:
    """The input expression and the `padding` of a convolution: uneven padding (causal,
    'same' for even kernels) is an `F.pad` before it, as PyTorch's conv pads evenly."""
    pairs = pad_pairs(_shape(x), node.attrs, node.op)
    if all(b == a for b, a in pairs):
        return arg, node.attrs["pad"]
    flat = [p for b, a in reversed(pairs) for p in (b, a)]  # F.pad lists the last axis first
    return f"torch.nn.functional.pad({arg}, {literal(flat)})", 0


def lower_conv(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """nn.Conv1d/2d/3d; with a weight given (``args[1]``, generated), F.conv on it."""
    a = node.attrs
    weight = node.params[0].shape
    c, sliding = sliding_axes(_shape(ins[0]), "conv")
    out, cin, rank = weight[0], int(_shape(ins[0])[c]), len(sliding)
    bias = _given_bias(node) if len(args) > 1 else None

    def build(arg: str) -> Lowered:
        x, pad = _conv_input(ins[0], node, arg)
        if len(args) > 1:
            return Lowered(bias, f"torch.nn.functional.conv{rank}d({x}, {args[1]}, "
                           f"{m + '.bias' if bias else 'None'}, {literal(a['stride'])}, "
                           f"{literal(pad)}, {literal(a['dilation'])}, {literal(a['groups'])})")
        return Lowered(f"nn.Conv{rank}d({cin}, {out}, {literal(a['k'])}, "
                       f"stride={literal(a['stride'])}, padding={literal(pad)}, "
                       f"dilation={literal(a['dilation'])}, groups={literal(a['groups'])}, "
                       f"bias={literal(a['bias'])})", f"{m}({x})")
    return _channels_first(ins[0], args[0], build)


def lower_conv_t(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    a = node.attrs
    c, sliding = sliding_axes(_shape(ins[0]), "conv_transpose")
    dilation = f", dilation={literal(a['dilation'])}" if a["dilation"] != 1 else ""
    return _channels_first(ins[0], args[0], lambda arg: Lowered(
        f"nn.ConvTranspose{len(sliding)}d({_shape(ins[0])[c]}, {literal(a['out'])}, "
        f"{literal(a['k'])}, stride={literal(a['stride'])}, padding={literal(a['pad'])}, "
        f"output_padding={literal(a['output_pad'])}, groups={literal(a['groups'])}, "
        f"bias={literal(a['bias'])}{dilation})", f"{m}({arg})"))


def lower_upsample(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    a = node.attrs
    _, sliding = sliding_axes(_shape(ins[0]), "upsample")
    rank = len(sliding)
    if a["size"] is not None:
        how = f"size={literal(per_axis(a['size'], rank))}"
    elif isinstance(a["scale"], tuple):
        how = f"scale_factor={literal(tuple(float(v) for v in per_axis(a['scale'], rank)))}"
    else:
        how = f"scale_factor={literal(float(a['scale']))}"  # type: ignore[arg-type]
    mode = a["mode"]
    if mode in LINEAR_MODES:
        mode = ("linear", "bilinear", "trilinear")[rank - 1]
    corners = f", align_corners={literal(a['align_corners'])}" if mode != "nearest" else ""
    return _channels_first(ins[0], args[0], lambda arg: Lowered(
        None, f"torch.nn.functional.interpolate({arg}, {how}, mode={literal(mode)}"
        f"{corners})"))


def lower_pad(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """F.pad lists the last axis first: zeros for the axes after ``axis``."""
    rank = len(ins[0].shape or ())
    axis = int(node.attrs["axis"]) % rank  # type: ignore[arg-type]
    pads = [0, 0] * (rank - 1 - axis) + [node.attrs["before"], node.attrs["after"]]
    return Lowered(None, f"torch.nn.functional.pad({args[0]}, {literal(pads)}, "
                   f"value={literal(node.attrs['value'])})")


def lower_unsqueeze(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(None, f"{args[0]}.unsqueeze({unsqueeze_axis(ins[0].shape or (), node.attrs)})")


def lower_bn(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """nn.BatchNorm1d/2d/3d by rank, the channel axis moved to 1 where it is not there."""
    a = node.attrs
    shape = _shape(node)
    c = channel_axis(shape, "bn")
    kind = {4: "BatchNorm2d", 5: "BatchNorm3d"}.get(len(shape), "BatchNorm1d")
    return _moved(ins[0], args[0], lambda arg: Lowered(
        f"nn.{kind}({shape[c]}, eps={literal(a['eps'])}, momentum={literal(a['momentum'])}, "
        f"affine={literal(a['affine'])})", f"{m}({arg})"), c, 1)


def lower_linear(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """nn.Linear; with a weight given (``args[1]``, generated), F.linear on it; over an
    axis other than the last, that axis moved last and back."""
    out, fan_in = node.params[0].shape
    bias = _given_bias(node) if len(args) > 1 else None

    def build(arg: str) -> Lowered:
        if len(args) > 1:
            return Lowered(bias, f"torch.nn.functional.linear({arg}, {args[1]}, "
                           f"{m + '.bias' if bias else 'None'})")
        return Lowered(f"nn.Linear({fan_in}, {out}, bias={literal(node.attrs['bias'])})",
                       f"{m}({arg})")
    return _moved(ins[0], args[0], build, linear_axis(_shape(ins[0]), node.attrs), -1)


def lower_embedding(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(f"nn.Embedding({literal(node.attrs['vocab'])}, {literal(node.attrs['dim'])})",
                   f"{m}({args[0]})")


def lower_stochastic_depth(node: Node, ins: Sequence[Node], args: Sequence[str],
                           m: str) -> Lowered:
    """While training, the input times a per-sample (or per-batch) Bernoulli(1 - p) mask,
    divided by 1 - p; the input itself in eval (or at p = 0)."""
    p, x = float(node.attrs["p"]), args[0]  # type: ignore[arg-type]
    if p == 0:
        return Lowered(None, x)
    first = f"{x}.shape[0]" if node.attrs["mode"] == "row" else "1"
    mask = (f"torch.empty(({first},) + (1,) * ({x}.dim() - 1), dtype={x}.dtype, "
            f"device={x}.device).bernoulli_({literal(1 - p)})")
    return Lowered(None, f"({x} * {mask} / {literal(1 - p)} if self.training else {x})")


def lower_dropout(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    p = node.attrs["p"]
    if p == 0:
        return Lowered(None, args[0])  # a dropout of rate 0 is not worth a call
    return Lowered(f"nn.Dropout({literal(p)})", f"{m}({args[0]})")


def _function(template: str) -> Lowering:
    def lower(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
        return Lowered(None, template.format(*args, **{k: literal(v)
                                                       for k, v in node.attrs.items()}))
    return lower


def _pool(fn: str) -> Lowering:
    def lower(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
        a = node.attrs
        _, sliding = sliding_axes(_shape(ins[0]), node.op)
        extra = (f", count_include_pad={literal(a['count_pad'])}" if "count_pad" in a
                 else "")
        if a.get("dilation", 1) != 1:
            extra += f", dilation={literal(a['dilation'])}"
        return _channels_first(ins[0], args[0], lambda arg: Lowered(
            None, f"torch.nn.functional.{fn}{len(sliding)}d({arg}, {literal(a['k'])}, "
            f"{literal(a['stride'])}, {literal(a['pad'])}, "
            f"ceil_mode={literal(a['ceil'])}{extra})"))
    return lower


def lower_gap(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    _, sliding = sliding_axes(_shape(ins[0]), "gap")
    return Lowered(None, f"{args[0]}.mean({literal(sliding)})")


def lower_mean(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    total = " + ".join(args)
    return Lowered(None, f"({total}) / {len(args)}" if len(args) > 1 else args[0])


def lower_sum(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(None, " + ".join(args))


def lower_max(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    expr = args[0]
    for a in args[1:]:
        expr = f"torch.maximum({expr}, {a})"
    return Lowered(None, expr)


def lower_concat(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """torch.cat; an input that broadcasts (a batch-free `param`) is expanded first to the
    output's sizes outside the joined axis, symbolic ones read from a full-size input."""
    shapes = [_shape(i) for i in ins]
    out = _shape(node)
    axis = int(node.attrs["axis"]) % len(out)  # type: ignore[arg-type]
    wide = concat_broadcasts(shapes, out, axis)
    parts = list(args)
    if any(wide):
        ref = args[concat_reference(shapes, out, axis)]
        for k, s in enumerate(shapes):
            if not wide[k]:
                continue
            lead = len(out) - len(s)
            sizes = ["-1" if j == axis or (j >= lead and s[j - lead] == d)
                     else str(d) if isinstance(d, int) else f"{ref}.shape[{j}]"
                     for j, d in enumerate(out)]
            parts[k] = f"{args[k]}.expand({', '.join(sizes)})"
    return Lowered(None, f"torch.cat(({', '.join(parts)},), {literal(node.attrs['axis'])})")


def lower_affine(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    scale, shift = node.attrs["scale"], node.attrs["shift"]
    expr = args[0] if scale == 1 else f"{args[0]} * {literal(scale)}"
    return Lowered(None, expr if shift == 0 else f"{expr} + {literal(shift)}")


def lower_hard_sigmoid(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(f"_HardSigmoid({literal(node.attrs['slope'])})", f"{m}({args[0]})")


def lower_slice(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    shape = ins[0].shape or ()
    axis = int(node.attrs["axis"]) % len(shape)  # type: ignore[arg-type]
    start, stop = slice_bounds(int(shape[axis]), node.attrs)  # a known size (shape rule)
    return Lowered(None, f"{args[0]}.narrow({axis}, {start}, {stop - start})")


def lower_scan(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """The loop over time is `_scan` (in the runtime pasted above): `for t in range(T)`."""
    reverse = ", reverse=True" if node.attrs["reverse"] else ""
    return Lowered(None, f"_scan({m}, {', '.join(args)}{reverse})")


def lower_reshape(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    lead = reshape_lead(ins[0].shape or ())
    sizes = node.shape[lead:] if node.shape else ()
    return Lowered(None, f"{args[0]}.reshape({args[0]}.shape[:{lead}] + {literal(sizes)})")


def lower_softmax(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(None, f"torch.softmax({args[0]}, {literal(node.attrs['axis'])})")


def lower_permute(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    axes = permute_axes(ins[0].shape or (), node.attrs)
    return Lowered(None, f"{args[0]}.permute{literal(axes)}")


def lower_item(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(None, f"{args[0]}[{literal(node.attrs['index'])}]")


def lower_layernorm(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    shape = _shape(ins[0])
    axis = int(node.attrs["axis"]) % len(shape)  # type: ignore[arg-type]
    return _moved(ins[0], args[0], lambda arg: Lowered(
        f"nn.LayerNorm({literal(shape[axis])}, eps={literal(node.attrs['eps'])}, "
        f"elementwise_affine={literal(node.attrs['affine'])})", f"{m}({arg})"), axis, -1)


LOWERINGS: dict[str, Lowering] = {
    "conv": lower_conv,
    "conv_transpose": lower_conv_t,
    "upsample": lower_upsample,
    "pad": lower_pad,
    "unsqueeze": lower_unsqueeze,
    "squeeze": _function("{0}.squeeze({axis})"),
    "pixel_shuffle": _function("torch.nn.functional.pixel_shuffle({0}, {r})"),
    "bn": lower_bn,
    "layernorm": lower_layernorm,
    "softmax": lower_softmax,
    "dropout": lower_dropout,
    "pad_mask": _function("{0} == {pad}"),
    "masked_fill": _function("{0}.masked_fill({1}, {value})"),
    "stochastic_depth": lower_stochastic_depth,
    "maxpool": _pool("max_pool"),
    "avgpool": _pool("avg_pool"),
    "gap": lower_gap,
    "flatten": _function("torch.flatten({0}, 1)"),
    "reduce_mean": _function("{0}.mean({axis}, keepdim={keep})"),
    "reduce_sum": _function("{0}.sum({axis}, keepdim={keep})"),
    "reduce_max": _function("{0}.amax({axis}, keepdim={keep})"),
    "linear": lower_linear,
    "embedding": lower_embedding,
    "mean": lower_mean,
    "sum": lower_sum,
    "max": lower_max,
    "concat": lower_concat,
    "mul": _function("{0} * {1}"),
    "sub": _function("{0} - {1}"),
    "div": _function("{0} / {1}"),
    "matmul": _function("torch.matmul({0}, {1})"),
    # future keys (column > row) at -inf; made on the scores' device, T read from the shape
    "causal_mask": _function("{0}.masked_fill(torch.ones({0}.shape[-2], {0}.shape[-1], "
                             "dtype=torch.bool, device={0}.device).triu(1), float('-inf'))"),
    "affine": lower_affine,
    "hard_sigmoid": lower_hard_sigmoid,
    # forward: exactly 0 or 1; backward: the identity (the added term is 0, its gradient 1)
    "step": _function("({0} > 0.5).to({0}.dtype) + ({0} - {0}.detach())"),
    "slice": lower_slice,
    "zeros": _function("{0}.new_zeros({0}.shape[0], {size})"),
    "scan": lower_scan,
    "item": lower_item,
    "reshape": lower_reshape,
    "permute": lower_permute,
}

def lower(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """``node`` through the lowering its op declares, else this backend's row for it; a
    failure is a diagnostic at the node (a plugin's, E0702; ssnc's own, a bug)."""
    decl = OPS[node.op]
    declared = decl.lowerings.get("torch")
    if declared is None and node.op not in LOWERINGS:
        raise no_lowering(decl, "PyTorch", node.span)
    try:
        if isinstance(declared, TorchLowering):
            return _declared(declared, node, ins, args, m)
        return LOWERINGS[node.op](node, ins, args, m)
    except SsnError:
        raise
    except Exception as exc:
        if decl.origin is not None:
            raise plugin_fault(decl, "PyTorch lowering", node.span, exc) from exc
        raise lowering_error("PyTorch", node.name, node.op, node.span, exc) from exc


def _declared(how: TorchLowering, node: Node, ins: Sequence[Node], args: Sequence[str],
              m: str) -> Lowered:
    """An op's declared lowering: a template, a function of the plugin's module called on
    the inputs, or its module class built at the node's path and called on them."""
    values = how.values(op_call(node, ins))
    if how.expr is not None:
        return Lowered(None, how.expr.format(*args, **{k: literal(v) for k, v in values.items()}))
    keywords = "".join(f", {k}={literal(v)}" for k, v in values.items())
    if how.function is not None:
        return Lowered(None, f"{plugin_attr(how.function)}({', '.join(args)}{keywords})")
    assert how.module is not None
    return Lowered(f"{plugin_attr(how.module)}({keywords.removeprefix(', ')})",
                   f"{m}({', '.join(args)})")


def plugin_attr(target: str) -> str:
    """`package.module:name` as generated code reads it: the module imported under an alias
    that no generated name takes (`_plugin_package_module.name`)."""
    module, _, attr = target.partition(":")
    return f"{plugin_alias(module)}.{attr}"


def plugin_alias(module: str) -> str:
    """The name generated code imports a plugin's ``module`` as."""
    return "_plugin_" + module.replace(".", "_")


DROP_JOIN_FN = {"mean": "_join_mean", "sum": "_join_sum", "max": "_join_max"}


def drop_rate(node: Node) -> float:
    """A join's drop-path rate (0 for anything else)."""
    value = node.attrs.get("drop_path")
    return float(value) if isinstance(value, int | float) else 0.0


def droppable(node: Node) -> bool:
    """A join that drop-path acts on while training."""
    return node.op in DROP_JOIN_FN and drop_rate(node) > 0.0

