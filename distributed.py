"""Past one device: FSDP2 sharding, activation checkpointing and regional `torch.compile` on
regions that the spec's structure chooses, with the plan said: which region got what, and
why. A region is a rule instance (`stage(...)`, `fractal(...)`); chosen ones become *units*,
submodules whose own ``forward`` computes them as one step of the model's, which is where
FSDP2's and checkpointing's hooks run. State-dict keys do not change, and drop-path decides
once per batch for every unit (its draws are equal on every rank).

Needs the `torch` extra; `import ssnc` does not import this module."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .base.diagnostics import E_OPTION, Span, error
from .compiler.ir import Graph, Region
from .compiler.memory import kept_per_node
from .compiler.stats import param_count
from .extras import require_torch

__all__ = ["Pipeline", "Plan", "Regions", "parallelize", "pipeline"]


@dataclass(frozen=True)
class Regions:
    """Which rule instances a plan takes: those of ``rule`` (at any depth), or else those at
    nesting ``depth`` (1: the rule calls in the model's own body; None: any depth), holding
    at least ``min_params`` trainable parameters and making at least ``min_activations``
    bytes per sample that backward keeps (the memory estimate's, float32: what
    checkpointing a region saves); outermost first. A chosen region's inner regions are
    left to it."""

    depth: int | None = 1
    min_params: int = 0
    rule: str | None = None
    min_activations: int = 0


@dataclass(frozen=True)
class Choice:
    """One region of a plan: its module path, its rule, its nesting depth and parameters,
    what it got and why."""

    path: str
    rule: str
    depth: int
    params: int
    got: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Plan:
    """What `parallelize` did: each unit's treatment, and what was left to the root."""

    choices: tuple[Choice, ...]
    root_params: int
    world: int
    sharded: bool

    def __str__(self) -> str:
        lines = [f"ssnc.distributed plan ({self.world} rank{'s' if self.world != 1 else ''}):"]
        width = max([len(c.path) for c in self.choices] + [4])
        for c in self.choices:
            lines.append(f"  {c.path:<{width}}  {c.rule:<12} depth {c.depth}  "
                         f"{c.params:>12,} params  {', '.join(c.got) or 'nothing'}: {c.why}")
        lines.append(f"  {'root':<{width}}  {'':<12}          {self.root_params:>12,} params  "
                     + ("sharded last, with what no unit holds" if self.sharded
                        else "what no unit holds"))
        return "\n".join(lines)


def parallelize(module: Any, mesh: Any = None, *, regions: Regions | None = None,
                shard: bool = True, checkpoint: bool = False,
                compile: bool | str = False, show: bool = False) -> Any:
    """``module`` (made by `Model.to_torch`) with the regions ``regions`` chooses emitted as
    units, each checkpointed (non-reentrant, the RNG state kept, so dropout replays
    identically), compiled (``compile``: True or a `torch.compile` backend name) and
    sharded with FSDP2 over ``mesh`` (a 1-D DeviceMesh; default: every rank of the default
    process group, on ``module``'s device type), then the root. Returns a new module on
    ``module``'s device and in its dtype, holding its parameters and buffers (same keys)
    and its drop-path draws; its ``ssnc_plan`` says what was done (printed where
    ``show``)."""
    require_torch("ssnc.distributed.parallelize()")
    from .backends.torch import build_module

    graph = _graph_of(module)
    chosen = _choose(graph, regions or Regions())
    ids = {r.scope.id for r in chosen}
    built = _like(module, build_module(graph, units=lambda r: r.scope.id in ids),
                  module.state_dict())
    built.ssnc_drop_path = module.ssnc_drop_path  # the same draws, on every rank
    object.__setattr__(built, "ssnc_ir", graph)  # plain attributes, not submodules
    units = [r for r in chosen if _is_unit(built, r.prefix)]
    if shard and mesh is None:
        mesh = _default_mesh(_device(module).type)
    if shard and getattr(mesh, "ndim", 1) != 1:
        raise error(E_OPTION, f"parallelize() shards over a 1-D mesh, not a {mesh.ndim}-D one",
                    Span.unknown("<parallelize>"),
                    hint="pass one dimension of it: mesh[\"dp\"] (HSDP is not supported yet)")
    world = mesh.size() if shard else 1
    choices = []
    for i, region in enumerate(units):
        sub = built.get_submodule(region.prefix)
        got = _apply(sub, checkpoint=checkpoint, compile=compile,
                     shard=mesh if shard else None, last=i == len(units) - 1)
        choices.append(Choice(region.prefix, region.scope.rule, _depth(graph, region),
                              _params(graph, region), got, _why(region, regions or Regions())))
    if shard:
        from torch.distributed.fsdp import fully_shard

        fully_shard(built, mesh=mesh)
    in_units = sum(c.params for c in choices)
    total = sum(p.numel() for p in module.parameters() if p.requires_grad)
    plan = Plan(tuple(choices), total - in_units, world, shard)
    object.__setattr__(built, "ssnc_plan", plan)
    if show:
        print(plan)
    return built


def _is_unit(built: Any, path: str) -> bool:
    """Whether the submodule at ``path`` computes its region in one call of its forward: a
    unit, or an instance of a generated rule class (a rule instance made more than once)."""
    try:
        sub = built.get_submodule(path)
    except AttributeError:
        return False
    return bool(getattr(sub, "ssnc_unit", False)) or (
        type(sub).__module__.startswith("ssnc_generated_") and type(sub) is not type(built))


def _graph_of(module: Any) -> Graph:
    from .backends.torch.module import generated_ir

    return generated_ir(module, "parallelize")


def _device(module: Any) -> Any:
    import torch

    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _like(module: Any, built: Any, state: dict[str, Any]) -> Any:
    """``built`` (made on the CPU in float32) on ``module``'s device, in its dtype where it
    has one, holding ``state`` (its own keys of it), in ``module``'s training mode."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    built.to(device=_device(module), dtype=dtypes.pop() if len(dtypes) == 1 else None)
    built.load_state_dict({k: state[k] for k in built.state_dict()})
    return built.train(module.training)


def _default_mesh(device_type: str) -> Any:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_available() or not dist.is_initialized():
        raise error(E_OPTION, "parallelize(shard=True) needs a process group or a mesh",
                    Span.unknown("<parallelize>"),
                    hint="call torch.distributed.init_process_group() first (torchrun sets "
                    "up its environment), or pass mesh=")
    return init_device_mesh(device_type, (dist.get_world_size(),))


def _choose(graph: Graph, regions: Regions) -> list[Region]:
    """The regions ``regions`` picks, outermost first, none inside another."""
    out: list[Region] = []
    todo = [(r, 1) for r in graph.region(0).children]
    kept = kept_per_node(graph) if regions.min_activations else {}
    while todo:
        region, depth = todo.pop(0)
        at = region.scope.rule == regions.rule if regions.rule is not None else (
            regions.depth is None or depth == regions.depth)
        big = sum(kept.get(n.name, 0) for n in region.members) >= regions.min_activations
        if at and big and _params(graph, region) >= regions.min_params and region.prefix:
            out.append(region)
        elif regions.rule is not None or regions.depth is None or depth < regions.depth:
            todo[:0] = [(c, depth + 1) for c in region.children]
    return out


def _params(graph: Graph, region: Region) -> int:
    return sum(param_count(graph, n) for n in region.members)


def _depth(graph: Graph, region: Region) -> int:
    depth, scope = 0, region.scope
    while scope.parent is not None:
        if not scope.transparent:
            depth += 1
        scope = graph.scopes[scope.parent]
    return depth


def _why(region: Region, regions: Regions) -> str:
    at = f"an instance of `{regions.rule}`" if regions.rule is not None else (
        "a rule call in the model's body" if regions.depth == 1 else (
            f"at nesting depth {regions.depth}" if regions.depth else "outermost"))
    size = f", at least {regions.min_params:,} parameters" if regions.min_params else ""
    if regions.min_activations:
        size += (f", at least {regions.min_activations:,} bytes a sample kept for "
                 "backward")
    return f"{at}{size}"


def _apply(sub: Any, *, checkpoint: bool, compile: bool | str, shard: Any,
           last: bool) -> tuple[str, ...]:
    """Checkpoint, compile and shard one unit, in that order (torchtitan's)."""
    got = []
    if checkpoint:
        from torch.distributed._composable.checkpoint_activation import (
            checkpoint as composable_checkpoint,
        )

        composable_checkpoint(sub)  # non-reentrant; the RNG state is kept for the replay
        got.append("checkpointed")
    if compile:
        sub.compile(**({} if compile is True else {"backend": compile}))
        got.append("compiled" if compile is True else f"compiled ({compile})")
    if shard is not None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(sub, mesh=shard, reshard_after_forward=not last)
        got.append("sharded" + (" (kept unsharded after forward: the last unit)"
                                if last else ""))
    return tuple(got)


@dataclass(frozen=True)
class StagePlan:
    """Where `pipeline` cut the model: each stage's first and last node, its cost (by what
    it was balanced on) and its parameters."""

    by: str
    stages: tuple[tuple[str, str, int, int], ...]
    candidates: int

    def __str__(self) -> str:
        worst, total = max(s[2] for s in self.stages), sum(s[2] for s in self.stages)
        lines = [f"ssnc.distributed pipeline: {len(self.stages)} stages balanced by {self.by} "
                 f"({self.candidates} places to cut; the costliest stage has "
                 f"{worst / max(total, 1):.0%} of the total)"]
        for i, (first, last, cost, params) in enumerate(self.stages):
            lines.append(f"  stage {i}: {first} .. {last}  {cost:,} {self.by}, "
                         f"{params:,} params")
        return "\n".join(lines)


@dataclass(frozen=True)
class Pipeline:
    """This rank's part of a pipeline: its stage's module, the `PipelineStage`, the
    schedule that runs it (`schedule.step(x)` on the first stage, `step(target=y)` on the
    last, `step()` between) and the plan."""

    module: Any
    stage: Any
    schedule: Any
    plan: StagePlan


def pipeline(module: Any, stages: int, *, balance: str = "macs", schedule: str = "1f1b",
             microbatches: int = 4, loss_fn: Any = None, group: Any = None,
             show: bool = False) -> Pipeline:
    """``module`` (made by `Model.to_torch`) cut into ``stages`` pipeline stages where one
    tensor alone crosses its top level, balanced by "macs", "params" or "activations"; this
    rank (of a process group of ``stages`` ranks) gets its stage and a GPipe or 1F1B
    schedule over ``microbatches``, with ``loss_fn(output, target)`` on the last stage."""
    require_torch("ssnc.distributed.pipeline()")
    import torch.distributed as dist
    from torch.distributed import pipelining

    from .backends.torch import build_module
    from .compiler.stages import balance as balanced
    from .compiler.stages import cut_points, node_costs, stage_graph

    graph = _graph_of(module)
    where = Span.unknown("<pipeline>")
    if getattr(module, "ssnc_drop_path", None) is not None and module.ssnc_drop_path.active:
        raise error(E_OPTION, "drop-path is not supported in a pipeline: each stage would "
                    "draw its own columns", where,
                    hint="build the module with to_torch(drop_mode=\"off\") to pipeline it")
    if balance not in ("macs", "params", "activations"):
        raise error(E_OPTION, f"balance must be macs, params or activations, not {balance!r}",
                    where)
    kinds = {"gpipe": pipelining.ScheduleGPipe, "1f1b": pipelining.Schedule1F1B}
    if schedule not in kinds:
        raise error(E_OPTION, f"schedule must be gpipe or 1f1b, not {schedule!r}", where)
    cuts = cut_points(graph)
    if stages < 1 or stages - 1 > len(cuts):
        raise error(E_OPTION, f"model `{graph.model}` cannot be cut into {stages} stages: its "
                    f"top level has {len(cuts)} place{'s' if len(cuts) != 1 else ''} where "
                    "one tensor alone crosses", where,
                    hint=f"ask for at most {len(cuts) + 1} stages")
    if not dist.is_available() or not dist.is_initialized():
        raise error(E_OPTION, "pipeline() needs a process group", where,
                    hint="call torch.distributed.init_process_group() first (torchrun)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if world != stages:
        raise error(E_OPTION, f"a pipeline of {stages} stages needs {stages} ranks, not "
                    f"{world}", where, hint="run one process per stage")
    costs = node_costs(graph, balance)
    chosen = balanced(costs, cuts, stages)
    parts = [stage_graph(graph, chosen, i) for i in range(stages)]
    state = module.state_dict()
    mine = parts[rank]
    net = _like(module, build_module(mine, drop_mode="off"), state)
    stage = pipelining.PipelineStage(net, rank, stages, _device(module), group=group)
    run = kinds[schedule](stage, microbatches, loss_fn=loss_fn)
    bounds = [0, *[c.position + 1 for c in chosen], len(costs)]
    top = [n for n in graph.order() if not n.is_param]
    plan = StagePlan(balance, tuple(
        (top[a].name, top[b - 1].name, sum(costs[a:b]),
         sum(spec.numel for spec in parts[i].tensors().values() if spec.trainable))
        for i, (a, b) in enumerate(itertools.pairwise(bounds))), len(cuts))
    if show:
        print(plan)
    return Pipeline(net, stage, run, plan)
