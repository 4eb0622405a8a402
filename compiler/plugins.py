"""Op plugins: ops that installed packages declare through the entry-point group `ssnc.ops`
(one entry point per op, named after it), or that a module names explicitly (`--plugin
MODULE`, `plugins=`). Installed names are read from package metadata without importing
anything; a plugin's module is imported only when a spec uses one of its ops. A plugin is
code the user installed, like any package; a spec never imports or runs Python."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from types import ModuleType

from ..base.diagnostics import (
    E_NO_LOWERING,
    E_PLUGIN_FAULT,
    E_PLUGIN_LOAD,
    Note,
    Span,
    SsnError,
    error,
    excerpt,
)
from .ops import OPS, OpDecl, Origin

GROUP = "ssnc.ops"
"""The entry-point group installed packages declare their ops in."""

BUILTIN = frozenset(OPS)
"""ssnc's own ops, which no plugin may shadow."""


@dataclass(frozen=True)
class Installed:
    """One op an installed package declares: its name, the package and version, and the
    entry point's `module:attribute` (not imported until a spec uses the op)."""

    name: str
    package: str
    version: str
    value: str
    entry: metadata.EntryPoint

    @property
    def origin(self) -> Origin:
        """The op's origin once loaded."""
        return Origin(self.package, self.version, self.value.partition(":")[0])


@cache
def installed() -> dict[str, tuple[Installed, ...]]:
    """Every op name installed packages declare, with the packages declaring it (two for a
    clash), read from their metadata only."""
    found: dict[str, list[Installed]] = {}
    for entry in metadata.entry_points(group=GROUP):
        dist = entry.dist
        package = dist.metadata["Name"] if dist is not None else entry.value.split(":")[0]
        version = dist.version if dist is not None else ""
        found.setdefault(entry.name, []).append(
            Installed(entry.name, package, version, entry.value, entry))
    return {name: tuple(ps) for name, ps in found.items()}


def use_installed(name: str, span: Span) -> OpDecl:
    """The op ``name`` of the installed package that declares it, imported and registered
    now (once); a clash, an import that fails or an entry point that is no op is E0701 at
    ``span``, the spec's first use of the name."""
    known = OPS.get(name)
    if known is not None and known.origin is not None:
        return known
    providers = installed()[name]
    if len(providers) > 1:
        raise error(E_PLUGIN_LOAD, f"two installed packages declare the op `{name}`: "
                    + " and ".join(f"{p.package} {p.version}" for p in providers), span,
                    hint="uninstall one of them, or name the module you want with "
                    "--plugin MODULE")
    p = providers[0]
    if name in BUILTIN:
        raise error(E_PLUGIN_LOAD, f"the op `{name}` of {p.package} {p.version} would shadow "
                    f"ssnc's built-in `{name}`", span,
                    hint=f"{p.package} must give its op another name")
    try:
        decl = p.entry.load()
    except Exception as exc:
        raise error(E_PLUGIN_LOAD, f"cannot load the op `{name}` of {p.package} {p.version}: "
                    f"{type(exc).__name__}: {_said(exc)}", span,
                    notes=[Note(f"its entry point is `{p.value}` (group {GROUP})")]) from None
    if not isinstance(decl, OpDecl) or decl.name != name:
        raise error(E_PLUGIN_LOAD, f"the entry point `{name}` of {p.package} {p.version} is "
                    f"not an op named `{name}` (made with `ssnc.op`)", span,
                    notes=[Note(f"it is `{p.value}`: {type(decl).__name__}")])
    return register(decl, p.origin, span)


def load_modules(plugins: Sequence[str | OpDecl], span: Span) -> list[OpDecl]:
    """The ops of explicitly named plugins: a module (every op it defines) or an op
    itself, each registered; a module that cannot be imported is E0701."""
    out: list[OpDecl] = []
    for item in plugins:
        if isinstance(item, OpDecl):  # declared where its shape rule is
            module = getattr(item.shape, "__module__", None) or "__main__"
            out.append(register(item, item.origin or _origin_of(item.name, module), span))
            continue
        try:
            module = _import(item)
        except Exception as exc:
            raise error(E_PLUGIN_LOAD, f"cannot import the plugin module `{excerpt(item)}`: "
                        f"{type(exc).__name__}: {_said(exc)}", span) from None
        decls = [v for v in vars(module).values() if isinstance(v, OpDecl)
                 and not (v.name in BUILTIN and OPS[v.name] is v)]
        if not decls:
            raise error(E_PLUGIN_LOAD, f"the module `{excerpt(item)}` declares no op",
                        span, hint="declare one at module level: `name = ssnc.op(...)`")
        out += [register(d, d.origin or _origin_of(d.name, item), span) for d in decls]
    return out


def _import(name: str) -> ModuleType:
    """Module ``name``, found as Python finds it, else in the working folder (as `python -m`
    finds a local module)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != name.partition(".")[0] or here in sys.path:
            raise
        sys.path.insert(0, here)
        return importlib.import_module(name)


def _origin_of(name: str, module: str) -> Origin:
    """The origin of an op declared in ``module``: the distribution that installs the
    module's top-level package, or the module itself."""
    top = module.partition(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    if dists:
        return Origin(dists[0], metadata.version(dists[0]), module)
    return Origin(module, "", module)


def register(decl: OpDecl, origin: Origin, span: Span) -> OpDecl:
    """Make ``decl`` (from ``origin``) an op every pass and backend finds; an op that
    shadows a built-in or another plugin's op is E0701 naming both."""
    known = OPS.get(decl.name)
    if known is not None:
        if known.origin is None:
            raise error(E_PLUGIN_LOAD, f"the op `{decl.name}` of {origin} would shadow "
                        f"ssnc's built-in `{decl.name}`", span,
                        hint=f"{origin.package} must give its op another name")
        if known.origin == origin or replace(known, origin=None) == replace(decl, origin=None):
            return known  # the same plugin, loaded again (or given as its declaration)
        raise error(E_PLUGIN_LOAD, f"the op `{decl.name}` of {origin} clashes with the op "
                    f"of the same name of {known.origin}", span,
                    hint="uninstall one of them, or use only one")
    decl = replace(decl, origin=origin)
    OPS[decl.name] = decl
    return decl


def near_installed(name: str) -> tuple[str, str] | None:
    """An installed op whose name is close to ``name``, with its package (for a hint)."""
    import difflib

    match = difflib.get_close_matches(name, sorted(installed()), n=1, cutoff=0.6)
    return (match[0], installed()[match[0]][0].package) if match else None


def plugin_fault(decl: OpDecl, what: str, span: Span, exc: Exception) -> SsnError:
    """E0702: a plugin op's own code raised (or returned nonsense) while ssnc ran it."""
    assert decl.origin is not None
    return error(E_PLUGIN_FAULT, f"the op `{decl.name}` of {decl.origin} failed in its "
                 f"{what}: {type(exc).__name__}: {_said(exc)}", span,
                 notes=[Note(f"the plugin's code raised this, not ssnc's: report it to "
                             f"{decl.origin.package}")])


def _said(exc: Exception) -> str:
    """What an exception says, on one line and bounded."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:199] + "…"


def no_lowering(decl: OpDecl, backend: str, span: Span) -> SsnError:
    """E0703: ``backend`` was asked for and the op has no lowering for it."""
    who = f"of {decl.origin} " if decl.origin is not None else ""
    return error(E_NO_LOWERING, f"the op `{decl.name}` {who}has no {backend} lowering",
                 span, hint=f"compile to another target, or give the op a lowering for {backend}")


def plugin_names(names: Iterable[str]) -> list[str]:
    """Of ``names``, those an installed package declares."""
    return [n for n in names if n in installed()]
