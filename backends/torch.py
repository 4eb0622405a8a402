"""PyTorch backend: the IR becomes readable Python source for an ``nn.Module`` — the module
`to_torch()` returns is that very source, executed — one lowering per op.

The generated ``forward`` is straight-line code in eval mode (no graph walking at run time,
no graph breaks under ``torch.compile``). In training, droppable joins follow FractalNet's
drop-path: in batch mode the paths a mini-batch drops are not computed at all; in sample mode
every path is computed and masked per sample. Submodules sit at the IR's scope paths, so
state_dict keys are names like ``stage2.fractal.col3.unit2.conv.weight``."""

from __future__ import annotations

import builtins
import linecache
import math
import re
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePath

import numpy as np
import torch
from torch import nn

from ..base.diagnostics import E_RESERVED, Note, SsnError, error, lowering_error
from ..compiler.initializers import expected_tensors, initial_state
from ..compiler.ir import Graph, Node, Scope, captures, named_after, owned, walk
from ..compiler.literals import ssn_text
from ..compiler.ops import (
    ParamSpec,
    fmt_shape,
    permute_axes,
    reshape_lead,
    slice_bounds,
    unsqueeze_axis,
)
from ..compiler.stats import op_count, total_params
from .pysource import comment, docstring, identifier, is_plain, literal

RUNTIME_MARKER = "# --- ssnc runtime (pasted into generated modules) ---"


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


_DROP_JOIN_FN = {"mean": "_join_mean", "sum": "_join_sum", "max": "_join_max"}


def _rate(node: Node) -> float:
    value = node.attrs.get("drop_path")
    return float(value) if isinstance(value, int | float) else 0.0


def droppable(node: Node) -> bool:
    """A join that drop-path acts on while training."""
    return node.op in _DROP_JOIN_FN and _rate(node) > 0.0


# ---------------------------------------------------------------- code generation

# Spec names become Python names only through `pysource.identifier`; these are never given
# out: the forward's own locals, the runtime's globals and Python's builtins.
_RUNTIME_GLOBALS = {"torch", "nn", "NamedTuple", "DropPath", "DropPlan", "MODEL"}
_RESERVED = ({"self", "x", "keep", "masks", "plan", "np"} | _RUNTIME_GLOBALS
             | set(dir(builtins)))
# Submodule names that attribute access would not reach (nn.Module's own attributes and the
# generated class's): those submodules are read through `_modules[...]`.
_TORCH_OWNED = set(vars(nn.Module()))
_MODULE_ATTRS = set(dir(nn.Module)) | {"training", "DROP_JOINS", "FRACTAL_WIDTHS",
                                       "ssnc_drop_path", "forward_dropping", "forward_masked",
                                       "set_slope"}


def _param_ref(path: str) -> str:
    """Source reading the `param` value registered at the dotted ``path`` of ``self``."""
    parent, _, leaf = path.rpartition(".")
    ref = _module_ref(parent) if parent else "self"
    if is_plain(leaf) and not leaf.startswith("_") and leaf not in _MODULE_ATTRS:
        return f"{ref}.{leaf}"
    return f"{ref}._parameters[{literal(leaf)}]"


def _initial(spec: ParamSpec) -> str:
    """Source making a `param` value's initial tensor as its spec says (torch's generator,
    so standalone source trains as written; `to_torch` loads the compiler's values)."""
    shape = literal(spec.shape)
    if spec.init == "uniform":
        return f"torch.rand({shape}) * {literal(spec.scale)} + {literal(spec.fill)}"
    return f"torch.randn({shape}) * {literal(spec.scale)} + {literal(spec.fill)}"


def _module_ref(path: str) -> str:
    """Source reading the submodule at the dotted ``path`` of ``self``."""
    ref = "self"
    for part in path.split("."):
        if is_plain(part) and not part.startswith("_") and part not in _MODULE_ATTRS:
            ref = f"{ref}.{part}"
        else:
            ref = f"{ref}._modules[{literal(part)}]"
    return ref


@dataclass(frozen=True)
class _Stmt:
    target: str
    expr: str
    reads: tuple[str, ...]
    guard: str | None = None
    where: str = ""  # the spec position, shown as a trailing comment


@dataclass
class _ClassDef:
    rule: str
    text: str
    signatures: list[str]
    first: int
    name: str = ""


@dataclass(frozen=True)
class _ClassUse:
    prefix: str
    definition: _ClassDef
    source: str
    where: str


class _Codegen:
    def __init__(self, graph: Graph, reserved: str = ""):
        self.graph = graph
        self.order = [n for n in graph.order() if not n.is_source]
        self.drop = [n for n in self.order if droppable(n)]
        self.drop_index = {n.name: j for j, n in enumerate(self.drop)}
        self.taken = _RESERVED | {f"need{j}" for j in range(len(self.drop))}
        self.var = input_args(graph, self.taken)
        every = graph.all_nodes()
        self.values = {n: every[n] for n in every if every[n].is_param and not owned(every[n])}
        self.refs = {_param_ref(n) for n in self.values}  # read as attributes, never freed
        self.var.update((n, _param_ref(n)) for n in self.values)
        for node in self.order:
            self.var[node.name] = identifier(node.name, self.taken)
        blocks = sorted({n.fractal for n in self.drop if n.fractal is not None and
                         n.input_columns},
                        key=lambda b: min(n.index for n in self.drop if n.fractal == b))
        self.block_index = {b: i for i, b in enumerate(blocks)}
        self.widths = [graph.fractals()[b].width for b in blocks]
        self.segment = self._segments()
        self.uses: dict[str, _ClassUse] = {}  # output node name -> class instance
        self.members: set[str] = set()
        self.classes: dict[str, _ClassDef] = {}  # class source -> definition
        self._find_classes()  # renames class outputs: lower only afterwards
        self._name_classes(reserved)
        self.lowered: dict[str, Lowered] = {}
        self.result_type: str | None = None  # the NamedTuple of named model outputs
        self.methods: list[list[str]] = []  # the methods computing body graphs
        self.body_modules: list[str] = []  # __init__ lines of the modules bodies use
        for node in self.order:
            ins = [graph[i] for i in node.inputs]
            ref = (self._body_method(node, self.var) if node.body is not None
                   else _module_ref(self.owner(node)))
            self.lowered[node.name] = lower(node, ins, self.args(node, self.var), ref)

    def owner(self, node: Node) -> str:
        """The path of the module holding ``node``'s own parameters: where their names say
        (their first reader's path, which a single-column model may no longer hold)."""
        every = self.graph.all_nodes()
        mine = [w for w in node.weights if owned(every[w])]
        if not mine:
            return node.name
        return mine[0][:-len(every[mine[0]].attrs["role"]) - 1]  # type: ignore[arg-type]

    def args(self, node: Node, names: dict[str, str]) -> list[str]:
        """The expressions ``node`` reads: its inputs, then the weights given to it (generated
        or `param` values; its own parameters live in its module)."""
        every = self.graph.all_nodes()
        return [names[i] for i in node.inputs] + [names[w] for w in node.weights
                                                  if not owned(every[w])]

    def reads(self, args: Sequence[str]) -> tuple[str, ...]:
        """The locals among ``args`` (a `param` value is an attribute, never freed)."""
        return tuple(a for a in args if a not in self.refs)

    def _body_method(self, node: Node, outer: dict[str, str]) -> str:
        """A method of the generated class computing ``node``'s body, and the callable the
        node's lowering calls: values the body reads from around it are passed along."""
        body = node.body
        assert body is not None
        every = self.graph.all_nodes()
        method = identifier(f"body_{outer[node.name]}", self.taken)
        self.taken.add(method)
        local: dict[str, str] = {}
        taken = set(_RESERVED)
        data_captures = [c for c in captures(body) if not every[c].is_param]
        for name in (*body.inputs, *data_captures):
            local[name] = identifier(name, taken)
        local.update((n, _param_ref(n)) for n in self.values)
        stmts = []
        for inner in body.order():
            if inner.is_source:
                continue
            local[inner.name] = identifier(inner.name, taken)
            shared = self.graph.shares(inner)
            ref = (self._body_method(inner, local) if inner.body is not None
                   else _module_ref(self.owner(inner)))
            args = self.args(inner, local)
            low = lower(inner, [every[i] for i in inner.inputs], args, ref)
            if low.module is not None and not shared:
                self.body_modules.append(f"        _put(self, {self.owner(inner)!r}, "
                                         f"{low.module})")
            stmts.append(_Stmt(local[inner.name], low.expr, self.reads(args),
                               where=inner.span.position()))
        params = ", ".join(local[i] for i in (*body.inputs, *data_captures))
        self.methods.append([
            f"    def {method}(self, {params}):  # type: ignore[no-untyped-def]",
            *docstring([f"The body of `{node.name}`: {node.op} calls it."], "        "),
            *self._render(stmts, tuple(local[o] for o in body.outputs))])
        if not data_captures:
            return f"self.{method}"
        passed = ", ".join(outer[c] for c in data_captures)
        return f"(lambda *xs: self.{method}(*xs, {passed}))"

    # --- one class per distinct rule instance, where that reads naturally

    def _find_classes(self) -> None:
        """Innermost rule instances become classes when they have one input and one output,
        hold no drop-path join and no shared weights, and own their name prefix."""
        g = self.graph
        position = {n.name: i for i, n in enumerate(self.order)}
        names = [n.name for n in self.order]
        for region in sorted(g.regions(), key=lambda r: r.scope.id, reverse=True):
            if region.scope.id == 0 or not region.members:
                continue  # innermost first: an inner instance claims its nodes first
            nodes = sorted(region.members, key=lambda n: position[n.name])
            if any(n.name in self.members for n in nodes):
                continue  # an inner rule instance already is a class
            prefix = nodes[0].name.rsplit(".", 1)[0] if "." in nodes[0].name else ""
            inside = {n.name for n in nodes}
            own = named_after(prefix.rsplit(".", 1)[-1], region.scope.rule)
            if (len(nodes) < 2 or not prefix or not own
                    or any(not n.name.startswith(prefix + ".") for n in nodes)
                    or any(n.startswith(prefix + ".") and n not in inside for n in names)
                    or any(n.name in self.drop_index or g.shares(n) or n.body is not None
                           or self.owner(n) != n.name for n in nodes)
                    or len(region.inputs) != 1 or len(region.outputs) != 1):
                continue
            self._add_class(region.scope, nodes, prefix, region.inputs[0], g[region.outputs[0]])

    def _add_class(self, scope: Scope, nodes: list[Node], prefix: str, source: str,
                   output: Node) -> None:
        local = {source: "x"}
        taken = set(_RESERVED)
        for n in nodes:
            local[n.name] = identifier(n.name[len(prefix) + 1:], taken)
        init, stmts = [], []
        for n in nodes:
            rel = n.name[len(prefix) + 1:]
            args = self.args(n, local)
            low = lower(n, [self.graph[i] for i in n.inputs], args, _module_ref(rel))
            if low.module is not None:
                init.append(f"        _put(self, {rel!r}, {low.module})")
            stmts.append(_Stmt(local[n.name], low.expr, self.reads(args),
                               where=n.span.position()))
        body = self._render(stmts, (local[output.name],))
        text = "\n".join([
            "    def __init__(self) -> None:",
            "        super().__init__()",
            *init,
            "",
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
            *body,
        ])
        definition = self.classes.get(text)
        if definition is None:
            definition = self.classes[text] = _ClassDef(scope.rule, text, [], output.index)
        definition.first = min(definition.first, output.index)
        if scope.signature not in definition.signatures:
            definition.signatures.append(scope.signature)
        self.uses[output.name] = _ClassUse(prefix, definition, source, scope.span.position())
        self.members |= {n.name for n in nodes}
        self.var[output.name] = identifier(prefix, self.taken)

    def _name_classes(self, reserved: str) -> None:
        """`Unit`, `Unit2`, ... in order of first use; never a runtime or the model's name."""
        taken = _RESERVED | {reserved}
        for d in sorted(self.classes.values(), key=lambda d: d.first):
            d.name = class_name_for(d.rule, taken)

    def class_sources(self) -> list[str]:
        """The classes' source, each with a docstring naming the rule instances it serves."""
        out = []
        for d in sorted(self.classes.values(), key=lambda d: d.first):
            shown = "; ".join(d.signatures[:3]) + (" ..." if len(d.signatures) > 3 else "")
            out += [f"class {d.name}(nn.Module):", *docstring([shown], "    "), "", d.text,
                    "", ""]
        return out

    def _is_column_join(self, node: Node) -> bool:
        return node.name in self.drop_index and bool(node.input_columns)

    def _segments(self) -> dict[str, tuple[int, int]]:
        """For nodes inside fractals: the droppable join input (join, port) they feed, where
        that is all they feed (a value also read elsewhere, an output or a tap, is always
        computed)."""
        seg: dict[str, tuple[int, int]] = {}
        for node in reversed(self.order):
            if (node.fractal is None or self._is_column_join(node)
                    or node.name in self.graph.outputs):
                continue
            feeds: set[tuple[int, int] | None] = set()
            for consumer, port in self.graph.consumers(node.name):
                if self._is_column_join(self.graph[consumer]):
                    feeds.add((self.drop_index[consumer], port))
                else:
                    feeds.add(seg.get(consumer))
            only = feeds.pop() if len(feeds) == 1 else None
            if only is not None:
                seg[node.name] = only
        return seg

    def joins_table(self) -> str:
        rows = []
        for n in self.drop:
            fractal = n.fractal if n.input_columns else None
            block = self.block_index[fractal] if fractal is not None else -1
            cols = n.input_columns if n.input_columns else (0,) * len(n.inputs)
            rows.append(f"        ({block}, {literal(tuple(c or 0 for c in cols))}, "
                        f"{literal(_rate(n))}),  {comment(n.name)}")
        return "(\n" + "\n".join(rows) + "\n    )" if rows else "()"

    def init_lines(self) -> list[str]:
        lines = [f"        _put_param(self, {literal(n)}, {_initial(p.spec())})"
                 for n, p in self.values.items()]
        for node in self.order:
            use = self.uses.get(node.name)
            if use is not None:
                lines.append(f"        _put(self, {use.prefix!r}, {use.definition.name}())")
                continue
            ctor = self.lowered[node.name].module
            if ctor is not None and not self.graph.shares(node) and node.name not in self.members:
                lines.append(f"        _put(self, {self.owner(node)!r}, {ctor})")
        return lines + self.body_modules


    def body(self, mode: str) -> list[str]:
        """The statements of one forward variant: "eval", "dropping" or "masked"."""
        stmts: list[_Stmt] = []
        if mode == "dropping":
            stmts += self._need_flags()
        for node in self.order:
            target = self.var[node.name]
            args = self.args(node, self.var)
            expr = self.lowered[node.name].expr
            guard = None
            where = node.span.position()
            use = self.uses.get(node.name)
            if use is not None:
                args = [self.var[use.source]]
                expr = f"{_module_ref(use.prefix)}({args[0]})"
                where = use.where
            elif node.name in self.members:
                continue
            if node.name in self.drop_index and mode != "eval":
                j = self.drop_index[node.name]
                fn = _DROP_JOIN_FN[node.op]
                if mode == "masked":
                    expr = f"{fn}_masked(({', '.join(args)},), masks[{j}])"
                else:
                    expr = f"{fn}((" + ", ".join(
                        f"{a} if keep[{j}][{i}] else None" for i, a in enumerate(args)) + ",))"
                    if self._is_column_join(node):
                        guard = f"need{j}"
            if mode == "dropping" and guard is None and node.name in self.segment:
                # inside a column (an inner join too): computed only when the column is
                j, port = self.segment[node.name]
                guard = f"need{j} and keep[{j}][{port}]"
            stmts.append(_Stmt(target, expr, self.reads(args), guard, where))
        return self._render(stmts, tuple(self.var[o] for o in self.graph.outputs),
                            self.result_type)

    def _need_flags(self) -> list[_Stmt]:
        """needJ: whether column join J's output is used, given this batch's keep flags."""
        flags: list[_Stmt] = []
        for node in reversed(self.drop):
            if not self._is_column_join(node):
                continue
            terms: list[str] = []
            for consumer, port in self.graph.consumers(node.name):
                c = self.graph[consumer]
                if self._is_column_join(c):
                    jc = self.drop_index[consumer]
                    term = f"(need{jc} and keep[{jc}][{port}])"
                elif consumer in self.segment:
                    jc, p = self.segment[consumer]
                    term = f"(need{jc} and keep[{jc}][{p}])"
                else:
                    term = "True"
                if term not in terms:
                    terms.append(term)
            if node.name in self.graph.outputs:
                terms.append("True")
            expr = "True" if "True" in terms or not terms else " or ".join(terms)
            flags.append(_Stmt(f"need{self.drop_index[node.name]}", expr, ()))
        return flags  # later joins first: a flag reads only later joins' flags

    def _render(self, stmts: list[_Stmt], outs: tuple[str, ...],
                result_type: str | None = None) -> list[str]:
        last_use: dict[str, int] = {}
        for i, s in enumerate(stmts):
            for r in s.reads:
                last_use[r] = i
        outputs = set(outs)
        lines: list[str] = []
        current: str | None = None
        for i, s in enumerate(stmts):
            if s.guard != current:
                current = s.guard
                if current is not None:
                    lines.append(f"        if {current}:")
            indent = "            " if current is not None else "        "
            line = f"{indent}{s.target} = {s.expr}"
            dead = sorted({r for r in s.reads if last_use[r] == i and r not in outputs
                           and r != s.target})
            if dead:
                line += "; " + " = ".join(dead) + " = None"
            if s.where:
                line += "  " + comment(s.where)
            lines.append(line)
        result = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ",)"
        if result_type is not None:  # the model's named outputs
            result = f"{result_type}({', '.join(outs)})"
        lines.append(f"        return {result}")
        return lines


def runtime_source() -> str:
    """The helpers every generated module carries (from torch_runtime.py)."""
    text = resources.files("ssnc.backends").joinpath("torch_runtime.py").read_text("utf-8")
    return text[text.index(RUNTIME_MARKER):]


def class_name_for(rule: str, taken: set[str]) -> str:
    """A fresh class name for ``rule`` (`fractalnet_caffe` -> `FractalnetCaffe`, then
    `FractalnetCaffe2`, ...), never a keyword (`NoneModel`) or one of ``taken`` (which it
    joins)."""
    base = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", rule) if p)
    if not base or base[0].isdigit():
        base = "Model" + base
    if not is_plain(base):
        base += "Model"  # `none` -> `NoneModel`
    name, k = base, 1
    while name in taken or not is_plain(name):
        k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name


def _check_names(graph: Graph) -> None:
    """Refuse scope paths that torch itself assigns on every module (``training``, hooks):
    a submodule of that name would break ``train()``. Other names are all usable."""
    for holder, node in walk(graph):
        for part in node.name.split(".") if not node.is_param else ():  # named by readers
            if part in _TORCH_OWNED:
                scopes = [s for s in holder.scope_path(node.scope) if s.rule == part]
                span = scopes[-1].span if scopes else node.span
                raise error(E_RESERVED, f"`{part}` cannot name a PyTorch submodule "
                            f"(in `{node.name}`)", span,
                            notes=[Note("torch.nn.Module uses this attribute itself")],
                            hint=f"rename the rule, for example to `{part}_block`")


def input_args(graph: Graph, taken: set[str]) -> dict[str, str]:
    """The generated forward's parameter for each input, in order: `x` for a model's only
    input, else a checked identifier from each input's name."""
    if len(graph.inputs) == 1:
        return {graph.inputs[0]: "x"}
    return {i: identifier(i, taken) for i in graph.inputs}


def generate_source(graph: Graph, *, origin: str = "", version: str = "") -> str:
    """Standalone Python source (imports torch only) defining the model's nn.Module class."""
    _check_names(graph)
    cls = class_name_for(graph.model, set(_RESERVED))
    gen = _Codegen(graph, reserved=cls)
    named: list[str] = []
    if graph.output_names:
        gen.result_type = class_name_for(graph.model + "_outputs", {*_RESERVED, cls})
        fields: set[str] = set(_RESERVED)
        named = [f"class {gen.result_type}(NamedTuple):",
                 *docstring([f"The outputs of `{graph.model}`, by the names the spec gives."],
                            "    "),
                 "",
                 *(f"    {identifier(name, fields)}: torch.Tensor" for name in graph.output_names),
                 "", ""]
    ins = " " + ", ".join(f"{graph[i].dtype}{fmt_shape(graph[i].shape or ())}"
                          for i in graph.inputs)
    if len(graph.inputs) > 1:
        ins = "s " + ", ".join(f"{gen.var[i]} {graph[i].dtype}{fmt_shape(graph[i].shape or ())}"
                               for i in graph.inputs)
    args = ", ".join(gen.var[i] for i in graph.inputs)
    typed = ", ".join(f"{gen.var[i]}: torch.Tensor" for i in graph.inputs)
    first = gen.var[graph.inputs[0]]
    outs = ", ".join(f"{graph[o].dtype}{fmt_shape(graph[o].shape or ())}"
                     for o in graph.outputs)
    params = ", ".join(f"{k}={ssn_text(v)}" for k, v in graph.params.items())
    has_drop = bool(gen.drop)
    lines = [
        *docstring([
            f"{graph.model}, compiled by ssnc {version} from "
            f"{PurePath(origin).name if origin else 'a spec'}.",
            "",
            f"Parameters: {params or 'none'}. Input{ins}; output {outs}.",
            "Load weights with `model.load_state_dict(torch.load(path))`. Generated code: edit "
            "the",
            "spec, not this file."]),
        "",
        "from __future__ import annotations",
        "",
        runtime_source().rstrip(),
        "",
        "",
        *gen.class_sources(),
        *named,
        f"class {cls}(nn.Module):",
        *docstring([
            f"{graph.model}: {op_count(graph)} ops, {total_params(graph):,} parameters.",
            "",
            "drop_mode: 'batch' (default), 'sample' or 'off' (training only); global_ratio: the",
            "share of global drop-path; drop_seed seeds the draws (equal on every DDP rank)."],
            "    "),
        "",
        f"    DROP_JOINS: tuple[tuple[int, tuple[int, ...], float], ...] = {gen.joins_table()}",
        f"    FRACTAL_WIDTHS: tuple[int, ...] = {tuple(gen.widths)!r}",
        "",
        "    def __init__(self, drop_mode: str = \"batch\", global_ratio: float = 0.5,",
        "                 drop_seed: int = 0) -> None:",
        "        super().__init__()",
        "        self.ssnc_drop_path = DropPath(self.DROP_JOINS, self.FRACTAL_WIDTHS, drop_mode,",
        "                                       global_ratio, drop_seed)",
        *gen.init_lines(),
        *_renamed_lines(graph),
        "",
        f"    def forward(self, {typed}):  # type: ignore[no-untyped-def]",
    ]
    if has_drop:
        lines += [
            "        if self.training and self.ssnc_drop_path.active:",
            f"            plan = self.ssnc_drop_path.draw({first}.shape[0], {first}.device)",
            "            if plan.per_sample:",
            f"                return self.forward_masked({args}, plan.masks)",
            f"            return self.forward_dropping({args}, plan.keep)",
        ]
    lines += gen.body("eval")
    if has_drop:
        lines += ["",
                  f"    def forward_dropping(self, {typed}, "
                  "keep: tuple[tuple[bool, ...], ...]):  # type: ignore[no-untyped-def]",
                  '        """Training with one drop-path draw for the batch: dropped paths are '
                  'not computed."""',
                  *gen.body("dropping"),
                  "",
                  f"    def forward_masked(self, {typed}, "
                  "masks: tuple[torch.Tensor, ...]):  # type: ignore[no-untyped-def]",
                  '        """Training with per-sample drop-path masks."""',
                  *gen.body("masked")]
    for method in gen.methods:
        lines += ["", *method]
    lines += _slope_method(graph)
    lines += ["", "", f"MODEL = {cls}", ""]
    return "\n".join(lines)


def _slope_method(graph: Graph) -> list[str]:
    """``set_slope(value)``, where the model has hard sigmoids: their slopes are buffers a
    training loop anneals (see ``ssnc.anneal_slope``)."""
    keys = [key for key, spec in graph.tensors().items() if spec.name == "slope"]
    if not keys:
        return []
    return ["",
            "    def set_slope(self, value: float) -> None:",
            '        """Set every hard sigmoid\'s slope (buffers, exported with the weights)."""',
            f"        for key in {literal(tuple(keys))}:",
            "            self.get_buffer(key).fill_(value)"]


def _renamed_lines(graph: Graph) -> list[str]:
    """Where ssnc 0.2's naming separator changed state_dict keys, the module also loads
    checkpoints saved under the old ones."""
    every = graph.all_nodes()  # a body's modules too
    renamed = {old: new for old, new in graph.aliases.items()
               if every[new].params and not graph.shares(every[new])}
    if not renamed:
        return []
    table = ", ".join(f"{literal(old)}: {literal(new)}" for old, new in sorted(renamed.items()))
    return ["        # checkpoints saved before ssnc 0.2 load too (old key -> key now)",
            f"        self.register_load_state_dict_pre_hook(_renamed_keys_hook({{{table}}}))"]


_counter = [0]


def build_module(graph: Graph, *, origin: str = "", version: str = "", drop_mode: str = "batch",
                 global_ratio: float = 0.5, drop_seed: int = 0) -> nn.Module:
    """Execute the generated source and instantiate its class (weights as torch makes them)."""
    source = generate_source(graph, origin=origin, version=version)
    _counter[0] += 1
    filename = f"<ssnc:{graph.model}:{_counter[0]}>"  # graph.model is an ssn NAME
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"ssnc_generated_{_counter[0]}")
    module.__dict__["__file__"] = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code
    sys.modules[module.__name__] = module  # importable: torch.export and pickle look it up
    cls = module.__dict__["MODEL"]
    instance: nn.Module = cls(drop_mode=drop_mode, global_ratio=global_ratio,
                              drop_seed=drop_seed)
    return instance


def load_tensors(module: nn.Module, tensors: dict[str, np.ndarray]) -> None:
    """Copy ``tensors`` (by state_dict key) into ``module``; every key must exist with its shape."""
    state = module.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            target = state[key]
            if tuple(target.shape) != value.shape:
                raise ValueError(f"{key}: expected {tuple(target.shape)}, got {value.shape}")
            target.copy_(torch.from_numpy(np.require(value, requirements="C")))  # 0-d stays 0-d


def to_torch(graph: Graph, *, seed: int = 0, tensors: dict[str, np.ndarray] | None = None,
             origin: str = "", version: str = "", drop_mode: str = "batch",
             global_ratio: float = 0.5, drop_seed: int | None = None) -> nn.Module:
    """The model as an nn.Module holding the compiler's initial weights at ``seed`` (or
    ``tensors``, checked by the caller)."""
    module = build_module(graph, origin=origin, version=version, drop_mode=drop_mode,
                          global_ratio=global_ratio,
                          drop_seed=seed if drop_seed is None else drop_seed)
    values = tensors if tensors is not None else initial_state(graph, seed)
    expected = set(expected_tensors(graph))
    present = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    assert present == expected, sorted(present ^ expected)[:5]
    load_tensors(module, values)
    return module



def example_inputs(graph: Graph, batch: int = 2, steps: int = 5) -> tuple[torch.Tensor, ...]:
    """Deterministic inputs of the model's types, one per input in order (token ids below
    the vocabulary for `tokens`)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for name in graph.inputs:
        node = graph[name]
        shape = [batch if d == "N" else steps if isinstance(d, str) else int(d)
                 for d in node.shape or ()]
        if node.dtype == "i64":
            vocab = node.attrs.get("vocab")
            out.append(torch.randint(0, vocab if isinstance(vocab, int) else 2, shape,
                                     generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


def example_input(graph: Graph, batch: int = 2, steps: int = 5) -> torch.Tensor:
    """The deterministic input of a model that has one (`example_inputs` for several)."""
    if len(graph.inputs) != 1:
        raise ValueError(f"model `{graph.model}` has {len(graph.inputs)} inputs: use "
                         "example_inputs")
    return example_inputs(graph, batch, steps)[0]


def export_program(graph: Graph, module: nn.Module) -> torch.export.ExportedProgram:
    """A ``torch.export`` program of ``module`` (compiled from ``graph``) in eval mode, with
    a dynamic batch (and time) dimension. Named outputs come out as a dict: a saved program
    is loaded without the generated class, so it cannot hold that named tuple."""
    module.eval()
    xs = example_inputs(graph)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    time = torch.export.Dim("time", min=1, max=1 << 20)
    dims = tuple({0: batch, **({1: time} if (graph[i].shape or ())[1:2] == ("T",) else {})}
                 for i in graph.inputs)
    shapes: tuple[object, ...] = dims
    if graph.output_names:  # on the instance, so the state_dict keys stay the model's
        named = type(module).forward
        module.forward = types.MethodType(
            lambda self, *xs: named(self, *xs)._asdict(), module)
        shapes = (dims,)  # the wrapper takes the inputs as one `*xs`
    try:
        return torch.export.export(module, xs, dynamic_shapes=shapes)
    finally:
        module.__dict__.pop("forward", None)
