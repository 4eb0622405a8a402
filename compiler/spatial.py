"""Which output axes follow the input image's height and width: the check behind symbolic
H and W (`--symbolic-hw`).

Shapes are inferred again with the height, then the width, doubled. A model is fully
convolutional when that works, no parameter changes shape, and no op writes a size that
changed into its lowering (`OpDecl.fixes`: a reshape's target, a slice's bounds). An output
axis whose size changed with the height follows it: that axis is symbolic in the export."""

from __future__ import annotations

from dataclasses import dataclass

from ..base.diagnostics import E_OPTION, E_SHAPE, Note, SsnError, error
from ..base.options import spell
from .axes import Axes, roles_of
from .ir import Graph, Node, owned
from .ops import OPS, Shape, fmt_shape
from .passes.infer_shapes import infer_shapes

AXES = ((2, "H"), (3, "W"))
"""The image axes of `tensor[C, H, W]` (after the batch axis) and their symbolic names."""


@dataclass(frozen=True)
class SymbolicAxes:
    """The axes that follow an image input's height or width, by name: for each image input
    its own (`H`, `W`; `NAME_H`, `NAME_W` where the model has several inputs), and for each
    output those whose size follows them (the same name where it is the input's size,
    `H_out` (`H_out2`, ... for several outputs) where it is another function of it)."""

    inputs: dict[str, dict[int, str]]
    outputs: list[dict[int, str]]


def spatial_axes(graph: Graph) -> SymbolicAxes:
    """``graph``'s symbolic image axes; a diagnostic at the op at fault where the model is
    not fully convolutional, or where it has no image input."""
    images = [i for i in graph.inputs
              if graph[i].dtype == "f32" and len(graph[i].shape or ()) == 4]
    if not images:
        raise error(E_OPTION, f"symbolic height and width need an image input "
                    f"`tensor[C, H, W]`, not `{graph.input_type}`", graph[graph.inputs[0]].span,
                    hint=f"leave out {spell('symbolic_hw')}")
    axes = SymbolicAxes({}, [{} for _ in graph.outputs])
    for image in images:
        shape = graph[image].shape or ()
        axes.inputs[image] = {}
        for axis, dim in AXES:
            name = dim if len(graph.inputs) == 1 else f"{image}_{dim}"
            size = int(shape[axis])
            probe = _probe(graph, image, Axes((*shape[:axis], 2 * size, *shape[axis + 1:]),
                                              roles_of(shape)), name, dim, size)
            _compare(graph, probe, name, dim, size)
            axes.inputs[image][axis] = name
            for i, o in enumerate(graph.outputs):
                own = f"{name}_out" if len(graph.outputs) == 1 else f"{name}_out{i + 1}"
                before, after = graph[o].shape or (), probe[o].shape or ()
                axes.outputs[i].update((k, name if (a, b) == (size, 2 * size) else own)
                                       for k, (a, b) in enumerate(zip(before, after,
                                                                      strict=True))
                                       if a != b)
    return axes


def _probe(graph: Graph, image: str, shape: Shape, name: str, dim: str, size: int) -> Graph:
    """``graph`` typed again with input ``image`` of ``shape`` (parameters untyped, so that
    a parameter whose shape follows the image shows up rather than failing as a share)."""
    def reset(node: Node) -> Node:
        if node.name == image:
            return node.evolve(shape=shape)
        return node.evolve(shape=None) if owned(node) else node

    try:
        return infer_shapes(graph.map_nodes(reset))
    except SsnError as exc:
        first = exc.diagnostics[0]
        raise error(E_SHAPE, f"with symbolic {name} the model must run at every image size, "
                    f"but at {'height' if dim == 'H' else 'width'} {2 * size} (twice the "
                    f"spec's {size}): {first.message}", first.span, notes=first.notes,
                    hint="this model is not fully convolutional; leave out "
                    f"{spell('symbolic_hw')}") from None


def _compare(graph: Graph, probe: Graph, symbol: str, dim: str, size: int) -> None:
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
                        f"symbolic {symbol}", reader.span,
                        hint="only fully convolutional models (no `flatten` or `linear` over "
                        "image axes) take any image size; leave out "
                        f"{spell('symbolic_hw')}")
        fixes = OPS[node.op].fixes
        if fixes is not None and not node.is_source:
            ins = [nodes[i].shape or () for i in node.inputs]
            outs = [changed[i].shape or () for i in node.inputs]
            if fixes(ins, node.attrs) != fixes(outs, node.attrs):
                raise error(E_SHAPE, f"`{node.op}` writes sizes that follow the image's "
                            f"(input {fmt_shape(ins[0])} and {fmt_shape(outs[0])} at {what}), "
                            f"so the model cannot have symbolic {symbol}", node.span,
                            notes=[Note("a fully convolutional model reshapes and slices only "
                                        "axes whose size is fixed")],
                            hint=f"leave out {spell('symbolic_hw')}")
