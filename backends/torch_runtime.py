"""Helpers that compiled PyTorch modules use. The code generator pastes everything below the
marker into each generated file, so `--to python` output needs nothing but torch."""

from __future__ import annotations

# --- ssnc runtime (pasted into generated modules) ---
from typing import NamedTuple

import torch
from torch import nn


def _put(root: nn.Module, path: str, module: nn.Module) -> None:
    """Register ``module`` at the dotted ``path``, creating containers on the way. Names are
    the spec's scope paths, so they go into ``_modules`` even where they coincide with an
    attribute of nn.Module (`train`, `to`): the code reads those through ``_modules``."""
    parent, leaf = _parent(root, path)
    parent._modules[leaf] = module


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding the dotted ``path`` (containers created on the way), and its last
    segment."""
    *parents, leaf = path.split(".")
    for name in parents:
        child = root._modules.get(name)
        if child is None:
            child = root._modules[name] = nn.Module()
        root = child
    return root, leaf


def _put_param(root: nn.Module, path: str, value: torch.Tensor) -> None:
    """Register a `param(...)` value as a parameter at the dotted ``path`` (its state_dict
    key), creating containers on the way."""
    parent, leaf = _parent(root, path)
    parent._parameters[leaf] = nn.Parameter(value)


class _Bias(nn.Module):
    """The bias an op owns when its weight is given to it (generated), under the key
    ``bias``: U(-bound, bound), torch's default with bound = 1/sqrt(fan_in)."""

    def __init__(self, size: int, bound: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(size).uniform_(-bound, bound))


def _check_inputs(model: str, expected: tuple[tuple[str, tuple[int | str, ...], str], ...],
                  given: tuple[object, ...]) -> None:
    """A clear error where the inputs do not fit the spec: each one a tensor of its rank,
    kind (floating point, integer ids or a boolean mask) and fixed sizes, and an axis that
    several inputs share by name (the batch `N`) of one size in all. Traced calls
    (torch.compile, torch.export) are checked by the tracer instead."""
    if torch.compiler.is_compiling():
        return
    sizes: dict[str, tuple[int, str]] = {}
    for (name, shape, dtype), x in zip(expected, given, strict=True):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{model}: input `{name}` must be a torch.Tensor "
                            f"{_typed(dtype, shape)}, got {type(x).__name__}")
        if dtype == "f32":
            kind = x.is_floating_point()
        elif dtype == "bool":
            kind = x.dtype == torch.bool
        else:  # token ids: any integer dtype
            kind = not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
        if not kind or x.dim() != len(shape):
            raise _misfit(model, name, dtype, shape, x)
        for d, n in zip(shape, x.shape, strict=True):
            if isinstance(d, int):
                if d != n:
                    raise _misfit(model, name, dtype, shape, x)
            elif sizes.setdefault(d, (n, name))[0] != n:
                raise ValueError(f"{model}: input `{name}` has {d} = {n}, input "
                                 f"`{sizes[d][1]}` has {d} = {sizes[d][0]}")


def _misfit(model: str, name: str, dtype: str, shape: tuple[int | str, ...],
            x: torch.Tensor) -> ValueError:
    """The error for input ``name``, ``x``, that is not what the spec says."""
    return ValueError(f"{model}: input `{name}` must be {_typed(dtype, shape)}, got "
                      f"{str(x.dtype).removeprefix('torch.')}{list(x.shape)}")


def _typed(dtype: str, shape: tuple[int | str, ...]) -> str:
    """`f32[N, 3, H, W]`: what an input must be, for `_check_inputs`'s messages."""
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


def _renamed_keys_hook(renamed: dict[str, str]):  # type: ignore[no-untyped-def]
    """A load_state_dict pre-hook reading checkpoints saved before ssnc 0.2 under today's
    keys (``renamed``: old module path -> new one; see ssnc's CHANGELOG)."""
    def hook(module, state_dict, prefix, *args):  # type: ignore[no-untyped-def]
        for key in [k for k in state_dict if k.startswith(prefix)]:
            owner, dot, leaf = key[len(prefix):].rpartition(".")
            new = prefix + renamed.get(owner, owner) + dot + leaf
            if dot and owner in renamed and new not in state_dict:
                state_dict[new] = state_dict.pop(key)
    return hook


def _scan(cell, x: torch.Tensor, *states: torch.Tensor,  # type: ignore[no-untyped-def]
          reverse: bool = False) -> tuple[torch.Tensor, ...]:
    """``cell`` at every step t of ``x`` [N, T, ...]: ``y_t, *states = cell(x[:, t], *states)``;
    returns the step outputs stacked along the time axis [N, T, ...], then the final states.
    Under torch.export and torch.compile the loop is torch's scan primitive: T stays dynamic
    and the step is compiled once, not unrolled T times (eager runs the plain loop)."""
    if torch.compiler.is_exporting() or torch.compiler.is_compiling():
        from torch._higher_order_ops.scan import scan

        def step(carry, xt):  # type: ignore[no-untyped-def]
            y, *new = cell(xt, *carry)  # copies: the primitive refuses aliased outputs
            return tuple(s.clone() for s in new), y.clone()

        final, ys = scan(step, tuple(states), x, dim=1, reverse=reverse)
        return (ys, *final)
    steps = x.shape[1]
    outputs: list[torch.Tensor] = [x] * steps  # placeholders, each replaced below
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        y, *rest = cell(x[:, t], *states)
        states = tuple(rest)
        outputs[t] = y
    return (torch.stack(outputs, 1), *states)


class _HardSigmoid(nn.Module):
    """``clamp((slope * x + 1) / 2, 0, 1)`` with the slope a buffer: training anneals it
    (HM-RNN's ``a = min(5, 1 + 0.04 * epoch)``) through the model's ``set_slope``."""

    slope: torch.Tensor

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.register_buffer("slope", torch.tensor(slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * (self.slope * 0.5) + 0.5, 0.0, 1.0)


class DropPlan(NamedTuple):
    """One mini-batch's drop-path decisions.

    ``keep[j][i]``: whether input i of droppable join j is kept (one draw for the batch);
    ``masks[j]``: a float [N, inputs] tensor of per-sample keep flags (per-sample mode)."""

    per_sample: bool
    keep: tuple[tuple[bool, ...], ...]
    masks: tuple[torch.Tensor, ...]


class DropPath:
    """FractalNet's drop-path (Larsson et al. 2016), drawn from its own seeded generator so
    every data-parallel rank draws the same paths.

    ``joins[j] = (block, input_columns, rate)``: block is the fractal block's index (or -1 for
    a join outside fractals), input_columns the column of each input, rate the local rate.
    Each mini-batch is global with probability ``global_ratio`` — one column for the whole
    network, every join keeping only that column's input (a block with fewer columns uses its
    deepest; a join the column does not pass through keeps all of its inputs, which matters
    only to what reads the other columns, such as column heads) — and local otherwise: each
    input dropped with the join's rate, at least one kept. ``mode``: "batch" (one draw per
    mini-batch, the default; dropped columns are not computed), "sample" (the first
    ``global_ratio`` of the batch global with one column per sample, the rest local per
    sample; inputs are masked) or "off"."""

    def __init__(self, joins: tuple[tuple[int, tuple[int, ...], float], ...],
                 widths: tuple[int, ...], mode: str = "batch", global_ratio: float = 0.5,
                 seed: int = 0):
        if mode not in ("batch", "sample", "off"):
            raise ValueError(f"drop_mode must be batch, sample or off, not {mode!r}")
        self.joins = joins
        self.widths = widths
        self.mode = mode
        self.global_ratio = global_ratio
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._ids: dict[tuple[int, torch.device], torch.Tensor] = {}
        self.active = mode != "off" and any(rate > 0 for _, _, rate in joins)
        # per join: whether a global draw's column can miss it (it joins only some of its
        # block's columns), so that it must then keep all of its inputs
        self._partial = tuple(block >= 0 and set(cols) != set(range(1, widths[block] + 1))
                              for block, cols, _ in joins)

    def _uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)

    def _column(self) -> int:
        return int(torch.randint(1, max(self.widths) + 1, (), generator=self.generator))

    def _global_keep(self, column: int) -> tuple[tuple[bool, ...], ...]:
        keep = []
        for block, cols, _ in self.joins:
            if block < 0:
                keep.append((True,) * len(cols))
            else:
                c = min(column, self.widths[block])
                flags = tuple(col == c for col in cols)
                keep.append(flags if any(flags) else (True,) * len(cols))
        return tuple(keep)

    def _local_keep(self) -> tuple[tuple[bool, ...], ...]:
        keep = []
        for _, cols, rate in self.joins:
            flags = (self._uniform(len(cols)) >= rate).tolist()
            if not any(flags):
                flags[int(torch.randint(len(cols), (), generator=self.generator))] = True
            keep.append(tuple(bool(f) for f in flags))
        return tuple(keep)

    def draw(self, batch: int, device: torch.device | str = "cpu") -> DropPlan:
        """The decisions for one mini-batch of ``batch`` samples. "batch" mode decides on
        the host, once per step and up front, from the CPU generator (which columns to
        compute is a host decision). "sample" mode, and "batch" mode under torch.compile,
        draw masks on ``device`` (the model's) with no host synchronisation."""
        if self.mode == "batch" and not torch.compiler.is_compiling():
            is_global = bool(self._uniform(1)[0] < self.global_ratio) and bool(self.widths)
            keep = self._global_keep(self._column()) if is_global else self._local_keep()
            return DropPlan(False, keep, ())
        return self._masks(batch, torch.device(device))

    def _masks(self, batch: int, dev: torch.device) -> DropPlan:
        """Branch-free masks: per sample (the first ``global_ratio`` of the batch global,
        one column each), or, for "batch" mode, one row for the whole batch. Under
        torch.compile they come from torch's global generator (the compiler cannot trace a
        Generator object): seed it alike on every rank."""
        compiling = torch.compiler.is_compiling()
        gen = None if compiling else self._device_generator(dev)
        rows = batch if self.mode == "sample" else 1
        if not self.widths:
            is_global = torch.zeros(rows, 1, dtype=torch.bool, device=dev)
        elif self.mode == "sample":
            is_global = (torch.arange(rows, device=dev) < int(batch * self.global_ratio))[:, None]
        else:
            is_global = torch.rand(1, 1, generator=gen, device=dev) < self.global_ratio
        columns = torch.randint(1, max(self.widths, default=1) + 1, (rows,),
                                generator=gen, device=dev)
        masks = []
        for j, (block, cols, rate) in enumerate(self.joins):
            m = (torch.rand(rows, len(cols), generator=gen, device=dev) >= rate).float()
            pick = torch.randint(len(cols), (rows,), generator=gen, device=dev)
            empty = (m.sum(1, keepdim=True) == 0).float()  # keep one input at random there
            m = torch.maximum(m, torch.nn.functional.one_hot(pick, len(cols)).float() * empty)
            if block < 0:  # outside fractals: a global draw keeps every input
                forced = torch.ones_like(m)
            else:
                ids = (torch.tensor(cols, device=dev) if compiling  # a graph constant
                       else self._column_ids(j, dev))
                chosen = columns.clamp(max=self.widths[block])
                forced = (ids[None, :] == chosen[:, None]).float()
                if self._partial[j]:  # off the chosen column's path: keep every input
                    forced = torch.where(forced.sum(1, keepdim=True) == 0, 1.0, forced)
            masks.append(torch.where(is_global, forced, m).expand(batch, len(cols)))
        return DropPlan(True, (), tuple(masks))

    def _device_generator(self, device: torch.device) -> torch.Generator:
        """A generator on ``device``, seeded like the CPU one (the same on every rank)."""
        found = self._generators.get(device)
        if found is None:
            found = torch.Generator(device=device).manual_seed(self.seed)
            self._generators[device] = found
        return found

    def _column_ids(self, j: int, device: torch.device) -> torch.Tensor:
        """The column of each input of join ``j``, as a tensor on ``device`` (made once)."""
        key = (j, device)
        if key not in self._ids:
            self._ids[key] = torch.tensor(self.joins[j][1], device=device)
        return self._ids[key]


def _kept(xs: tuple[torch.Tensor | None, ...]) -> list[torch.Tensor]:
    kept = [x for x in xs if x is not None]
    assert kept, "drop-path kept no input of a join"
    return kept


def _join_mean(xs: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """Mean over the inputs that were kept (None = dropped)."""
    kept = _kept(xs)
    out = kept[0]
    for x in kept[1:]:
        out = out + x
    return out / len(kept) if len(kept) > 1 else out


def _join_sum(xs: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """Sum over the inputs that were kept."""
    kept = _kept(xs)
    out = kept[0]
    for x in kept[1:]:
        out = out + x
    return out


def _join_max(xs: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    """Element-wise maximum over the inputs that were kept."""
    kept = _kept(xs)
    out = kept[0]
    for x in kept[1:]:
        out = torch.maximum(out, x)
    return out


def _per_sample(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return m.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _join_mean_masked(xs: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over kept inputs: sum(m_i x_i) / max(sum(m_i), 1)."""
    out = xs[0] * _per_sample(mask[:, 0], xs[0])
    for i, x in enumerate(xs[1:], 1):
        out = out + x * _per_sample(mask[:, i], x)
    return out / _per_sample(mask.sum(1).clamp(min=1.0), out)


def _join_sum_masked(xs: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """Per-sample sum over kept inputs."""
    out = xs[0] * _per_sample(mask[:, 0], xs[0])
    for i, x in enumerate(xs[1:], 1):
        out = out + x * _per_sample(mask[:, i], x)
    return out


def _join_max_masked(xs: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """Per-sample maximum over kept inputs (dropped inputs count as -inf)."""
    low = torch.finfo(xs[0].dtype).min
    out = torch.where(_per_sample(mask[:, 0], xs[0]) > 0, xs[0], low)
    for i, x in enumerate(xs[1:], 1):
        out = torch.maximum(out, torch.where(_per_sample(mask[:, i], x) > 0, x, low))
    return out
