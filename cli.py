"""The `ssnc` command: a thin shell over the library API. Every failure is a diagnostic on
stderr with exit status 1, never a traceback."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
import warnings
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from .api import (
    Model,
    Program,
    format_spec,
    load,
    ops_listing,
    render_picture,
    serve_lsp,
)
from .base.diagnostics import E_INTERNAL, E_OPTION, Note, Span, SsnError, SsnWarning, error
from .base.options import spelling
from .base.specfile import decode_spec, read_spec
from .compiler.arguments import parse_sets, parse_steps
from .compiler.elaborate import Limits
from .output import (
    EXTERNAL_DATA_THRESHOLD,
    Terminated,
    check_target,
    progress_display,
    write_atomic,
    write_bytes,
    write_tensors,
)
from .targets import COMMON_FLAGS, ONNX_FLAGS, Request, Target, checked_door, target_of

DEFAULT_MAX_NODES = Limits().max_nodes


def _plain_flags(params: list[Any]) -> list[Any]:
    """Help shows a flag as a flag (`--json`), not with the type typer prints (`<bool>`)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _PlainFlags:
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))  # type: ignore[misc]


class _Command(_PlainFlags, TyperCommand):
    pass


class _Group(_PlainFlags, TyperGroup):
    pass


app = typer.Typer(
    name="ssnc",
    help="Compile self-similar neural-network specs (.ssn) to PyTorch and ONNX.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Group,
)

SpecArg = Annotated[Path, typer.Argument(help="The .ssn spec file.", show_default=False)]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m",
                                               help="Model to use (default: the only one).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a model parameter (repeatable).")]
MaxNodesOpt = Annotated[int, typer.Option("--max-nodes", help="Expansion limit in IR nodes.")]
PluginOpt = Annotated[list[str] | None, typer.Option(
    "--plugin", metavar="MODULE", help="Also use the ops this Python module declares (installed "
    "packages' ops need no flag); repeatable.")]


def _fail(exc: SsnError) -> None:
    sys.stderr.write(exc.render() + "\n")
    raise typer.Exit(1)


def _guard(fn: Callable[[], None]) -> None:
    try:
        with spelling({**COMMON_FLAGS, **ONNX_FLAGS}):  # messages name options by flag
            fn()
    except SsnError as exc:
        _fail(exc)
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None
    except BrokenPipeError:  # the reader went away (`ssnc ops | head`): stop quietly
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141) from None
    except Terminated as exc:
        sys.stderr.write("terminated\n")
        raise typer.Exit(128 + exc.signum) from None
    except Exception as exc:  # a bug: still reported as a diagnostic, never a traceback
        _fail(_internal(exc))


def _internal(exc: Exception) -> SsnError:
    """A bug, as a diagnostic."""
    return error(E_INTERNAL, f"internal compiler error: {type(exc).__name__}: {exc}",
                 Span.unknown("ssnc"),
                 notes=[Note("please report this with the spec and command that caused it")])


def load_model(spec: Path, model: str | None, sets: list[str] | None, max_nodes: int,
               step: Callable[..., None] | None = None,
               taps: list[str] | None = None, plugins: list[str] | None = None) -> Model:
    """The CLI's common path: load the spec (with the --plugin modules), pick the model,
    apply --set overrides and --tap outputs, show its warnings; a big model's elaboration
    shows as progress (``step``, else a display of its own)."""
    values, spans, sources = parse_sets(sets)
    program: Program = load(spec, plugins=plugins or ())
    program.sources.update(sources)
    if step is not None:
        m = _elaborate(program, model, max_nodes, spans, step, values)
    else:
        with progress_display() as shown:
            m = _elaborate(program, model, max_nodes, spans, shown, values)
    if taps:
        pairs = [t.partition("=") for t in taps]
        m = m.tapped([(name, target) if eq else (None, name) for name, eq, target in pairs])
    _show_warnings(m)  # after the taps: a tapped value is read
    return m


def _show_warnings(m: Model) -> None:
    """The model's W-code diagnostics on stderr, rendered as errors are (exit status 0)."""
    for diag in m.warnings:
        sys.stderr.write(diag.render(m.program.sources) + "\n\n")


def _elaborate(program: Program, model: str | None, max_nodes: int, spans: dict[str, Span],
               step: Callable[..., None], values: dict[str, Any]) -> Model:
    """``program.model`` with the CLI's limits and progress; its warnings are left to the
    caller, which shows them as diagnostics (not as Python warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SsnWarning)
        return program.model(model, limits=Limits(max_nodes=max_nodes), spans=spans,
                             progress=step, **values)


@app.command(cls=_Command)
def check(specs: Annotated[list[Path], typer.Argument(
              help="The .ssn spec files.", show_default=False, metavar="SPEC")],
          set_: SetOpt = None, max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES,
          plugin: PluginOpt = None) -> None:
    """Parse, elaborate and verify every model in each SPEC (`--set` applies to the models
    that have the parameter); every file is checked, exit 1 if any fails."""
    failed = False

    def one(spec: Path, values: dict[str, Any], spans: dict[str, Span],
            sources: dict[str, str], used: set[str]) -> None:
        program = load(spec, plugins=plugin or ())
        program.sources.update(sources)
        for name, decl in program.models.items():
            mine = {k: v for k, v in values.items() if k in {p.name for p in decl.params}}
            used.update(mine)
            with progress_display() as step:
                m = _elaborate(program, name, max_nodes, spans, step, mine)
            _show_warnings(m)
            typer.echo(f"{spec}: model `{m.name}` ok: {m.op_count} nodes, "
                       f"{m.total_params:,} parameters")
        if not program.models:
            typer.echo(f"{spec}: ok (no models)")

    def run() -> None:
        nonlocal failed
        values, spans, sources = parse_sets(set_)
        used: set[str] = set()
        for spec in specs:
            try:
                one(spec, values, spans, sources, used)
            except SsnError as exc:
                sys.stderr.write(exc.render() + "\n")
                failed = True
        for key in values:
            if key not in used and not failed:
                raise error(E_OPTION, f"no model in {', '.join(map(str, specs))} has a "
                            f"parameter `{key}`", spans[key]).with_sources(sources)
    _guard(run)
    if failed:
        raise typer.Exit(1)


@app.command(cls=_Command)
def info(
    spec: SpecArg,
    model: ModelOpt = None,
    set_: SetOpt = None,
    depth: Annotated[int, typer.Option("--depth", "-d", help="Deepest scope level listed.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Also the MACs of a whole sequence of this many steps; with "
        "--memory, the sequence length (default 64).")] = None,
    column: Annotated[int | None, typer.Option(
        "--column", help="Only column K of every fractal (1 = shallowest).")] = None,
    memory: Annotated[bool, typer.Option(
        "--memory", help="Bytes instead: weights and activations per scope, and the "
        "inference peak (docs/memory.md).")] = False,
    train: Annotated[bool, typer.Option(
        "--train", help="With --memory: a training step's gradients, optimizer state and "
        "activations kept for backward, and its peak.")] = False,
    batch: Annotated[int | None, typer.Option(
        "--batch", help="With --memory: the batch size (default 1).")] = None,
    optimizer: Annotated[str | None, typer.Option(
        "--optimizer", metavar="sgd|momentum|adam|adamw",
        help="With --train: its state per parameter (default adam).")] = None,
    precision: Annotated[str | None, typer.Option(
        "--precision", metavar="fp32|fp16|bf16",
        help="With --memory: the dtype of weights and activations (default fp32).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", metavar="cuda|cpu", help="With --train: where it trains (default "
        "cuda; dropout keeps a float mask on the CPU).")] = None,
    plugin: PluginOpt = None,
) -> None:
    """Shapes, parameters and multiply-accumulates per scope, with totals; or, with
    --memory, bytes per scope and the peak."""
    def run() -> None:
        m = load_model(spec, model, set_, max_nodes, plugins=plugin)
        m = m.column(column) if column is not None else m
        given = {"--batch": batch, "--optimizer": optimizer, "--precision": precision,
                 "--device": device, "--train": train or None}
        if memory:
            _print_memory(m, depth, as_json, train, steps=steps,
                          batch=1 if batch is None else batch,
                          optimizer=optimizer or "adam", precision=precision or "fp32",
                          device=device or "cuda")
            return
        if any(v is not None for v in given.values()):
            flag = next(k for k, v in given.items() if v is not None)
            raise error(E_OPTION, f"{flag} applies to --memory", Span.unknown(flag),
                        hint=f"ssnc info --memory {flag} ...")
        if as_json:
            typer.echo(json.dumps(m.info(depth, steps), indent=2))
            return
        from rich.console import Console

        summary = m.summary(depth)
        console = Console(highlight=False, markup=False)
        console.print(summary.table())
        if steps is not None:
            console.print(f"MACs per sequence of {steps:,} steps: "
                          f"{m.macs_per_sequence(steps):,}")
        for line in summary.footer():
            console.print(line)
    _guard(run)


def _print_memory(m: Model, depth: int, as_json: bool, train: bool, **options: Any) -> None:
    """`ssnc info --memory`: the estimate's table and peak, or its JSON."""
    with spelling({"optimizer": "--optimizer", "device": "--device"}):
        found = m.memory(max_depth=depth, **options)
    if as_json:
        typer.echo(json.dumps(found.as_json(), indent=2))
        return
    from rich.console import Console

    from .summary import memory_footer, memory_table

    console = Console(highlight=False, markup=False)
    console.print(memory_table(found, train))
    for line in memory_footer(found, train):
        console.print(line)


@app.command(cls=_Command)
def ir(spec: SpecArg, model: ModelOpt = None, set_: SetOpt = None,
       max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES, plugin: PluginOpt = None) -> None:
    """Print the model's IR, one node per line."""
    def run() -> None:
        typer.echo(load_model(spec, model, set_, max_nodes, plugins=plugin).format_ir(),
                   nl=False)
    _guard(run)


class Picture(StrEnum):
    """What `ssnc graph` draws."""

    dot = "dot"
    svg = "svg"
    png = "png"
    pdf = "pdf"
    mermaid = "mermaid"


_PICTURE_SUFFIX = {".dot": Picture.dot, ".svg": Picture.svg, ".png": Picture.png,
                   ".pdf": Picture.pdf, ".mmd": Picture.mermaid}


@app.command(cls=_Command)
def graph(
    spec: SpecArg,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="A .svg, .png or .pdf (rendered by Graphviz), .dot or .mmd "
        "(Mermaid) file; without it, --format dot or mermaid prints the text.")] = None,
    format_: Annotated[Picture | None, typer.Option(
        "--format", "-f", help="The picture's format (default: -o's extension).")] = None,
    model: ModelOpt = None,
    set_: SetOpt = None,
    depth: Annotated[int | None, typer.Option(
        "--depth", "-d", help="Collapse clusters nested deeper than this (a recursion's "
        "levels one below the other, a scope that only wraps one other drawn with it).")] = None,
    column: Annotated[int | None, typer.Option(
        "--column", help="Draw only column K of every fractal.")] = None,
    max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES,
    plugin: PluginOpt = None,
) -> None:
    """Draw the model: scopes as nested clusters, collapsible by nesting depth."""
    def run() -> None:
        kind = _picture_format(format_, output)
        if output is not None:
            check_target(output, [spec])
        m = load_model(spec, model, set_, max_nodes, plugins=plugin)
        if column is not None:
            m = m.column(column)
        text = m.picture("mermaid" if kind is Picture.mermaid else "dot", depth)
        if output is None:
            typer.echo(text, nl=False)
            return
        write_atomic(output, lambda tmp: render_picture(text, kind.value, output, tmp),
                     inputs=m.program.files)
        typer.echo(f"wrote {output}", err=True)
    _guard(run)


@app.command(cls=_Command)
def ops(name: Annotated[str | None, typer.Argument(help="Show this op in full.",
                                                    show_default=False)] = None,
        plugin: PluginOpt = None) -> None:
    """List every op a spec can call (ssnc's own and installed plugins'), or show one."""
    _guard(lambda: typer.echo(ops_listing(name, plugin or ())))


@app.command(cls=_Command)
def transfer(
    spec: SpecArg,
    source: Annotated[Path, typer.Option(
        "--from", help="The checkpoint: a PyTorch state dict (.pt/.pth), .safetensors, .npz, "
        "or an ONNX model (its initializers).", show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Weights in ssnc's keys (.safetensors, .npz or .pt; default "
        "MODEL.safetensors); with --reverse, in the checkpoint's.")] = None,
    mapping: Annotated[Path | None, typer.Option("--map", help="Rules `PATTERN -> TARGET`, one "
                                                 "a line (docs/weights.md).")] = None,
    match: Annotated[str, typer.Option(
        "--match", metavar="names|order", help="By names (rules, and ssnc's own keys) or by "
        "the order the parameter-owning ops run.")] = "names",
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Keep initial "
                                                "values where nothing matched.")] = False,
    allow_nonfinite: Annotated[bool, typer.Option("--allow-nonfinite")] = False,
    reverse: Annotated[Path | None, typer.Option(
        "--reverse", metavar="WEIGHTS", help="The other way: these ssnc weights in the "
        "names and layouts of --from (a checkpoint of the other model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    model: ModelOpt = None, set_: SetOpt = None, plugin: PluginOpt = None,
    max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES,
) -> None:
    """Load a checkpoint in other names into SPEC's model, with a report (docs/weights.md)."""
    def run() -> None:
        if output is not None:
            check_target(output, [spec, source])
        m = load_model(spec, model, set_, max_nodes, plugins=plugin)
        out = output or Path(m.name + ("_reversed" if reverse else "") + ".safetensors")
        weights, report = m.transfer(source, match=match, mapping=mapping,
                                     allow_partial=allow_partial, allow_nonfinite=allow_nonfinite,
                                     reverse=None if reverse is None else m.weights(reverse))
        typer.echo(json.dumps(report.data(), indent=2) if as_json else "\n".join(report.lines()))
        write_atomic(out, lambda tmp: write_tensors(tmp, weights, out.suffix),
                     inputs=[*m.program.files, source])
        typer.echo(f"wrote {out}", err=True)
    _guard(run)


@app.command(cls=_Command)
def lsp() -> None:
    """Serve the Language Server Protocol over stdio, for editors (the `lsp` extra)."""
    _guard(serve_lsp)


def _picture_format(given: Picture | None, output: Path | None) -> Picture:
    """--format, else -o's extension; refused (E0601) before any work when they disagree,
    when the extension is not a picture's, or when a rendered picture has no file."""
    accepted = ", ".join(_PICTURE_SUFFIX)
    implied = _PICTURE_SUFFIX.get(output.suffix) if output is not None else None
    if output is not None and implied is None and given is None:
        raise error(E_OPTION, f"`ssnc graph` cannot draw into {output}: "
                    f"{'its extension' if output.suffix else 'a name with no extension'} "
                    "does not say a picture format", Span.unknown(str(output)),
                    hint=f"name a {accepted.rsplit(', ', 1)[0]} or .mmd file, or give --format")
    kind = given or implied
    if kind is None:
        raise error(E_OPTION, "`ssnc graph` needs -o FILE, or --format dot or mermaid to print "
                    "the text", Span.unknown("--output"))
    if implied is not None and implied is not kind:
        raise error(E_OPTION, f"--format {kind.value} contradicts {output}'s extension",
                    Span.unknown(str(output)), hint=f"accepted extensions: {accepted}")
    if output is None and kind not in (Picture.dot, Picture.mermaid):
        raise error(E_OPTION, f"a {kind.value} picture needs a file: give -o FILE",
                    Span.unknown("--output"))
    return kind


@app.command(cls=_Command)
def fmt(
    paths: Annotated[list[Path], typer.Argument(
        help="Spec files, folders (their .ssn files), or - for stdin to stdout.",
        show_default=False, metavar="SPEC")],
    check_only: Annotated[bool, typer.Option(
        "--check", help="Write nothing; show a diff and exit 1 if a file is not formatted.")]
    = False,
) -> None:
    """Rewrite specs in the canonical layout (comments kept, same IR), each file atomically."""
    counts = {"failed": 0, "changed": 0}
    files = _spec_files(paths)

    def one(path: Path) -> None:
        display = str(path)
        text = (decode_spec(sys.stdin.buffer.read(), "<stdin>") if display == "-"
                else read_spec(path, display))
        new = format_spec(text, "<stdin>" if display == "-" else display)
        if display == "-" and not check_only:
            sys.stdout.write(new)
        elif new != text:
            counts["changed"] += 1
            if check_only:
                sys.stdout.writelines(difflib.unified_diff(
                    text.splitlines(keepends=True), new.splitlines(keepends=True),
                    f"{display} (as it is)", f"{display} (formatted)"))
            else:
                write_atomic(path, lambda tmp: write_bytes(tmp, new.encode("utf-8")))
                sys.stderr.write(f"reformatted {display}\n")

    def run() -> None:
        for path in files:
            try:
                one(path)
            except Exception as exc:  # reported per file; the others are still formatted
                problem = exc if isinstance(exc, SsnError) else _internal(exc)
                sys.stderr.write(problem.render("format") + "\n")
                counts["failed"] += 1
        if check_only and counts["changed"]:
            sys.stderr.write(f"{counts['changed']} of {len(files)} spec"
                             f"{'s' * (len(files) != 1)} would be reformatted\n")

    _guard(run)
    if counts["failed"] or (check_only and counts["changed"]):
        raise typer.Exit(1)


def _spec_files(paths: list[Path]) -> list[Path]:
    """The files named, with the .ssn files under each folder, in order."""
    out: list[Path] = []
    for path in paths:
        if str(path) != "-" and path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.ssn") if p.is_file()))
        else:
            out.append(path)
    return out


@app.command(cls=_Command)
def compile(
    spec: SpecArg,
    given_to: Annotated[Target | None, typer.Option(
        "--to", help="onnx: an ONNX model (.onnx); torch: a torch.export program (.pt2); "
                     "python: standalone PyTorch source (.py). Default: from -o's "
                     "extension.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                 help="Output file (default: MODEL + suffix).")]
    = None,
    model: ModelOpt = None,
    set_: SetOpt = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the compiler's initial weights (ONNX, torch; default 0).")]
    = None,
    column: Annotated[int | None, typer.Option(
        "--column", help="Compile only column K of every fractal (1 = shallowest).")] = None,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="Trained weights: a torch state_dict, .npz or .safetensors.")] = None,
    tap: Annotated[list[str] | None, typer.Option(
        "--tap", metavar="[NAME=]SCOPE",
        help="Also output the value of a scope or node of the IR, named NAME (default: "
             "SCOPE with dots as underscores); repeatable.")] = None,
    flat: Annotated[bool, typer.Option(
        "--flat", help="ONNX: one flat graph, the hierarchy in node names (the default).")]
    = False,
    functions: Annotated[bool, typer.Option(
        "--functions", help="ONNX: one model-local function per rule instance (ONNX Runtime "
        "and Netron read them; OpenVINO, tract and onnx2torch do not).")] = False,
    opset: Annotated[int | None, typer.Option(
        "--opset", help="ONNX opset (default 17; 22 for bf16).")] = None,
    batch: Annotated[int | None, typer.Option(
        "--batch", help="ONNX: a fixed batch size (default: symbolic N).")] = None,
    steps: Annotated[list[str] | None, typer.Option(
        "--steps", metavar="T|INPUT=T", help="ONNX: a fixed sequence length (default: "
        "symbolic T), or one per input that has a time axis (`--steps src=12 --steps "
        "tgt=9`).")] = None,
    symbolic_hw: Annotated[bool, typer.Option(
        "--symbolic-hw", help="ONNX: symbolic height and width (H, W) for a fully "
        "convolutional image model.")] = False,
    unroll: Annotated[bool, typer.Option(
        "--unroll", help="ONNX: write each time loop out as --steps steps (for runtimes "
        "without Scan, such as onnx2torch).")] = False,
    fold_weights: Annotated[bool, typer.Option(
        "--fold-weights", help="ONNX: compute what depends on weights alone (a static "
        "hypernetwork's kernels) now and store it as weights.")] = False,
    fold_bn: Annotated[bool, typer.Option(
        "--fold-bn", help="ONNX: fold BatchNorm into the convolution before it and a mean "
        "join's 1/N into the weights, drop eval identities (for tract, onnx2torch; ONNX "
        "Runtime fuses on its own).")] = False,
    precision: Annotated[str | None, typer.Option(
        "--precision", metavar="fp32|fp16|bf16",
        help="ONNX: the weights' and compute's type (default fp32).")] = None,
    io_precision: Annotated[str | None, typer.Option(
        "--io-precision", metavar="fp32|fp16|bf16",
        help="ONNX: the inputs' and outputs' type (default fp32, a Cast at each end).")]
    = None,
    external_data_threshold: Annotated[int | None, typer.Option(
        "--external-data-threshold", metavar="BYTES",
        help="ONNX: weights go to a data file beside the model above this many bytes "
             f"(default {EXTERNAL_DATA_THRESHOLD:,}).")] = None,
    max_nodes: MaxNodesOpt = DEFAULT_MAX_NODES,
    plugin: PluginOpt = None,
) -> None:
    """Compile a model to a file, written whole or not at all."""
    def run() -> None:
        given = {"flat": False if functions else None, "opset": opset, "precision": precision,
                 "io_precision": io_precision, "batch": batch, "steps": parse_steps(steps),
                 "symbolic_hw": symbolic_hw or None, "unroll": unroll or None,
                 "fold_weights": fold_weights or None, "fold_bn": fold_bn or None,
                 "external_data_threshold": external_data_threshold}
        request = Request(spec, output, seed, column, weights,
                           {k: v for k, v in given.items() if v is not None})
        to = target_of(given_to, output)
        if flat and functions:
            raise error(E_OPTION, "--flat and --functions ask for opposite ONNX forms",
                        Span.unknown("--functions"), hint="give one (flat is the default)")
        door = checked_door(to, request, flat)
        with progress_display() as step:
            step("elaborating")
            m = load_model(spec, model, set_, max_nodes, step, tap, plugin)
            out = output or Path(m.name + door.suffix)
            inputs = [*m.program.files, *([weights] if weights is not None else [])]
            written, folded = door.write(m, request, out, inputs, step)
        _report_compiled(m, column, written, folded)
    _guard(run)


def _report_compiled(m: Model, column: int | None, written: list[Path], folded: str) -> None:
    """The line `compile` ends with (and a note of outputs a column leaves out)."""
    compiled = m.column(column) if column is not None else m
    left = [n for n in m.ir.output_labels() if n not in compiled.ir.output_labels()]
    if left:
        typer.echo(f"ssnc: note: column {column} leaves out {', '.join(left)}: "
                   f"{'they read' if len(left) > 1 else 'it reads'} other columns", err=True)
    what = f"{m.name}, column {column}" if column is not None else m.name
    extra = "".join(f" and {p.name}" for p in written[1:])
    typer.echo(f"wrote {written[0]}{extra} ({what}: {compiled.total_params:,} parameters"
               f"{folded})", err=True)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__
        typer.echo(f"ssnc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version.")]
          = False) -> None:
    """Compile self-similar neural-network specs (.ssn) to PyTorch and ONNX."""


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
