"""PyTorch lowering: one row per op (`LOWERINGS`), each giving the constructor of the module
that owns the op's parameters (None for a stateless op) and the expression computing its
output, as Python source."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...base.diagnostics import SsnError, lowering_error
from ...compiler.ir import Node
from ...compiler.ops import permute_axes, reshape_lead, slice_bounds, unsqueeze_axis
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


def _channels(node: Node) -> int:
    assert node.shape is not None
    return int(node.shape[1])


def _given_bias(node: Node) -> str | None:
    """The module owning the bias of an op whose weight is given to it (generated)."""
    if len(node.params) < 2:
        return None
    bias = node.params[1]
    return f"_Bias({bias.shape[0]}, {literal(1.0 / math.sqrt(bias.fan_in))})"


def lower_conv(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """nn.Conv2d; with a weight given (``args[1]``, generated), F.conv2d on it."""
    a = node.attrs
    weight = node.params[0].shape
    out, cin = weight[0], _channels(ins[0])
    k, dilation = int(a["k"]), int(a["dilation"])  # type: ignore[arg-type]
    pad = a["pad"]
    if len(args) > 1:
        bias = _given_bias(node)
        return Lowered(bias, f"torch.nn.functional.conv2d({args[0]}, {args[1]}, "
                       f"{m + '.bias' if bias else 'None'}, {literal(a['stride'])}, "
                       f"{literal(pad)}, {dilation}, {literal(a['groups'])})")
    return Lowered(f"nn.Conv2d({cin}, {out}, {k}, stride={literal(a['stride'])}, "
                   f"padding={literal(pad)}, dilation={dilation}, "
                   f"groups={literal(a['groups'])}, bias={literal(a['bias'])})",
                   f"{m}({args[0]})")


def lower_conv_t(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    a = node.attrs
    stride = a["stride"]
    return Lowered(f"nn.ConvTranspose2d({_channels(ins[0])}, {literal(a['out'])}, "
                   f"{literal(a['k'])}, stride={literal(stride)}, padding={literal(a['pad'])}, "
                   f"output_padding={literal(a['output_pad'])}, groups={literal(a['groups'])}, "
                   f"bias={literal(a['bias'])})", f"{m}({args[0]})")


def lower_upsample(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    a = node.attrs
    how = (f"size=({literal(a['size'])}, {literal(a['size'])})" if a["size"] is not None
           else f"scale_factor={literal(float(a['scale']))}")  # type: ignore[arg-type]
    corners = f", align_corners={literal(a['align_corners'])}" if a["mode"] == "bilinear" else ""
    return Lowered(None, f"torch.nn.functional.interpolate({args[0]}, {how}, "
                   f"mode={literal(a['mode'])}{corners})")


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
    a = node.attrs
    kind = "BatchNorm2d" if len(node.shape or ()) == 4 else "BatchNorm1d"
    return Lowered(f"nn.{kind}({_channels(node)}, eps={literal(a['eps'])}, "
                   f"momentum={literal(a['momentum'])}, affine={literal(a['affine'])})",
                   f"{m}({args[0]})")


def lower_linear(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    """nn.Linear; with a weight given (``args[1]``, generated), F.linear on it."""
    out, fan_in = node.params[0].shape
    if len(args) > 1:
        bias = _given_bias(node)
        return Lowered(bias, f"torch.nn.functional.linear({args[0]}, {args[1]}, "
                       f"{m + '.bias' if bias else 'None'})")
    return Lowered(f"nn.Linear({fan_in}, {out}, bias={literal(node.attrs['bias'])})",
                   f"{m}({args[0]})")


def lower_embedding(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(f"nn.Embedding({literal(node.attrs['vocab'])}, {literal(node.attrs['dim'])})",
                   f"{m}({args[0]})")


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
        stride = a["stride"]
        extra = (f", count_include_pad={literal(a['count_pad'])}" if "count_pad" in a
                 else "")
        return Lowered(None, f"torch.nn.functional.{fn}({args[0]}, {literal(a['k'])}, "
                             f"{literal(stride)}, {literal(a['pad'])}, "
                             f"ceil_mode={literal(a['ceil'])}{extra})")
    return lower


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
    return Lowered(None, f"torch.cat(({', '.join(args)},), {literal(node.attrs['axis'])})")


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


def lower_gelu(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    how = "tanh" if node.attrs["tanh"] else "none"
    return Lowered(None, f"torch.nn.functional.gelu({args[0]}, approximate={how!r})")


def lower_permute(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    axes = permute_axes(ins[0].shape or (), node.attrs)
    return Lowered(None, f"{args[0]}.permute{literal(axes)}")


def lower_item(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    return Lowered(None, f"{args[0]}[{literal(node.attrs['index'])}]")


def lower_layernorm(node: Node, ins: Sequence[Node], args: Sequence[str], m: str) -> Lowered:
    d = (ins[0].shape or (0,))[-1]
    return Lowered(f"nn.LayerNorm({literal(d)}, eps={literal(node.attrs['eps'])}, "
                   f"elementwise_affine={literal(node.attrs['affine'])})", f"{m}({args[0]})")


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
    "relu": _function("torch.relu({0})"),
    "sigmoid": _function("torch.sigmoid({0})"),
    "tanh": _function("torch.tanh({0})"),
    "softmax": lower_softmax,
    "gelu": lower_gelu,
    "clip": _function("torch.clamp({0}, {min}, {max})"),
    "leaky_relu": _function("torch.nn.functional.leaky_relu({0}, {slope})"),
    "dropout": lower_dropout,
    "maxpool": _pool("max_pool2d"),
    "avgpool": _pool("avg_pool2d"),
    "gap": _function("{0}.mean((2, 3))"),
    "flatten": _function("torch.flatten({0}, 1)"),
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
    """``node`` through its lowering; a failure (a bug) is a diagnostic at the node."""
    try:
        return LOWERINGS[node.op](node, ins, args, m)
    except SsnError:
        raise
    except Exception as exc:
        raise lowering_error("PyTorch", node.name, node.op, node.span, exc) from exc


DROP_JOIN_FN = {"mean": "_join_mean", "sum": "_join_sum", "max": "_join_max"}


def drop_rate(node: Node) -> float:
    """A join's drop-path rate (0 for anything else)."""
    value = node.attrs.get("drop_path")
    return float(value) if isinstance(value, int | float) else 0.0


def droppable(node: Node) -> bool:
    """A join that drop-path acts on while training."""
    return node.op in DROP_JOIN_FN and drop_rate(node) > 0.0

