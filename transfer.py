"""Weights from anywhere: a PyTorch state dict, .safetensors, .npz or an ONNX model's
initializers, matched onto a model's tensors by names (ordered regular-expression rules, and
ssnc's own keys as themselves) or by order (parameter-owning ops in execution order against
the source's), with the layout conversions real checkpoints need, and a report of what was
matched, converted, left at its initial value and left unused (docs/weights.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from .base.diagnostics import E_WEIGHTS, Note, Span, SsnError, error, excerpt, source_lines
from .compiler.ir import Graph, Node, owned, walk
from .compiler.ops import ParamSpec
from .output import read_weights

MAX_RULES = 1_000
"""Rules a mapping file may hold."""

MAX_PATTERN = 300
"""Characters of one rule's pattern: with keys bounded too, matching stays fast (Python's
`re` has no timeout)."""

MAX_KEY = 1_000
"""Characters of a source key that rules are matched against."""

IGNORED = (".num_batches_tracked",)
"""Source tensors ssnc's IR does not model (BatchNorm's step counter)."""

LSTM_KEY = re.compile(r"(?P<owner>.*)\.(?P<kind>weight|bias)_(?P<part>ih|hh)_(?P<layer>l\d+"
                      r"(?:_reverse)?)")
"""PyTorch's LSTM tensors: `rnn.weight_ih_l0`, `rnn.bias_hh_l1_reverse`, ..."""

LSTM = "LSTM: W = [W_ih | W_hh], b = b_ih + b_hh"
LINEAR_CONV = "Linear <-> 1x1 conv: reshaped"


@dataclass(frozen=True)
class Source:
    """A checkpoint's tensors by key, in its order where the format keeps a meaningful one
    (a state dict's, an ONNX model's first use; None for .safetensors and .npz)."""

    path: str
    tensors: dict[str, np.ndarray]
    order: list[str] | None
    ignored: dict[str, np.ndarray]
    """Tensors ssnc does not model (kept for the way back)."""
    groups: list[list[str]] | None = None
    """The tensors by owner where the format says (an ONNX node's initializers)."""


@dataclass(frozen=True)
class Rule:
    """One mapping rule: source keys matching ``pattern`` (the whole key) become ``target``
    (`\\1` for groups), from line ``line`` of the mapping file."""

    pattern: re.Pattern[str]
    target: str
    line: int
    span: Span


@dataclass
class Row:
    """One parameter-owning op of the model (its scope) and what the transfer did for it."""

    scope: str
    op: str
    status: str
    """`matched`, `converted`, `initial` (left at its initial value) or `mismatched`."""
    targets: list[str]
    sources: list[str]
    conversion: str = ""
    params: int = 0


@dataclass
class TransferReport:
    """What a transfer did, per scope, with the source tensors it did not use."""

    source: str
    match: str
    rows: list[Row] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every model tensor loaded and every source tensor used."""
        return not self.unused and all(r.status in ("matched", "converted") for r in self.rows)

    @property
    def loaded(self) -> int:
        """Parameters (and buffer values) loaded from the source."""
        return sum(r.params for r in self.rows if r.status in ("matched", "converted"))

    @property
    def total(self) -> int:
        """Parameters (and buffer values) the model holds."""
        return sum(r.params for r in self.rows)

    def data(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"source": self.source, "match": self.match, "complete": self.complete,
                "loaded": self.loaded, "total": self.total,
                "rows": [vars(r) for r in self.rows], "unused": self.unused,
                "ignored": self.ignored}

    def lines(self) -> list[str]:
        """The report as text: one line per scope, then what the source left unused."""
        width = max([len(r.scope) for r in self.rows] + [5])
        out = [f"{'scope':<{width}}  {'status':<10}  {'params':>11}  from"]
        for r in self.rows:
            came = ", ".join(r.sources) + (f"  ({r.conversion})" if r.conversion else "")
            out.append(f"{r.scope:<{width}}  {r.status:<10}  {r.params:>11,}  {came}")
        out += [f"unused in the source: {k}" for k in self.unused]
        if self.ignored:
            out.append(f"ignored: {len(self.ignored)} tensors ssnc does not model "
                       f"({', '.join(sorted({k.rsplit('.', 1)[-1] for k in self.ignored}))})")
        out.append(f"loaded {self.loaded:,} of {self.total:,} values"
                   + ("" if self.complete else "; INCOMPLETE"))
        return out


class TransferError(SsnError):
    """A transfer that cannot be done, or that would be partial: ``report`` says what."""

    report: TransferReport | None = None


# ---------------------------------------------------------------- reading

def read_source(path: str | os.PathLike[str], allow_nonfinite: bool = False) -> Source:
    """The tensors of a checkpoint (.pt/.pth/.bin, .safetensors, .npz, .onnx); NaN or
    infinite values are refused unless ``allow_nonfinite``."""
    p = Path(path)
    where = Span.unknown(str(path))
    order: list[str] | None
    groups = None
    if p.suffix == ".onnx":
        tensors, order, groups = _onnx_initializers(p, where)
    else:
        tensors = read_weights(p)
        order = list(tensors) if p.suffix not in (".safetensors", ".npz") else None
    ignored = {k: tensors.pop(k) for k in [k for k in tensors if k.endswith(IGNORED)]}
    for key, value in tensors.items():
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise error(E_WEIGHTS, f"`{excerpt(key)}` in {path} is {value.dtype}, not numbers",
                        where)
        if not allow_nonfinite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise error(E_WEIGHTS, f"`{excerpt(key)}` in {path} holds NaN or infinite values",
                        where, hint="a diverged checkpoint? (--allow-nonfinite loads it anyway)")
    return Source(str(path), tensors, [k for k in order if k in tensors] if order else None,
                  ignored, groups)


def _onnx_initializers(p: Path, where: Span
                       ) -> tuple[dict[str, np.ndarray], list[str], list[list[str]]]:
    """An ONNX model's initializers in order of first use by its nodes (subgraphs
    included), then those no node reads, and grouped by the node that first reads them
    (an exporter's names say nothing of owners: `onnx::Conv_12`)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(p))
    except Exception as exc:
        raise error(E_WEIGHTS, f"cannot read {p} as ONNX: {type(exc).__name__}: "
                    f"{excerpt(str(exc))}", where) from None
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    order: list[str] = []
    groups: list[list[str]] = []
    todo = [model.graph]
    while todo:
        graph = todo.pop(0)
        for node in graph.node:
            new = [i for i in dict.fromkeys(node.input) if i in inits and i not in order]
            order += new
            groups += [new] if new else []
            todo += [a.g for a in node.attribute if a.HasField("g")]
    rest = [k for k in inits if k not in order]
    return {k: np.asarray(inits[k]) for k in order + rest}, order + rest, \
        groups + [[k] for k in rest]


def read_mapping(text: str, file: str) -> list[Rule]:
    """The rules of a mapping file: `SOURCE_PATTERN -> TARGET` per line (Python regular
    expressions over the whole key, `\\1` for its groups), `#` comments, blank lines."""
    rules: list[Rule] = []
    for number, line in enumerate(source_lines(text), 1):
        body = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not body:
            continue
        span = Span(file=file, line=number, col=1, end_line=number, end_col=len(line) + 1)
        pattern, arrow, target = body.partition("->")
        pattern, target = pattern.strip(), target.strip()
        if not arrow or not pattern or not target:
            raise error(E_WEIGHTS, "a mapping rule is `SOURCE_PATTERN -> TARGET`", span)
        if len(pattern) > MAX_PATTERN or len(rules) >= MAX_RULES:
            raise error(E_WEIGHTS, f"a mapping holds at most {MAX_RULES:,} rules of "
                        f"{MAX_PATTERN} characters each", span)
        try:
            rules.append(Rule(re.compile(pattern), target, number, span))
        except re.error as exc:
            raise error(E_WEIGHTS, f"`{excerpt(pattern)}` is not a regular expression: {exc}",
                        span) from None
    return rules


# ---------------------------------------------------------------- the model's side

@dataclass(frozen=True)
class Owner:
    """A parameter-owning op of the model: its node and its tensors (key, spec) in port
    order (tensors it only shares with an earlier op are the earlier op's)."""

    node: Node
    tensors: tuple[tuple[str, ParamSpec], ...]


def owners(graph: Graph) -> list[Owner]:
    """The model's parameter-owning ops in execution order."""
    out: list[Owner] = []
    taken: set[str] = set()
    every = graph.all_nodes()
    for _, node in walk(graph):
        if node.is_param and not owned(node) and node.name not in taken:
            taken.add(node.name)  # a `param(...)` value owns itself
            out.append(Owner(node, ((node.name, node.spec()),)))
        mine = [w for w in node.weights if w not in taken and owned(every[w])]
        if mine and not node.is_param:
            taken.update(mine)
            out.append(Owner(node, tuple((w, every[w].spec()) for w in mine)))
    return out


# ---------------------------------------------------------------- matching

def _reshaped(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as ``shape`` where only trailing 1s differ (Linear <-> 1x1 conv)."""
    strip = tuple(value.shape)
    while strip and strip[-1] == 1:
        strip = strip[:-1]
    want = tuple(shape)
    while want and want[-1] == 1:
        want = want[:-1]
    return value.reshape(shape) if strip == want and value.size == int(np.prod(shape)) else None


def _lstm(keys: Sequence[str], source: Mapping[str, np.ndarray],
          shape: tuple[int, ...]) -> np.ndarray | None:
    """A PyTorch LSTM layer's pair (`_ih`, `_hh`) as the stdlib `lstm`'s one tensor: weights
    side by side along the input axis, biases summed."""
    parts = {m.group("part"): k for k in keys if (m := LSTM_KEY.fullmatch(k))}
    kinds = {m.group("kind") for k in keys if (m := LSTM_KEY.fullmatch(k))}
    if len(keys) != 2 or set(parts) != {"ih", "hh"} or len(kinds) != 1:
        return None
    ih, hh = source[parts["ih"]], source[parts["hh"]]
    value = np.concatenate([ih, hh], axis=1) if kinds == {"weight"} and ih.ndim == 2 \
        else ih + hh if ih.shape == hh.shape else None
    return value if value is not None and value.shape == shape else None


def _convert(keys: Sequence[str], source: Mapping[str, np.ndarray],
             spec: ParamSpec) -> tuple[np.ndarray | None, str]:
    """The tensor ``keys`` of the source give for ``spec``, and the conversion named."""
    if len(keys) == 1:
        value = source[keys[0]]
        if tuple(value.shape) == spec.shape:
            return value, ""
        reshaped = _reshaped(value, spec.shape)
        return (reshaped, LINEAR_CONV) if reshaped is not None else (None, "")
    merged = _lstm(keys, source, spec.shape)
    return (merged, LSTM) if merged is not None else (None, "")


def _by_names(graph: Graph, source: Source,
              rules: Sequence[Rule]) -> tuple[dict[str, list[str]], list[str]]:
    """Model key -> the source keys mapped onto it, and the source keys left unused."""
    expected = graph.tensors()
    used = [False] * len(rules)
    onto: dict[str, list[str]] = {}
    unused: list[str] = []
    for key in source.tensors:
        target = key if key in expected else None
        for i, rule in enumerate(rules):
            m = rule.pattern.fullmatch(key[:MAX_KEY])
            if m is not None:
                used[i] = True
                target = _expand(m, rule)
                break
        if target is None or target not in expected:
            unused.append(key)
        else:
            onto.setdefault(target, []).append(key)
    for rule, hit in zip(rules, used, strict=True):
        if not hit:
            raise error(E_WEIGHTS, f"this mapping rule matches no tensor of {source.path}",
                        rule.span, hint="check the pattern against the checkpoint's keys "
                        "(`python -c \"import torch; print(list(torch.load(F)))\"`)")
    return onto, unused


_COUNTED = re.compile(r"\{(\d+)([+-]\d+)?\}")


def _expand(m: re.Match[str], rule: Rule) -> str:
    """A rule's target for one match: `\1` is group 1 as it is, `{1}` the same, and
    `{1+1}` group 1 plus one (PyTorch counts layers from 0, ssnc's names from 1)."""
    def counted(c: re.Match[str]) -> str:
        group = m.group(int(c.group(1)))
        if c.group(2) is None:
            return group
        if not group.isdigit():
            raise error(E_WEIGHTS, f"`{c.group(0)}` adds to group {c.group(1)}, which matched "
                        f"`{excerpt(group)}`, not a number", rule.span)
        return str(int(group) + int(c.group(2)))

    try:
        return m.expand(_COUNTED.sub(counted, rule.target))
    except (re.error, IndexError) as exc:
        raise error(E_WEIGHTS, f"this rule's target cannot be made: {exc}", rule.span) from None


def _groups(source: Source) -> list[list[str]]:
    """The source's tensors grouped by owner (the module: the key without its last part),
    a PyTorch LSTM's tensors by layer and kind, in the source's order."""
    assert source.order is not None
    if source.groups is not None:
        return source.groups
    groups: dict[str, list[str]] = {}
    for key in source.order:
        m = LSTM_KEY.fullmatch(key)
        owner = f"{m.group('owner')}[{m.group('layer')}]" if m else key.rpartition(".")[0]
        groups.setdefault(owner, []).append(key)
    out = []
    for keys in groups.values():
        lstm = [k for k in keys if LSTM_KEY.fullmatch(k)]
        if lstm:  # weight_ih, weight_hh, bias_ih, bias_hh: one weight and one bias
            w = [k for k in lstm if ".weight_" in k]
            b = [k for k in lstm if ".bias_" in k]
            out.append(["|".join(w), *(["|".join(b)] if b else [])])
        else:
            out.append(keys)
    return out


def _by_order(graph: Graph, source: Source) -> tuple[dict[str, list[str]], list[str]]:
    """Model key -> source keys, matching the model's owners in execution order against the
    source's owners in its order, by their tensors' shapes."""
    if source.order is None:
        raise error(E_WEIGHTS, f"{source.path} keeps no meaningful order of its tensors "
                    "(safetensors sorts its keys; .npz keeps none), so `order` cannot match "
                    "them", Span.unknown(source.path),
                    hint="match by names: a mapping file of rules (docs/weights.md)")
    mine = owners(graph)
    theirs = _groups(source)
    onto: dict[str, list[str]] = {}
    for i, (owner, keys) in enumerate(zip(mine, theirs, strict=False)):
        if len(owner.tensors) != len(keys) or any(
                _convert(k.split("|"), source.tensors, spec)[0] is None
                for (_, spec), k in zip(owner.tensors, keys, strict=True)):
            raise error(E_WEIGHTS, f"by order, the model's op #{i + 1} `{owner.node.name}` "
                        f"({owner.node.op}) does not fit the source's "
                        f"`{keys[0].split('|')[0].rpartition('.')[0] or keys[0]}`",
                        Span.unknown(source.path), notes=[
                            Note("the model's: " + ", ".join(
                                f"{k} {list(s.shape)}" for k, s in owner.tensors)),
                            Note("the source's: " + ", ".join(
                                f"{k} {list(source.tensors[k.split('|')[0]].shape)}"
                                for k in keys))],
                        hint="the source registers its modules in another order than they "
                        "run: match by names with a mapping file (docs/weights.md)")
        for (key, _), k in zip(owner.tensors, keys, strict=True):
            onto[key] = k.split("|")
    _check_ambiguous(graph, mine[:len(theirs)], source, onto)
    used = {k for ks in onto.values() for k in ks}
    return onto, [k for k in source.order if k not in used]


def _check_ambiguous(graph: Graph, mine: Sequence[Owner], source: Source,
                     onto: Mapping[str, list[str]]) -> None:
    """Two owners of equal shapes that could run in either order (neither reads the other,
    nor anything between them that the other needs): the source's order cannot say which
    of its tensors is which, so a rule must."""
    def shapes(o: Owner) -> tuple[tuple[int, ...], ...]:
        return tuple(s.shape for _, s in o.tensors)

    names = [o.node.name for o in mine]
    position = {n: i for i, n in enumerate(names)}
    flat = nx.DiGraph(graph.nx)
    before: dict[str, set[int]] = {}
    for n in names:
        if n in flat:
            before[n] = {position[a] for a in nx.ancestors(flat, n) if a in position}
    for p, a in enumerate(mine):
        for q in range(p + 1, len(mine)):
            b = mine[q]
            if shapes(a) != shapes(b) or a.node.name not in before or b.node.name not in before:
                continue
            between = set(range(p, q))
            later = range(p + 1, q + 1)
            if not (before[b.node.name] & between) and not any(
                    p in before[names[r]] for r in later):
                first, second = (onto[k][0] for k, _ in (a.tensors[0], b.tensors[0]))
                raise error(E_WEIGHTS, f"by order, `{a.node.name}` and `{b.node.name}` are "
                            "interchangeable: they have the same shapes and could run in "
                            f"either order, so the source's `{first}` and `{second}` cannot "
                            "be told apart", Span.unknown(source.path),
                            hint="match by names: a mapping rule for each (docs/weights.md)")


# ---------------------------------------------------------------- the transfer

def transfer(graph: Graph, source: Source, match: str = "names",
             rules: Sequence[Rule] = (), initial: Mapping[str, np.ndarray] | None = None,
             allow_partial: bool = False) -> tuple[dict[str, np.ndarray], TransferReport]:
    """The model's tensors from ``source`` (the rest from ``initial``), and the report;
    a partial transfer raises TransferError with the report unless ``allow_partial``."""
    onto, unused = _match(graph, source, match, rules)
    return _load(graph, source, match, onto, unused, initial, allow_partial)


def _match(graph: Graph, source: Source, match: str,
           rules: Sequence[Rule]) -> tuple[dict[str, list[str]], list[str]]:
    """Model key -> the source keys it loads from, and the source keys left unused."""
    if match not in ("names", "order"):
        raise error(E_WEIGHTS, f"match by `names` or `order`, not `{match}`",
                    Span.unknown("match"))
    if match == "order" and rules:
        raise error(E_WEIGHTS, "mapping rules are for matching by names", rules[0].span)
    return _by_order(graph, source) if match == "order" else _by_names(graph, source, rules)


def _load(graph: Graph, source: Source, match: str, onto: Mapping[str, list[str]],
          unused: Sequence[str], initial: Mapping[str, np.ndarray] | None,
          allow_partial: bool) -> tuple[dict[str, np.ndarray], TransferReport]:
    """The tensors ``onto`` says to load, converted, and the report (see `transfer`)."""
    report = TransferReport(source.path, match, unused=list(unused),
                            ignored=list(source.ignored))
    out: dict[str, np.ndarray] = {}
    for owner in owners(graph):
        row = Row(owner.node.name, owner.node.op, "matched", [], [])
        for key, spec in owner.tensors:
            row.targets.append(key)
            row.params += spec.numel
            keys = onto.get(key)
            if not keys:
                row.status = "initial" if row.status in ("matched", "initial") else row.status
                continue
            row.sources += keys
            value, conversion = _convert(keys, source.tensors, spec)
            if value is None:
                row.status = "mismatched"
                report.unused += keys
                continue
            out[key] = np.asarray(value, dtype=np.float32)
            if conversion:
                row.conversion = conversion
                row.status = "converted" if row.status == "matched" else row.status
        if row.status == "initial" and row.sources:
            row.status = "partial"
        report.rows.append(row)
    if not report.complete and not allow_partial:
        exc = error(E_WEIGHTS, f"the transfer from {source.path} is partial: "
                    f"{report.loaded:,} of {report.total:,} values loaded, "
                    f"{len(report.unused)} source tensors unused", Span.unknown(source.path),
                    notes=[Note(line) for line in _problems(report)[:20]],
                    hint="give mapping rules for the rest, or --allow-partial to keep their "
                    "initial values")
        failed = TransferError(exc.diagnostics)
        failed.report = report
        raise failed
    for key, value in (initial or {}).items():
        out.setdefault(key, np.asarray(value, dtype=np.float32))
    return out, report


def _problems(report: TransferReport) -> list[str]:
    """The report's lines that say what is missing."""
    lines = [f"{r.scope} ({r.op}): {r.status}" + (f", from {', '.join(r.sources)}"
                                                  if r.sources else "")
             for r in report.rows if r.status not in ("matched", "converted")]
    return lines + [f"unused in the source: {k}" for k in report.unused]


def reverse(graph: Graph, template: Source, weights: Mapping[str, np.ndarray],
            match: str = "names", rules: Sequence[Rule] = (),
            allow_partial: bool = False) -> tuple[dict[str, np.ndarray], TransferReport]:
    """The model's ``weights`` in the names and layouts of ``template`` (a checkpoint of the
    source model): each of its tensors from the model tensors it would load into, converted
    back (an LSTM's W split, its b_hh zero); the template's others kept as they are."""
    onto, unused = _match(graph, template, match, rules)
    _, report = _load(graph, template, match, onto, unused, None, allow_partial)
    out = {k: np.asarray(v) for k, v in {**template.tensors, **template.ignored}.items()}
    for key, keys in onto.items():
        value = np.asarray(weights[key], dtype=np.float32)
        if len(keys) == 1:
            out[keys[0]] = value.reshape(template.tensors[keys[0]].shape)
            continue
        parts = {m.group("part"): k for k in keys if (m := LSTM_KEY.fullmatch(k))}
        ih, hh = parts["ih"], parts["hh"]
        if ".weight_" in ih:
            cut = template.tensors[ih].shape[1]
            out[ih], out[hh] = value[:, :cut], value[:, cut:]
        else:
            out[ih], out[hh] = value, np.zeros_like(value)
    return out, report
