"""The public op API: what a package needs to declare an op of its own, as ssnc declares its
activations. `op(...)` makes the declaration; a package lists each op under the entry-point
group `ssnc.ops` (named after the op), or a user names the module (`--plugin MODULE`,
`plugins=`). Nothing here imports a backend or torch (docs/plugins.md)."""

from __future__ import annotations

from collections.abc import Sequence

from .compiler.axes import Axes, roles_of
from .compiler.ops import (
    FINITE,
    NON_NEGATIVE,
    OPS,
    POSITIVE,
    PROBABILITY,
    REQUIRED,
    Attr,
    Attrs,
    OnnxLowering,
    OpCall,
    OpDecl,
    Origin,
    ParamSpec,
    Range,
    Shape,
    ShapeMismatch,
    TorchLowering,
    channel_axis,
    fmt_shape,
    op,
    sliding_axes,
)
from .compiler.plugins import GROUP, installed

__all__ = [
    "FINITE",
    "GROUP",
    "NON_NEGATIVE",
    "POSITIVE",
    "PROBABILITY",
    "REQUIRED",
    "Attr",
    "Attrs",
    "Axes",
    "OnnxLowering",
    "OpCall",
    "OpDecl",
    "Origin",
    "ParamSpec",
    "Range",
    "Shape",
    "ShapeMismatch",
    "TorchLowering",
    "catalog",
    "channel_axis",
    "describe",
    "fmt_shape",
    "listing",
    "op",
    "roles_of",
    "signature",
    "sliding_axes",
]


def catalog(load_installed: bool = False) -> dict[str, OpDecl | str]:
    """Every op a spec can call, by name: ssnc's own and those loaded, as declarations, and
    the installed plugins' ops not loaded yet as the package that declares them (with
    ``load_installed``, imported and declared too)."""
    from .compiler.plugins import use_installed
    from .compiler.values import OpCtor

    builtins = {name for name, value in _visible().items() if isinstance(value, OpCtor)}
    out: dict[str, OpDecl | str] = {name: OPS[name] for name in OPS
                                    if name in builtins or OPS[name].origin is not None}
    for name, providers in sorted(installed().items()):
        if name in out:
            continue
        if load_installed:
            from .base.diagnostics import Span

            out[name] = use_installed(name, Span.unknown("ssnc ops"))
        else:
            out[name] = f"{providers[0].package} {providers[0].version}".strip()
    return out


def _visible() -> dict[str, object]:
    from .compiler.builtins import builtin_env

    return dict(builtin_env().names)


def signature(decl: OpDecl) -> str:
    """`conv(out=none, k=3, ...)`: the op's attributes with their defaults, in order."""
    from .compiler.literals import ssn_text

    def one(a: Attr) -> str:
        return a.name if a.default is REQUIRED else f"{a.name}={ssn_text(a.default)}"
    return f"{decl.name}({', '.join(one(a) for a in decl.attrs)})"


def describe(decl: OpDecl) -> str:
    """An op in full: signature, where it comes from, documentation, attributes, arity."""
    inputs = "one or more inputs" if decl.arity is None else \
        f"{decl.arity} input{'s' if decl.arity != 1 else ''}"
    lines = [signature(decl), f"  from {decl.origin or 'ssnc'}; {inputs}", "", f"  {decl.doc}"]
    if decl.attrs:
        lines += ["", "  attributes:"]
        for a in decl.attrs:
            kinds = "/".join(sorted({t.__name__ for t in a.types}))
            limits = f"; {a.range.words}" if a.range is not None and a.range.words else ""
            lines.append(f"    {a.name} ({kinds}{limits}): {a.doc}")
    lowered = [b for b in ("torch", "onnx") if b in decl.lowerings] if decl.origin else []
    if decl.origin:
        lines += ["", f"  lowerings: {', '.join(lowered) or 'none'}"]
    return "\n".join(lines)


def listing(name: str | None = None, plugins: Sequence[str] = ()) -> str:
    """What `ssnc ops` prints: every op with its signature and first sentence, or ``name``
    in full (its plugin loaded); E0601 for a name no op has."""
    from .base.diagnostics import E_OPTION, did_you_mean, error
    from .base.options import option_span
    from .compiler.plugins import load_modules

    load_modules(plugins, option_span("plugin"))
    ops = catalog(load_installed=name is not None)
    if name is not None:
        decl = ops.get(name)
        if not isinstance(decl, OpDecl):
            where = option_span("ops", name)
            raise error(E_OPTION, f"no op named `{name}`", where,
                        hint=did_you_mean(name, ops) or "`ssnc ops` lists them"
                        ).with_sources({where.file: name})
        return describe(decl)
    lines = []
    for key, decl in ops.items():
        if isinstance(decl, OpDecl):
            source = f"  [{decl.origin}]" if decl.origin is not None else ""
            lines += [signature(decl), f"    {decl.doc.split('. ')[0].rstrip('.')}{source}"]
        else:
            lines += [f"{key}(...)", f"    from the installed package {decl} (`ssnc ops {key}` "
                      "loads it)"]
    return "\n".join(lines)
