"""Typing one node against its op's declaration: its output shape and dtype, the shapes of
the parameters it reads, and its concrete attributes; a body typed through its op's body
rule. Shape inference (`passes/infer_shapes.py`) runs this over a whole graph; the
elaborator runs it on the nodes made so far, so that a rule can read a wire's shape
(`channels(x)`) without importing a pass."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..base.diagnostics import (
    E_SHAPE,
    E_VALUE_LIMIT,
    Note,
    SsnError,
    error,
    excerpt,
    note_call_site,
)
from .axes import Axes, roles_of
from .ir import Graph, Node, Scope, owned
from .ops import (
    ANY_DTYPE,
    DTYPE_WORDS,
    OPS,
    AttrValue,
    OpDecl,
    ParamSpec,
    Shape,
    ShapeMismatch,
    fmt_shape,
)
from .plugins import plugin_fault

FirstReader = Callable[[str], Node]
"""The node that reads a parameter first (named in the diagnostic of a `shared` misuse)."""


def infer_graph(graph: Graph, done: dict[str, Node], first_reader: FirstReader,
                scopes: Mapping[int, Scope] | None = None) -> Graph:
    """``graph`` (the model or a body inside it) with shapes; ``done`` holds every node
    typed so far, enclosing graphs' included, which a body may read. A diagnostic inside the
    standard library also points at the user's call that led there (through ``scopes``, the
    model's)."""
    scopes = graph.scopes if scopes is None else scopes
    for node in graph.order():
        try:
            type_node(node, done, first_reader, scopes)
        except SsnError as exc:
            raise user_call(exc, node.scope, scopes) from None
    return graph.with_nodes(done[n.name] for n in graph.nodes_by_name.values())


def user_call(exc: SsnError, scope: int | None, scopes: Mapping[int, Scope]) -> SsnError:
    """``exc``, raised in rule instance ``scope``, with notes at the calls in the user's
    spec that led to it (innermost first; `note_call_site` skips the standard library's own
    calls and bounds the chain)."""
    while scope is not None and scope in scopes and scopes[scope].parent is not None:
        here = scopes[scope]
        if not here.transparent:
            exc = note_call_site(exc, here.rule, here.args, here.span, "applied")
        scope = here.parent
    return exc


def type_node(node: Node, done: dict[str, Node], first_reader: FirstReader,
              scopes: Mapping[int, Scope] | None = None) -> None:
    """Type ``node`` (its inputs are in ``done``) into ``done``, and its parameters: a
    parameter takes the shape its first reader needs. The elaborator calls this as nodes
    are made, so that a rule can read a wire's shape (`channels(x)`)."""
    if node.is_source:
        done[node.name] = node  # a parameter's shape comes from its first reader
        return
    op = OPS[node.op]
    inputs = [done[i] for i in node.inputs]
    shapes = list(inputs[0].outputs) if op.projects else [i.shape for i in inputs]
    assert all(s is not None for s in shapes)
    _check_dtypes(node, op, inputs)
    dtype = inputs[0].dtype if op.writes == ANY_DTYPE else op.writes
    body = None
    several: tuple[Shape, ...] = ()
    try:
        if op.body is not None and node.body is not None:
            body = _infer_body(node, op.body.inputs(shapes, node.attrs),  # type: ignore[arg-type]
                               done, first_reader, scopes)
            outs = [done[o].shape or () for o in body.outputs]
            shape = op.body.output(shapes, outs, node.attrs)  # type: ignore[arg-type]
            if op.body.extra is not None:
                several = (shape, *op.body.extra(shapes, outs, node.attrs))  # type: ignore[arg-type]
        else:
            shape = op.shape(shapes, node.attrs)  # type: ignore[arg-type]
        params = op.params(shapes, node.attrs)  # type: ignore[arg-type]
        attrs = _concrete(op, shapes, node.attrs)  # type: ignore[arg-type]
    except ShapeMismatch as exc:
        raise error(E_SHAPE, exc.message, node.span,
                    notes=_producers(inputs, exc.inputs), hint=exc.hint) from None
    except Exception as exc:
        if op.origin is None:
            raise  # a bug in ssnc: the pipeline reports it
        raise plugin_fault(op, "shape rule", node.span, exc) from None
    if op.origin is not None:
        _check_plugin_result(op, node, shape, params)
    if not isinstance(shape, Axes):  # an op whose rule gives no roles keeps what sizes say
        shape = Axes(shape, roles_of(shape))
    _check_size(node, shape)
    for spec, w in zip(params, node.weights, strict=True):
        param = done[w]
        if not owned(param):
            _check_given(node, spec, param)
        elif param.shape is None:
            done[w] = param.evolve(shape=spec.shape, attrs={
                **param.attrs, "init": spec.init, "fan_in": spec.fan_in,
                "trainable": spec.trainable, "fill": spec.fill, "scale": spec.scale})
        elif param.shape != spec.shape:
            owner = first_reader(w)
            first_shape = done[owner.inputs[0]].shape or ()
            raise error(E_SHAPE, f"a shared `{node.op}` is applied to an input of shape "
                        f"{fmt_shape(shapes[0] or ())}, which needs parameters of other shapes "
                        "than its first use", node.span,
                        notes=[Note(f"first used here, on {fmt_shape(first_shape)}",
                                    owner.span)],
                        hint="a shared block must see the same input shape at every use")
    changes = {} if attrs is node.attrs else {"attrs": attrs}  # unchanged: shared as it is
    done[node.name] = node.evolve(shape=shape, dtype=dtype, params=params, body=body,
                                  outputs=several, **changes)


def _concrete(op: OpDecl, shapes: list[Shape], attrs: Mapping[str, AttrValue]
              ) -> Mapping[str, AttrValue]:
    """``attrs`` with no default left to work out (`OpDecl.concrete`); the same mapping
    where that changes nothing, so that the node keeps it rather than a copy."""
    if op.concrete is None:
        return attrs
    concrete = op.concrete(shapes, attrs)
    if all(k in attrs and type(attrs[k]) is type(v) and attrs[k] == v
           for k, v in concrete.items()):
        return attrs
    return {**attrs, **concrete}


def _check_dtypes(node: Node, op: OpDecl, inputs: list[Node]) -> None:
    """Each input has the dtype its op declares (`OpDecl.reads`): a diagnostic naming what
    it needs and what it got."""
    wanted = op.reads_at(len(inputs))
    for k, (want, given) in enumerate(zip(wanted, inputs, strict=True)):
        if want == ANY_DTYPE or given.dtype == want:
            continue
        if want == "i64":
            raise error(E_SHAPE, f"`{node.op}` reads token ids (a `tokens[...]` input)",
                        node.span, notes=_producers(inputs, range(len(inputs))))
        if given.dtype == "i64":
            raise error(E_SHAPE, f"`{node.op}` needs float inputs but reads token ids",
                        node.span, notes=_producers(inputs, range(len(inputs))),
                        hint="turn token ids into vectors with `embedding(vocab, dim)` first")
        raise error(E_SHAPE, f"`{node.op}`'s input {k + 1} must be {DTYPE_WORDS[want]}, not "
                    f"{DTYPE_WORDS[given.dtype]}", node.span, notes=_producers(inputs, (k,)),
                    hint="a mask comes from `pad_mask(pad)` on token ids" if want == "bool"
                    else None)


def _check_given(node: Node, spec: ParamSpec, given: Node) -> None:
    """A weight given to ``node`` (generated, or a `param` value) has the shape and dtype
    the op needs: a diagnostic at the op, with a note at what made the weight."""
    if given.shape == spec.shape and given.dtype == "f32":
        return
    what = "a `param`" if given.is_param else f"`{given.op}`"
    got = fmt_shape(given.shape or ()) if given.dtype == "f32" else "token ids"
    raise error(E_SHAPE, f"`{node.op}` needs its {spec.name} to be {fmt_shape(spec.shape)}, "
                f"but the one it is given is {got}", node.span,
                notes=[Note(f"the {spec.name} is made here, by {what}", given.span)],
                hint=f"make the generated {spec.name} {fmt_shape(spec.shape)}, or change the "
                f"op's sizes to fit it")


def _infer_body(node: Node, shapes: tuple[Shape, ...], done: dict[str, Node],
                first_reader: FirstReader, scopes: Mapping[int, Scope] | None) -> Graph:
    """The body of ``node`` typed, its inputs given ``shapes`` by the op's body rule."""
    assert node.body is not None
    body = node.body
    if len(shapes) != len(body.inputs):
        raise ShapeMismatch(f"`{node.op}`'s body takes {len(body.inputs)} inputs, the op "
                            f"gives it {len(shapes)}")
    given = dict(zip(body.inputs, shapes, strict=True))
    seeded = body.with_nodes(n.evolve(shape=given[n.name]) if n.name in given else n
                             for n in body.nodes_by_name.values())
    return infer_graph(seeded, done, first_reader, scopes)


MAX_ELEMENTS = 1 << 40
"""The most elements one activation of one sample may have (4 TiB of float32)."""


def _check_size(node: Node, shape: tuple[int | str, ...]) -> None:
    """Refuse outputs no device can hold (a padding of 2**62): E0404 at the op."""
    elements = 1
    for d in shape:
        if isinstance(d, int):
            elements *= d
    if elements > MAX_ELEMENTS:
        raise error(E_VALUE_LIMIT, f"`{node.op}` would output {fmt_shape(shape)}: "
                    f"{elements:,} elements per sample, more than any tensor can hold",
                    node.span, hint="check its padding, stride and sizes")


def _check_plugin_result(op: OpDecl, node: Node, shape: object, params: object) -> None:
    """A plugin's shape rule gives a shape (positive sizes, or the symbols of its inputs'
    axes), and its params rule one tensor per weight port."""
    def bad(what: str) -> SsnError:
        return plugin_fault(op, "shape rule", node.span, TypeError(what))

    if not isinstance(shape, tuple) or not all(
            (isinstance(d, int) and not isinstance(d, bool) and d > 0) or isinstance(d, str)
            for d in shape):
        raise bad(f"it returned {excerpt(repr(shape))}, not a shape (a tuple of positive "
                  "sizes)")
    if not isinstance(params, tuple) or len(params) != len(node.weights) or not all(
            isinstance(p, ParamSpec) for p in params):
        raise bad(f"its params rule gave {excerpt(repr(params))}, not one ParamSpec for each "
                  f"weight port {list(OPS[node.op].weights(node.attrs))}")


def _producers(inputs: list[Node], which: range | tuple[int, ...]) -> list[Note]:
    notes = []
    for i in which:
        src = inputs[i]
        what = "the model's input" if src.is_input else f"`{src.name}`"
        notes.append(Note(f"input {i + 1} is {fmt_shape(src.shape or ())}, from {what}",
                          src.span))
    return notes
