"""Past one device: FSDP2 sharding, activation checkpointing and regional `torch.compile` on
regions that the spec's structure chooses, with the plan said: which region got what, and
why. A region is a rule instance (`stage(...)`, `fractal(...)`); chosen ones become *units*,
submodules whose own ``forward`` computes them as one step of the model's, which is where
FSDP2's and checkpointing's hooks run. State-dict keys do not change, and drop-path decides
once per batch for every unit (its draws are equal on every rank).

Needs the `torch` extra; `import ssnc` does not import this module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base.diagnostics import E_OPTION, Span, error
from .compiler.ir import Graph, Region
from .compiler.stats import param_count
from .extras import require_torch

__all__ = ["Plan", "Regions", "parallelize"]


@dataclass(frozen=True)
class Regions:
    """Which rule instances a plan takes: those of ``rule`` (at any depth), or else those at
    nesting ``depth`` (1: the rule calls in the model's own body; None: any depth), holding
    at least ``min_params`` trainable parameters; outermost first. A chosen region's inner
    regions are left to it."""

    depth: int | None = 1
    min_params: int = 0
    rule: str | None = None


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
    process group, on the CPU), then the root. Returns a new module holding ``module``'s
    parameters and buffers (same keys) and its drop-path draws; its ``ssnc_plan`` says
    what was done (printed where ``show``)."""
    require_torch("ssnc.distributed.parallelize()")
    from .backends.torch import to_torch

    graph = _graph_of(module)
    chosen = _choose(graph, regions or Regions())
    ids = {r.scope.id for r in chosen}
    built = to_torch(graph, tensors={k: v.detach().cpu().numpy()
                                     for k, v in module.state_dict().items()
                                     if not k.endswith("num_batches_tracked")},
                     units=lambda r: r.scope.id in ids)
    built.load_state_dict(module.state_dict())  # buffers too (num_batches_tracked)
    built.ssnc_drop_path = module.ssnc_drop_path  # the same draws, on every rank
    object.__setattr__(built, "ssnc_ir", graph)  # plain attributes, not submodules
    built.train(module.training)
    units = [r for r in chosen if _is_unit(built, r.prefix)]
    if shard and mesh is None:
        mesh = _default_mesh()
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
    graph = getattr(module, "ssnc_ir", None)
    if not isinstance(graph, Graph):
        raise error(E_OPTION, f"parallelize() takes a module that ssnc generated (from "
                    f"`Model.to_torch`), not a {type(module).__name__}",
                    Span.unknown("<parallelize>"),
                    hint="build it with ssnc.load(spec).model().to_torch()")
    return graph


def _default_mesh() -> Any:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_available() or not dist.is_initialized():
        raise error(E_OPTION, "parallelize(shard=True) needs a process group or a mesh",
                    Span.unknown("<parallelize>"),
                    hint="call torch.distributed.init_process_group() first (torchrun sets "
                    "up its environment), or pass mesh=")
    return init_device_mesh("cpu", (dist.get_world_size(),))


def _choose(graph: Graph, regions: Regions) -> list[Region]:
    """The regions ``regions`` picks, outermost first, none inside another."""
    out: list[Region] = []
    todo = [(r, 1) for r in graph.region(0).children]
    while todo:
        region, depth = todo.pop(0)
        at = region.scope.rule == regions.rule if regions.rule is not None else (
            regions.depth is None or depth == regions.depth)
        if at and _params(graph, region) >= regions.min_params and region.prefix:
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
