"""The library entry points: load a spec (with its imports and the standard library), pick a
model, override its parameters, and get its verified IR."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx

from .base.diagnostics import (
    E_IMPORT_CYCLE,
    E_IMPORT_ESCAPE,
    E_IMPORT_MISSING,
    E_NO_MODEL,
    E_OPTION,
    LINE_END,
    Diagnostic,
    Note,
    Span,
    SsnError,
    SsnWarning,
    collect,
    did_you_mean,
    error,
    excerpt,
    normalize_line_ends,
)
from .base.options import option_span
from .base.specfile import read_spec
from .compiler.axes import roles_of
from .compiler.checks import check_program, names_used
from .compiler.elaborate import Elaborator, Limits, builtin_env, check_int
from .compiler.guard import guarded
from .compiler.initializers import expected_tensors, initial_state
from .compiler.instantiate import Progress
from .compiler.ir import Graph
from .compiler.legacy import renamed_keys
from .compiler.memory import Memory, memory
from .compiler.ops import OpDecl, fmt_shape
from .compiler.passes.extract_column import extract_column
from .compiler.pipeline import run_passes
from .compiler.plugins import BUILTIN as BUILTIN_OPS
from .compiler.plugins import load_modules, plugin_names, use_installed
from .compiler.printer import format_graph
from .compiler.stats import info_json, op_count, sequence_steps, total_macs, total_params
from .compiler.values import Env, OpCtor, Rule, Value
from .grammar import ast
from .grammar.format import format_text
from .grammar.parser import parse
from .summary import Summary

STDLIB_FILES = ("fractal.ssn", "nin.ssn", "blocks.ssn", "recurrent.ssn", "hyper.ssn",
                "attention.ssn", "tree.ssn")


@dataclass
class _Loaded:
    program: ast.Program
    env: Env
    exports: dict[str, Value]


T = TypeVar("T")


class DropMode(StrEnum):
    """How drop-path acts while training, in the PyTorch backend (the spec's `drop_path` is
    the rate; this is the mode)."""

    BATCH = "batch"
    """One local/global draw per mini-batch; the columns it drops are not computed."""
    SAMPLE = "sample"
    """Per-sample draws; every column is computed and masked."""
    OFF = "off"
    """No drop-path: training sees every column."""

@cache
def _prelude() -> tuple[Env, tuple[tuple[str, str], ...]]:
    """The standard library, written in .ssn, visible (and shadowable) in every spec."""
    builtins = builtin_env()
    env = Env({}, builtins)
    texts = []
    programs = []
    for name in STDLIB_FILES:
        display = f"<stdlib>/{name}"
        text = resources.files("ssnc.compiler.stdlib").joinpath(name).read_text("utf-8")
        texts.append((display, text))
        programs.append(parse(text, display))
    for program in programs:
        for item in program.items:
            if isinstance(item, ast.Def):
                env.names[item.name] = Rule(item, env)
    diags = []
    for program in programs:
        diags += check_program(program, env.visible(), RESERVED)
    if diags:
        raise collect(diags).with_sources(dict(texts))
    return env, tuple(texts)


class Program:
    """A loaded spec: its models, rules and source texts."""

    def __init__(self, main: _Loaded, sources: dict[str, str], files: tuple[Path, ...] = ()):
        self._main = main
        self.sources = sources
        self.file = main.program.file
        self.files = files
        """The files read: the spec and every file it imports (outputs never replace them)."""
        self.models: dict[str, ast.Model] = {
            i.name: i for i in main.program.items if isinstance(i, ast.Model)}

    def model(self, name: str | None = None, *, limits: Limits | None = None,
              spans: Mapping[str, Span] | None = None, progress: Progress | None = None,
              **params: Any) -> Model:
        """Elaborate model ``name`` (the only one if omitted) with parameter overrides;
        ``progress(phase, done, total)`` hears how far a big model has got."""
        try:
            decl = self._pick(name)

            def elaborate() -> tuple[Graph, int]:
                # the elaborator goes with this frame, inside the guard: its records are
                # freed before the collector's first look at what the phase made
                elab = Elaborator(self._main.env, limits)
                elab.builder.progress = progress
                values = {k: _from_python(k, v, (spans or {}).get(k))
                          for k, v in params.items()}
                return (run_passes(elab.elaborate_model(decl, values, spans),
                                   progress=progress), elab.steps)

            graph, steps = guarded(elaborate, self.file)
        except SsnError as exc:
            raise exc.with_sources(self.sources) from None
        for diag in graph.warnings:
            warnings.warn(SsnWarning(diag, self.sources), stacklevel=2)
        return Model(graph, self, steps)

    def _pick(self, name: str | None) -> ast.Model:
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            span = Span(file=self.file, line=1, col=1, end_line=1, end_col=2)
            if not self.models:
                raise error(E_NO_MODEL, "this spec defines no model", span,
                            hint="add `model NAME : tensor[C, H, W] = ...`")
            raise error(E_NO_MODEL, "this spec defines several models; choose one", span,
                        hint="models: " + ", ".join(self.models) + " (--model NAME)")
        if name not in self.models:
            span = option_span("model", name)
            self.sources[span.file] = name
            raise error(E_NO_MODEL, f"no model named `{name}` in {self.file}", span,
                        hint=did_you_mean(name, self.models)
                        or "models: " + (", ".join(self.models) or "none"))
        return self.models[name]

    def check(self, limits: Limits | None = None) -> list[Model]:
        """Elaborate and verify every model with its default parameters."""
        return [self.model(n, limits=limits) for n in self.models]


@dataclass(frozen=True)
class InputInfo:
    """One input of a compiled model: what a caller must feed it."""

    name: str
    shape: tuple[int | str, ...]
    """Sizes; `N` is the batch, a time axis of any length is `T` (`src_T` where several
    inputs have one)."""
    roles: str
    """One role letter per axis (`NCHW`, `NT`)."""
    dtype: str
    """`f32`, or `i64` for token ids."""


@dataclass
class Model:
    """One elaborated model: its verified IR and what can be computed from it."""

    ir: Graph
    program: Program = field(repr=False)
    steps: int = field(default=0, compare=False)
    """Evaluation steps its elaboration took (deterministic; the budget is Limits.max_steps)."""
    _columns: dict[int, Model] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.ir.model

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The IR as a networkx graph: nodes keyed by scope path, attribute ``node``."""
        return self.ir.nx

    @property
    def total_params(self) -> int:
        """Trainable parameters, shared ones counted once."""
        return total_params(self.ir)

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates per sample."""
        return total_macs(self.ir)

    @property
    def op_count(self) -> int:
        """Nodes that compute, bodies included (parameters do not count)."""
        return op_count(self.ir)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """What compiling it reported without stopping (W codes: a value nothing reads,
        removed); ``Diagnostic.render(model.program.sources)`` prints one."""
        return self.ir.warnings

    @property
    def inputs(self) -> dict[str, InputInfo]:
        """The model's inputs in order, by name (`input` for a single unnamed one): each
        one's shape (with `N` and time symbols), axis roles and dtype."""
        return {name: InputInfo(name, tuple(self.ir[name].shape or ()),
                                roles_of(self.ir[name].shape or ()), self.ir[name].dtype)
                for name in self.ir.inputs}

    def summary(self, max_depth: int | None = None) -> Summary:
        """Per-scope rows (output shape, parameters, MACs), a list that prints as a table
        with the totals (trainable parameters, buffers)."""
        return Summary(self.ir, max_depth)

    def __repr__(self) -> str:
        outs = ", ".join(fmt_shape(self.ir[o].shape or ()) for o in self.ir.outputs)
        return (f"<ssnc.Model {self.name}: {self.ir.input_type} -> {outs}, "
                f"{self.op_count:,} nodes, {self.total_params:,} parameters>")

    def _repr_svg_(self) -> str | None:
        """The picture in Jupyter, as `ssnc graph` draws it (collapsed until it has at most
        60 boxes); None without Graphviz, so the one-line repr shows instead."""
        from .backends.dot import legible_depth, svg, to_dot

        try:
            return svg(to_dot(self.ir, legible_depth(self.ir)))
        except SsnError:  # no Graphviz, or it failed
            return None

    def info(self, max_depth: int | None = None, steps: int | None = None) -> dict[str, Any]:
        """The data of `ssnc info --json`; with ``steps``, also the MACs of a whole sequence of
        that many steps (a model with a time axis only)."""
        data = info_json(self.ir, max_depth)
        if steps is not None:
            data["macs_per_sequence"] = {"steps": steps, "macs": self.macs_per_sequence(steps)}
        return data

    def memory(self, batch: int = 1, *, steps: int | None = None, precision: str = "fp32",
               optimizer: str = "adam", device: str = "cuda",
               max_depth: int | None = None) -> Memory:
        """Bytes before running, at batch size ``batch`` (time axes ``steps`` long, 64 by
        default): weights, gradients, ``optimizer`` state (sgd, momentum, adam, adamw) and
        activations kept for backward, per scope, with the peaks of a training step on
        ``device`` (cuda, cpu) and of inference (docs/memory.md)."""
        return memory(self.ir, batch, steps=steps, precision=precision, optimizer=optimizer,
                      device=device, max_depth=max_depth, column=lambda k: self.column(k).ir)

    def macs_per_sequence(self, steps: int) -> int:
        """Multiply-accumulates per sample of a sequence of ``steps`` steps: every op of a
        sequence model runs once per step, so the per-step count times ``steps``."""
        return self.total_macs * sequence_steps(self.ir, steps)

    def format_ir(self) -> str:
        """The printed IR."""
        return format_graph(self.ir)

    def column(self, k: int) -> Model:
        """The single-column subnetwork: every fractal reduced to its column ``k``
        (1 = shallowest). Names are unchanged, so trained weights load into it."""
        if k in self._columns:
            return self._columns[k]
        try:
            self._columns[k] = Model(run_passes(extract_column(self.ir, k), ()), self.program)
            return self._columns[k]
        except SsnError as exc:
            raise exc.with_sources({option_span("column", str(k)).file: str(k)}) from None

    def with_outputs(self, *targets: str, **named: str) -> Model:
        """This model with more outputs: each target names a node or a scope of the IR
        (``"stage3.fractal"``: the value the scope gives the rest of the model), by keyword
        under that name, else under the target's name with dots as underscores. The model's
        own outputs come first (an unnamed one as ``logits``). The parameters are the same,
        so trained weights load into it."""
        return self.tapped([(None, t) for t in targets] + list(named.items()))

    def tapped(self, taps: Sequence[tuple[str | None, str]]) -> Model:
        """``with_outputs`` with the taps in a given order, as ``(name or None, target)``."""
        from .compiler.passes.remove_unread import remove_unread
        from .compiler.taps import add_taps

        graph = self.ir.full or self.ir  # a tap keeps a value nothing else reads
        for name, target in taps:
            try:
                graph = add_taps(graph, [(name, target)])
            except SsnError as exc:
                text = target if name is None else f"{name}={target}"
                raise exc.with_sources({option_span("tap", text).file: text}) from None
        return Model(run_passes(graph, (remove_unread,)), self.program)

    def weights(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Tensors read from a weights file and checked against this model (by key)."""
        from .output import check_weights, read_weights

        expected = expected_tensors(self.ir)
        expected.update((old, expected[new]) for old, new in renamed_keys(self.ir).items())
        return self._sourced(lambda: check_weights(
            self.ir, read_weights(path, expected), str(path)))

    def transfer(self, source: str | os.PathLike[str], *, match: str = "names",
                 mapping: str | os.PathLike[str] | Sequence[tuple[str, str]] | None = None,
                 allow_partial: bool = False, allow_nonfinite: bool = False, seed: int = 0,
                 reverse: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
        """Weights for this model from a checkpoint in other names (a PyTorch state dict,
        .safetensors, .npz, an ONNX model's initializers), matched by ``names`` (``mapping``:
        a rules file or ``(pattern, target)`` pairs; ssnc's own keys need none) or by
        ``order``, with the report (`ssnc.transfer.TransferReport`). Tensors not loaded
        keep their initial values at ``seed`` where ``allow_partial``; otherwise a partial
        transfer raises, with ``.report``. With ``reverse`` (this model's weights), the
        result is those weights in ``source``'s names and layouts instead (`source` a
        checkpoint of the other model, as a template)."""
        from .transfer import read_mapping, read_source
        from .transfer import reverse as backwards
        from .transfer import transfer as forwards

        def run() -> tuple[dict[str, Any], Any]:
            rules: list[Any] = []
            if isinstance(mapping, str | os.PathLike):
                text = read_spec(Path(mapping), str(mapping))
                self.program.sources[str(mapping)] = text
                rules = read_mapping(text, str(mapping))
            elif mapping is not None:
                text = "\n".join(f"{p} -> {t}" for p, t in mapping)
                self.program.sources["<mapping>"] = text
                rules = read_mapping(text, "<mapping>")
            src = read_source(source, allow_nonfinite)
            if reverse is not None:
                return backwards(self.ir, src, reverse, match, rules, allow_partial)
            return forwards(self.ir, src, match, rules, initial_state(self.ir, seed),
                            allow_partial)
        return self._sourced(run)

    def _select(self, column: int | None, weights: str | os.PathLike[str] | None
                ) -> tuple[Model, dict[str, Any] | None]:
        """The model to compile and its tensors: weights are checked against the whole model
        (a trained full model's file), then narrowed to the column's subset."""
        tensors = self.weights(weights) if weights is not None else None
        if column is None:
            return self, tensors
        model = self.column(column)
        if tensors is not None:
            keep = set(expected_tensors(model.ir))
            tensors = {k: v for k, v in tensors.items() if k in keep}
        return model, tensors

    def initial_weights(self, seed: int = 0) -> dict[str, Any]:
        """The compiler's deterministic initial tensors at ``seed``, by state_dict key."""
        return self._sourced(lambda: initial_state(self.ir, seed))

    def _sourced(self, fn: Callable[[], T]) -> T:
        """``fn()``, with the spec's text attached to any diagnostic it raises."""
        try:
            return fn()
        except SsnError as exc:
            raise exc.with_sources(self.program.sources) from None

    def to_onnx(self, seed: int = 0, *, column: int | None = None,
                weights: str | os.PathLike[str] | None = None, progress: Any = None,
                **options: Any) -> Any:
        """An ``onnx.ModelProto`` in inference form, built from the IR (torch is not
        imported unless ``weights`` is a torch checkpoint); batch (and time) dimensions are
        dynamic. ``options`` are `OnnxOptions` fields (docs/onnx.md): ``flat`` (default True,
        the form every runtime loads; False: a model-local function per rule instance, for
        ONNX Runtime and Netron), ``opset``, ``precision`` and ``io_precision`` ("fp32",
        "fp16", "bf16"), ``batch`` and ``steps`` (fix `N` and `T`), ``symbolic_hw``
        (symbolic `H`, `W` for a fully convolutional model), and for runtimes without loops
        or computed kernels ``unroll`` (each time loop as ``steps`` steps) and
        ``fold_weights`` (weight-only values stored as weights)."""
        from . import __version__
        from .backends import onnx as onnx_backend

        chosen = self._sourced(lambda: onnx_backend.OnnxOptions.of(**options).check())
        model, tensors = self._select(column, weights)
        return self._sourced(lambda: onnx_backend.export(
            model.ir, chosen, tensors=tensors, seed=seed,
            spec_text=self.program.sources.get(self.program.file, ""), version=__version__,
            progress=progress))

    def picture(self, kind: str = "dot", depth: int | None = None) -> str:
        """The model drawn as `ssnc graph` draws it: Graphviz DOT text (``kind="dot"``) or a
        Mermaid flowchart (``"mermaid"``), scopes deeper than ``depth`` collapsed."""
        from .backends.dot import to_dot, to_mermaid

        return to_mermaid(self.ir, depth) if kind == "mermaid" else to_dot(self.ir, depth)

    def to_torch_program(self, seed: int = 0, *, column: int | None = None,
                         weights: str | os.PathLike[str] | None = None) -> Any:
        """A ``torch.export.ExportedProgram`` in eval mode, dynamic in the batch (and time)
        dimension, with the compiler's initial weights at ``seed`` (or ``weights``)."""
        from .extras import require_torch

        require_torch("Model.to_torch_program()")
        from .backends.torch import export_program

        net = self.to_torch(seed, column=column, weights=weights)
        compiled = self.column(column) if column is not None else self
        return self._sourced(lambda: export_program(compiled.ir, net))

    def torch_source(self) -> str:
        """Standalone PyTorch source for this model (imports torch only)."""
        from . import __version__
        from .extras import require_torch

        require_torch("Model.torch_source()")
        from .backends.torch import generate_source

        return self._sourced(lambda: generate_source(self.ir, origin=self.program.file,
                                                     version=__version__))

    def to_torch(self, seed: int = 0, *, column: int | None = None,
                 weights: str | os.PathLike[str] | None = None,
                 drop_mode: DropMode | str = DropMode.BATCH, global_ratio: float = 0.5,
                 drop_seed: int | None = None, drop_path: str | None = None,
                 device: Any = None, dtype: Any = None) -> Any:
        """An ``nn.Module`` with the compiler's initial weights at ``seed`` (or ``weights``),
        on ``device`` and in ``dtype`` if given (as ``.to(device, dtype)`` would).

        ``column``: compile the single-column subnetwork. ``drop_mode`` (a DropMode): how
        drop-path acts while training; the spec's ``drop_path`` is its rate. ``global_ratio``
        is the share of global draws; ``drop_seed`` (default: ``seed``) seeds the draws,
        identically on every rank. ``drop_path=`` is the old name of ``drop_mode``."""
        from . import __version__
        from .extras import require_torch

        require_torch("Model.to_torch()")
        from .backends.torch import to_torch

        if drop_path is not None:
            warnings.warn("to_torch(drop_path=...) is now to_torch(drop_mode=...): the spec's "
                          "drop_path is a rate, this is a mode", DeprecationWarning, stacklevel=2)
            drop_mode = drop_path
        try:
            mode = DropMode(drop_mode)
        except ValueError:
            raise error(E_OPTION, f"drop_mode must be one of "
                        f"{', '.join(m.value for m in DropMode)}, not {drop_mode!r}",
                        Span.unknown("<drop_mode>")) from None
        model, tensors = self._select(column, weights)
        net = self._sourced(lambda: to_torch(
            model.ir, seed=seed, tensors=tensors, origin=self.program.file,
            version=__version__, drop_mode=mode.value, global_ratio=global_ratio,
            drop_seed=drop_seed))
        return net if device is None and dtype is None else net.to(device=device, dtype=dtype)

    def __str__(self) -> str:
        return self.format_ir()


def _from_python(key: str, value: Any, span: Span | None) -> Value:
    if isinstance(value, list | tuple):
        return tuple(_from_python(key, v, span) for v in value)
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return check_int(value, span or Span.unknown("<params>"))
    raise error(E_OPTION, f"parameter `{key}` cannot be {type(value).__name__}",
                span or Span.unknown("<params>"), hint="use numbers, booleans, strings or lists")


class _Loader:
    def __init__(self, root: Path, root_display: str, plugins: Sequence[str | OpDecl] = ()):
        self.root = root.resolve()
        self.root_display = root_display or "."
        self.sources: dict[str, str] = all_sources()
        self.loaded: dict[Path, _Loaded] = {}
        self.stack: list[Path] = []
        self.files: list[Path] = []
        self.plugins: dict[str, Value] = {
            d.name: OpCtor(d) for d in load_modules(plugins, option_span("plugin"))}
        """The ops of the plugins named explicitly, visible in every file."""

    def load(self, text: str, display: str, path: Path | None) -> _Loaded:
        text = normalize_line_ends(text)
        self.sources[display] = text
        program = parse(text, display)
        prelude, _ = _prelude()
        plugins = Env(dict(self.plugins), prelude)
        imported = Env({}, plugins)
        diags: list[Diagnostic] = []
        for item in program.items:
            if isinstance(item, ast.Import):
                try:
                    imported.names.update(self._import(item, display, path).exports)
                except SsnError as exc:
                    diags.extend(exc.diagnostics)
        env = Env({}, imported)
        exports = dict(imported.names)
        for item in program.items:
            if isinstance(item, ast.Def):
                env.names[item.name] = exports[item.name] = Rule(item, env)
        visible, used = imported.visible(), names_used(program)
        for name in plugin_names(n for n in used if n not in env.names
                                 and (n not in visible or n in BUILTIN_OPS)):
            try:  # an installed package's op the spec uses: imported now, not before
                plugins.names[name] = OpCtor(use_installed(name, used[name]))
            except SsnError as exc:  # (one that would shadow a built-in is refused)
                diags.extend(exc.diagnostics)
        diags += check_program(program, imported.visible(), RESERVED)
        if diags:
            raise collect(diags).with_sources(self.sources)
        return _Loaded(program, env, exports)

    def _import(self, item: ast.Import, display: str, path: Path | None) -> _Loaded:
        base = path.parent if path is not None else self.root
        if "\0" in item.path or len(item.path) > MAX_PATH:
            raise error(E_IMPORT_MISSING, f"`{excerpt(item.path)}` is not a usable path",
                        item.span, hint="a NUL byte or a path longer than "
                        f"{MAX_PATH:,} characters cannot name a file")
        try:
            target = (base / item.path).resolve()
        except (OSError, ValueError) as exc:
            raise error(E_IMPORT_MISSING, f"cannot resolve `{excerpt(item.path)}`: "
                        f"{getattr(exc, 'strerror', None) or exc}", item.span) from None
        if not target.is_relative_to(self.root):
            raise error(E_IMPORT_ESCAPE, f"`{item.path}` is outside the spec's folder tree",
                        item.span,
                        notes=[Note(f"imports are confined to the folder `{self.root_display}`")],
                        hint="copy the file into the spec's folder")
        if target in self.stack:
            raise error(E_IMPORT_CYCLE, f"`{item.path}` imports this file back", item.span,
                        notes=[Note(" -> ".join(p.name for p in [*self.stack, target]))])
        if target in self.loaded:
            return self.loaded[target]
        sub_display = os.path.normpath(os.path.join(os.path.dirname(display), item.path))
        if not _exists(target):
            raise error(E_IMPORT_MISSING, f"cannot find `{excerpt(item.path)}`", item.span,
                        notes=[Note(f"looked for `{excerpt(sub_display)}`")],
                        hint=did_you_mean(Path(item.path).name,
                                          [p.name for p in target.parent.glob("*.ssn")])
                        if target.parent.is_dir() else None)
        self.stack.append(target)
        self.files.append(target)
        try:
            loaded = self.load(read_spec(target, sub_display, item.span), sub_display, target)
        finally:
            self.stack.pop()
        self.loaded[target] = loaded
        return loaded


MAX_PATH = 4096
"""The longest import path accepted."""


RESERVED = frozenset(builtin_env().names) | {"true", "false", "none"}
"""Names no rule may take: primitive ops, built-in functions and the literal keywords."""


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def load(path: str | os.PathLike[str], *, plugins: Sequence[str | OpDecl] = ()) -> Program:
    """Load a spec file; imports are resolved inside the file's folder tree. ``plugins``
    names op plugins to use besides the installed ones: modules (every op they declare) or
    ops made with `ssnc.op`."""
    p = Path(path)
    display = str(path)
    text = read_spec(p, display)
    loader = _Loader(p.parent, os.path.dirname(display), plugins)
    loader.stack.append(p.resolve())
    loader.files.append(p.resolve())
    try:
        main = guarded(lambda: loader.load(text, display, p.resolve()), display)
        return Program(main, loader.sources, tuple(loader.files))
    except SsnError as exc:
        raise exc.with_sources(loader.sources) from None


def loads(text: str, file: str = "<string>", root: str | os.PathLike[str] = ".", *,
          plugins: Sequence[str | OpDecl] = ()) -> Program:
    """Load a spec from text; imports are resolved inside ``root``; ``plugins`` as `load`'s."""
    loader = _Loader(Path(root), str(root), plugins)
    try:
        main = guarded(lambda: loader.load(text.removeprefix("\ufeff"), file, None), file)
        return Program(main, loader.sources, tuple(loader.files))
    except SsnError as exc:
        raise exc.with_sources(loader.sources) from None


def format_spec(text: str, file: str = "<string>") -> str:
    """``text`` in the canonical layout that `ssnc fmt` writes: comments kept, and the same
    AST (so the same IR). A syntax error is a diagnostic, as when loading. Line ends keep the
    file's style, that of its first line end (`\\n`, `\\r\\n` or `\\r`), as black and rustfmt
    do: a Windows file stays CRLF, and a file that mixes styles comes out in its first one."""
    text = text.removeprefix("\ufeff")
    first = LINE_END.search(text)
    try:
        formatted = guarded(lambda: format_text(text, file), file)
    except SsnError as exc:
        raise exc.with_sources({file: normalize_line_ends(text)}) from None
    return formatted if first is None or first.group() == "\n" else (
        formatted.replace("\n", first.group()))


def render_picture(text: str, kind: str, output: Path, tmp: Path) -> None:
    """Graphviz ``text`` rendered as ``kind`` (svg, png, pdf; dot and mmd written as they
    are) into ``tmp``, the temporary file an atomic write of ``output`` fills."""
    from .backends.dot import render

    render(text, kind, output, tmp)


def check_onnx_options(**options: Any) -> None:
    """E0601 if ``options`` (`OnnxOptions` fields) cannot all be honoured, before any work."""
    from .backends.onnx import OnnxOptions

    OnnxOptions.of(**options).check()


def all_sources() -> dict[str, str]:
    """The standard library's texts, for rendering diagnostics that point into it."""
    return dict(_prelude()[1])


def anneal_slope(epoch: float, start: float = 1.0, rate: float = 0.04,
                 cap: float = 5.0) -> float:
    """HM-RNN's slope schedule for its boundary detectors (Chung et al. 2016):
    ``a = min(cap, start + rate * epoch)``, for ``model.set_slope(anneal_slope(epoch))``."""
    return min(cap, start + rate * epoch)


def ops_listing(name: str | None = None, plugins: Sequence[str] = ()) -> str:
    """What `ssnc ops` prints: every op a spec can call, or ``name`` in full
    (`ssnc.plugin.listing`)."""
    from .plugin import listing

    return listing(name, plugins)


def serve_lsp() -> None:
    """Run `ssnc lsp`'s server over stdio (needs the `lsp` extra: pygls)."""
    from .extras import require_extra

    require_extra("pygls", "the language server", "lsp")
    from .lsp import serve

    serve()
