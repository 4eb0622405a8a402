"""Which output axes follow the input image's height and width: the check behind symbolic
H and W (`--symbolic-hw`).

Shapes are inferred again with the height, then the width, doubled. A model is fully
convolutional when that works, no parameter changes shape, and no op writes a size that
changed into its lowering (`OpDecl.fixes`: a reshape's target, a slice's bounds). An output
axis whose size changed with the height follows it: that axis is symbolic in the export."""

from __future__ import annotations

from ..base.diagnostics import E_OPTION, E_SHAPE, Note, SsnError, error
from .ir import Graph, Node, owned
from .ops import OPS, Shape, fmt_shape
from .passes.infer_shapes import infer_shapes

AXES = ((2, "H"), (3, "W"))
"""The image axes of `tensor[C, H, W]` (after the batch axis) and their symbolic names."""


def spatial_axes(graph: Graph) -> list[dict[int, str]]:
    """For each output of ``graph``, its axes that follow the input's height or width, with
    their names: `H` (`W`) where the size is the input's, `H_out` (`H_out2`, ... for several
    outputs) where it is some other function of it. A diagnostic at the op at fault where the
    model is not fully convolutional."""
    x = graph[graph.inputs[0]]
    shape = x.shape or ()
    if x.dtype != "f32" or len(shape) != 4:
        raise error(E_OPTION, f"symbolic height and width need an image input "
                    f"`tensor[C, H, W]`, not `{graph.input_type}`", x.span,
                    hint="leave out --symbolic-hw")
    found: list[dict[int, str]] = [{} for _ in graph.outputs]
    for axis, dim in AXES:
        size = int(shape[axis])
        probe = _probe(graph, (*shape[:axis], 2 * size, *shape[axis + 1:]), dim, size)
        _compare(graph, probe, dim, size)
        for i, o in enumerate(graph.outputs):
            own = f"{dim}_out" if len(graph.outputs) == 1 else f"{dim}_out{i + 1}"
            before, after = graph[o].shape or (), probe[o].shape or ()
            found[i].update((k, dim if (a, b) == (size, 2 * size) else own)
                            for k, (a, b) in enumerate(zip(before, after, strict=True))
                            if a != b)
    return found


def _probe(graph: Graph, shape: Shape, dim: str, size: int) -> Graph:
    """``graph`` typed again on an input of ``shape`` (parameters untyped, so that a
    parameter whose shape follows the image shows up rather than failing as a share)."""
    def reset(node: Node) -> Node:
        if node.name == graph.inputs[0]:
            return node.evolve(shape=shape)
        return node.evolve(shape=None) if owned(node) else node

    try:
        return infer_shapes(graph.map_nodes(reset))
    except SsnError as exc:
        first = exc.diagnostics[0]
        raise error(E_SHAPE, f"with symbolic {dim} the model must run at every image size, "
                    f"but at {'height' if dim == 'H' else 'width'} {2 * size} (twice the "
                    f"spec's {size}): {first.message}", first.span, notes=first.notes,
                    hint="this model is not fully convolutional; leave out --symbolic-hw"
                    ) from None


def _compare(graph: Graph, probe: Graph, dim: str, size: int) -> None:
    """Refuse a parameter, or a size an op writes into its lowering, that changed when the
    image did."""
    what = f"{'height' if dim == 'H' else 'width'} {size} and {2 * size}"
    nodes, changed = graph.all_nodes(), probe.all_nodes()
    for name, node in nodes.items():
        new = changed[name]
        if node.is_param and node.shape != new.shape:
            reader = graph.first_reader(name)
            raise error(E_SHAPE, f"`{reader.op}`'s {node.attrs['role']} is "
                        f"{fmt_shape(node.shape or ())} and {fmt_shape(new.shape or ())} at "
                        f"{what}: its size follows the image's, so the model cannot have "
                        f"symbolic {dim}", reader.span,
                        hint="only fully convolutional models (no `flatten` or `linear` over "
                        "image axes) take any image size; leave out --symbolic-hw")
        fixes = OPS[node.op].fixes
        if fixes is not None and not node.is_source:
            ins = [nodes[i].shape or () for i in node.inputs]
            outs = [changed[i].shape or () for i in node.inputs]
            if fixes(ins, node.attrs) != fixes(outs, node.attrs):
                raise error(E_SHAPE, f"`{node.op}` writes sizes that follow the image's "
                            f"(input {fmt_shape(ins[0])} and {fmt_shape(outs[0])} at {what}), "
                            f"so the model cannot have symbolic {dim}", node.span,
                            notes=[Note("a fully convolutional model reshapes and slices only "
                                        "axes whose size is fixed")],
                            hint="leave out --symbolic-hw")
