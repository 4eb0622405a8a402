"""Generated PyTorch source, as text: the template around what `ModelCode` decided — the
module docstring, the runtime helpers, the submodule classes, the named outputs' tuple and
the model's class with its forward in each drop-path mode."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import PurePath

from torch import nn

from ...base.diagnostics import E_RESERVED, Note, error
from ...compiler.axes import SPATIAL, roles_of
from ...compiler.ir import Graph, walk
from ...compiler.literals import ssn_text
from ...compiler.ops import OPS, TorchLowering, fmt_shape
from ...compiler.stats import op_count, total_params
from ..pysource import docstring, identifier, is_plain, literal
from .emit import RESERVED
from .lower import plugin_alias
from .model import ModelCode, Units

RUNTIME_MARKER = "# --- ssnc runtime (pasted into generated modules) ---"
_TORCH_OWNED = set(vars(nn.Module()))


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


def check_names(graph: Graph) -> None:
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


def generate_source(graph: Graph, *, origin: str = "", version: str = "",
                    units: Units | None = None) -> str:
    """Standalone Python source (imports torch only) defining the model's nn.Module class;
    ``units`` chooses rule instances to emit as submodules whose own forward computes them
    (for sharding and checkpointing by region; by default, none)."""
    check_names(graph)
    cls = class_name_for(graph.model, set(RESERVED))
    code = ModelCode(graph, reserved=cls, units=units)
    named = _named_outputs(graph, code, cls)
    lines = [*_header(graph, code, origin, version), "", "from __future__ import annotations",
             "", runtime_source().rstrip(), *_plugin_imports(graph), "", ""]
    for definition in code.classes.ordered():
        lines += definition.source()
    for unit in code.unit_classes:
        lines += unit.source()
    lines += [*named, *_model_class(graph, code, cls)]
    for method in code.root.methods:
        lines += ["", *method]
    lines += _slope_method(graph)
    lines += ["", "", f"MODEL = {cls}", ""]
    return "\n".join(lines)


def _plugin_imports(graph: Graph) -> list[str]:
    """`import package.module as _plugin_package_module` for each plugin module the
    model's ops run (names checked when the op was declared, never spec text)."""
    modules = sorted({target.partition(":")[0] for _, node in walk(graph)
                      for how in [OPS[node.op].lowerings.get("torch")]
                      if isinstance(how, TorchLowering)
                      for target in (how.function, how.module) if target is not None})
    return ["", *(f"import {m} as {plugin_alias(m)}" for m in modules)] if modules else []


def _named_outputs(graph: Graph, code: ModelCode, cls: str) -> list[str]:
    """The named tuple the forward returns where the spec names its outputs."""
    if not graph.output_names:
        return []
    code.result_type = class_name_for(graph.model + "_outputs", {*RESERVED, cls})
    fields: set[str] = set(RESERVED)
    return [f"class {code.result_type}(NamedTuple):",
            *docstring([f"The outputs of `{graph.model}`, by the names the spec gives."],
                       "    "),
            "",
            *(f"    {identifier(name, fields)}: torch.Tensor" for name in graph.output_names),
            "", ""]


def _header(graph: Graph, code: ModelCode, origin: str, version: str) -> list[str]:
    """The module docstring: where the source came from, its parameters, inputs, outputs."""
    names = code.root.names

    def typed(name: str) -> str:  # as before roles: the docstring of old specs is unchanged
        return f"{graph[name].dtype}{fmt_shape(graph[name].shape or (), roles=False)}"
    ins = " " + ", ".join(typed(i) for i in graph.inputs)
    if len(graph.inputs) > 1:
        ins = "s " + ", ".join(f"{names[i]} {typed(i)}" for i in graph.inputs)
    outs = ", ".join(typed(o) for o in graph.outputs)
    params = ", ".join(f"{k}={ssn_text(v)}" for k, v in graph.params.items())
    return docstring([
        f"{graph.model}, compiled by ssnc {version} from "
        f"{PurePath(origin).name if origin else 'a spec'}.",
        "",
        f"Parameters: {params or 'none'}. Input{ins}; output {outs}.",
        "Load weights with `model.load_state_dict(torch.load(path))`. Generated code: edit "
        "the",
        "spec, not this file."])


def _model_class(graph: Graph, code: ModelCode, cls: str) -> list[str]:
    """The model's class: drop-path tables, constructor and forward variants."""
    return [
        f"class {cls}(nn.Module):",
        *docstring([
            f"{graph.model}: {op_count(graph)} ops, {total_params(graph):,} parameters.",
            "",
            "drop_mode: 'batch' (default), 'sample' or 'off' (training only); global_ratio: the",
            "share of global drop-path; drop_seed seeds the draws (equal on every DDP rank)."],
            "    "),
        "",
        f"    DROP_JOINS: tuple[tuple[int, tuple[int, ...], float], ...] = {code.drop_table()}",
        f"    FRACTAL_WIDTHS: tuple[int, ...] = {code.widths()}",
        "",
        "    def __init__(self, drop_mode: str = \"batch\", global_ratio: float = 0.5,",
        "                 drop_seed: int = 0) -> None:",
        "        super().__init__()",
        "        self.ssnc_drop_path = DropPath(self.DROP_JOINS, self.FRACTAL_WIDTHS, drop_mode,",
        "                                       global_ratio, drop_seed)",
        *code.init_lines(),
        *_renamed_lines(graph),
        "",
        *_forwards(graph, code),
    ]


def _forwards(graph: Graph, code: ModelCode) -> list[str]:
    """`forward` (eval, and dispatching a training draw) and, where drop-path acts, the
    variant for one draw per batch and the one for per-sample masks."""
    names = code.root.names
    args = ", ".join(names[i] for i in graph.inputs)
    typed = ", ".join(f"{names[i]}: torch.Tensor" for i in graph.inputs)
    first = names[graph.inputs[0]]  # every input has the batch's size
    expected = tuple((names[i], _checked_dims(graph, i), graph[i].dtype) for i in graph.inputs)
    lines = [f"    def forward(self, {typed}):  # type: ignore[no-untyped-def]",
             f"        _check_inputs({literal(graph.model)}, {literal(expected)}, ({args},))"]
    if not code.plan.joins:
        return lines + code.forward("eval")
    return [*lines,
            "        if self.training and self.ssnc_drop_path.active:",
            f"            plan = self.ssnc_drop_path.draw({first}.shape[0], {first}.device)",
            "            if plan.per_sample:",
            f"                return self.forward_masked({args}, plan.masks)",
            f"            return self.forward_dropping({args}, plan.keep)",
            *code.forward("eval"),
            "",
            f"    def forward_dropping(self, {typed}, "
            "keep: tuple[tuple[bool, ...], ...]):  # type: ignore[no-untyped-def]",
            '        """Training with one drop-path draw for the batch: dropped paths are '
            'not computed."""',
            *code.forward("dropping"),
            "",
            f"    def forward_masked(self, {typed}, "
            "masks: tuple[torch.Tensor, ...]):  # type: ignore[no-untyped-def]",
            '        """Training with per-sample drop-path masks."""',
            *code.forward("masked")]


def _checked_dims(graph: Graph, name: str) -> tuple[int | str, ...]:
    """An input's sizes as its forward checks them: fixed ones as numbers, the batch and time
    by their symbols, and spatial ones free (by role, `image_H` where there are several
    inputs): a fully convolutional network takes other image sizes in PyTorch."""
    shape = graph[name].shape or ()
    several = len(graph.inputs) > 1
    return tuple((f"{name}_{r}" if several else r) if isinstance(d, int) and r in SPATIAL
                 else d for d, r in zip(shape, roles_of(shape), strict=True))


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
