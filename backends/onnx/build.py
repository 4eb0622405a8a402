"""The ONNX model of a graph: its regions emitted flat (the default: the hierarchy in node names)
or as model-local functions, one per distinct rule instance, so a recursive rule becomes one
function per depth; initializers named by state_dict key, holding the compiler's deterministic
initial weights (or trained ones), bit-identical to the PyTorch backend's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...base.diagnostics import E_DUPLICATE, SsnError, error, lowering_error
from ...compiler.initializers import expected_tensors, initial_state
from ...compiler.ir import Graph, Node, Region, op_call
from ...compiler.literals import json_data
from ...compiler.ops import OPS, OnnxLowering
from ...compiler.plugins import no_lowering, plugin_fault
from .lower import _DTYPES, DOMAIN, LOWERINGS, Emitter, lower_declared
from .options import DEFAULT_OPSET

FUNCTIONS_IR_VERSION = 8
"""Model-local functions need IR version 8."""


def ir_version(opset: int, functions: bool) -> int:
    """The oldest IR version that carries ``opset`` (``onnx.helper.VERSION_TABLE``), so that
    older runtimes load the file; at least 8 where the model holds functions."""
    oldest = min(ir for _, ir, ai_onnx, *_ in helper.VERSION_TABLE if ai_onnx >= opset)
    return max(oldest, FUNCTIONS_IR_VERSION) if functions else oldest

def value_info(name: str, node: Node) -> onnx.ValueInfoProto:
    """The typed value ``name`` carrying ``node``'s output."""
    return _value_info(name, node)


def _value_info(name: str, node: Node) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) else str(d) for d in node.shape or ()]
    return helper.make_tensor_value_info(name, _DTYPES[node.dtype], dims)


class ModelBuilder:
    """Builds the ONNX nodes and model-local functions of a graph from its regions."""

    def __init__(self, graph: Graph, flat: bool, opset: int):
        self.graph = graph
        self.flat = flat
        self.opset = opset
        self.functions: dict[bytes, onnx.FunctionProto] = {}
        self.function_names: dict[str, int] = {}
        self.signatures: dict[str, list[str]] = {}
        self.domains: dict[str, int] = {}
        """Plugins' domains the model uses, with their opsets."""
        self.plugin_functions: dict[tuple[str, str], onnx.FunctionProto] = {}

    def emitter(self) -> Emitter:
        """A fresh emitter for one graph or function body of this model."""
        return Emitter(domains=self.domains, functions=self.plugin_functions)

    # --- emission
    def emit(self, e: Emitter, nodes: Sequence[Node], children: Sequence[Region],
             rename: Callable[[str], str]) -> None:
        def lower_body(sub: Emitter, body: Graph) -> None:
            self.emit(sub, [n for n in body.order() if not n.is_source], (), rename)
            sub.inputs = [_value_info(rename(i), body[i]) for i in body.inputs]
            sub.outputs = [_value_info(rename(o), body[o]) for o in body.outputs]

        e.lower_body = lower_body
        e.opset = self.opset
        items: list[tuple[int, Node | Region]] = [(n.index, n) for n in nodes]
        items += [(c.first, c) for c in children]
        for _, item in sorted(items, key=lambda t: t[0]):
            if isinstance(item, Region):
                self._call(e, item, rename)
            else:
                e.source = item.span.position()
                self._lower(e, item, rename)
        e.source = ""

    def _lower(self, e: Emitter, node: Node, rename: Callable[[str], str]) -> None:
        """One node through the lowering its op declares, else this backend's row for it;
        a failure is a diagnostic at the node (a plugin's, E0702; ssnc's own, a bug)."""
        decl = OPS[node.op]
        declared = decl.lowerings.get("onnx")
        if declared is None and node.op not in LOWERINGS:
            raise no_lowering(decl, "ONNX", node.span)
        ins = [self.graph.all_nodes()[i] for i in node.inputs]
        xs, ws = [rename(i) for i in node.inputs], [rename(w) for w in node.weights]
        try:
            if isinstance(declared, OnnxLowering):
                lower_declared(e, declared, op_call(node, ins), xs, ws, rename(node.name))
            else:
                LOWERINGS[node.op](e, node, xs, ws, rename(node.name), ins)
        except SsnError:
            raise
        except Exception as exc:  # reported at the node it happened on
            if decl.origin is not None:
                raise plugin_fault(decl, "ONNX lowering", node.span, exc) from exc
            raise lowering_error("ONNX", node.name, node.op, node.span, exc) from exc

    def _call(self, e: Emitter, inst: Region, rename: Callable[[str], str]) -> None:
        if self.flat:
            self.emit(e, inst.nodes, inst.children, rename)
            return
        fname = self._function(inst)
        e.source = inst.scope.span.position()
        e.add(fname, [rename(v) for v in inst.inputs + inst.weights],
              [rename(v) for v in inst.outputs], rename(inst.prefix) if inst.prefix else fname,
              domain=DOMAIN)
        e.source = ""

    def _function(self, inst: Region) -> str:
        local = {v: f"in{i}" for i, v in enumerate(inst.inputs)}
        local.update({w: f"w{i}" for i, w in enumerate(inst.weights)})

        def rename(v: str) -> str:
            if v not in local:
                local[v] = _relative(v, inst.prefix)
            return local[v]

        body = self.emitter()
        self.emit(body, inst.nodes, inst.children, rename)
        outputs = [rename(o) for o in inst.outputs]
        key_fn = helper.make_function(DOMAIN, "f", [local[v] for v in inst.inputs + inst.weights],
                                      outputs, body.nodes, _opsets(self.opset, True, self.domains))
        key = _structure_key(key_fn, inst.scope.rule)
        known = self.functions.get(key)
        if known is None:
            count = self.function_names.get(inst.scope.rule, 0) + 1
            self.function_names[inst.scope.rule] = count
            name = inst.scope.rule if count == 1 else f"{inst.scope.rule}_{count}"
            known = helper.make_function(DOMAIN, name, list(key_fn.input), outputs,
                                         body.nodes, _opsets(self.opset, True, self.domains))
            self.functions[key] = known
            self.signatures[name] = []
        sig = inst.scope.signature
        if sig not in self.signatures[known.name]:
            self.signatures[known.name].append(sig)
        return str(known.name)


def _relative(name: str, prefix: str) -> str:
    return name[len(prefix) + 1:] if prefix and name.startswith(prefix + ".") else name


def _opsets(opset: int, with_domain: bool,
            plugins: dict[str, int] | None = None) -> list[onnx.OperatorSetIdProto]:
    ids = [helper.make_opsetid("", opset)]
    if with_domain:
        ids.append(helper.make_opsetid(DOMAIN, 1))
    ids += [helper.make_opsetid(d, v) for d, v in sorted((plugins or {}).items())]
    return ids


def _structure_key(fn: onnx.FunctionProto, rule: str) -> bytes:
    """Functions with the same rule, ops, attributes and wiring are one function; node and
    value names (which differ between instances) are normalised away."""
    canon = onnx.FunctionProto()
    canon.CopyFrom(fn)
    names: dict[str, str] = {}

    def norm(v: str) -> str:
        if v == "":
            return v
        if v not in names:
            names[v] = f"v{len(names)}"
        return names[v]

    for i, v in enumerate(canon.input):
        canon.input[i] = norm(v)
    for node in canon.node:
        node.name = ""
        del node.metadata_props[:]
        for i, v in enumerate(node.input):
            node.input[i] = norm(v)
        for i, v in enumerate(node.output):
            node.output[i] = norm(v)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.name = ""
    for i, v in enumerate(canon.output):
        canon.output[i] = norm(v)
    body: bytes = canon.SerializeToString(deterministic=True)
    return rule.encode() + b"\0" + body


# ---------------------------------------------------------------- the model

def fix_dims(model: onnx.ModelProto, values: dict[str, int]) -> onnx.ModelProto:
    """``model`` with the symbolic dimensions named in ``values`` (`N`, `T`) fixed, in every
    graph and body, for engines that build static shapes."""
    for g in all_graphs(model) if values else ():
        for info in [*g.input, *g.output, *g.value_info]:
            for dim in info.type.tensor_type.shape.dim:
                if dim.dim_param in values:
                    dim.dim_value = values[dim.dim_param]  # clears dim_param (a oneof)
    return model


def name_dims(model: onnx.ModelProto, names: dict[str, dict[int, str]]) -> onnx.ModelProto:
    """``model`` with the axes in ``names`` (by graph input or output, then axis) made
    symbolic dimensions of those names: an image model's height and width."""
    for info in [*model.graph.input, *model.graph.output]:
        for axis, name in names.get(info.name, {}).items():
            info.type.tensor_type.shape.dim[axis].dim_param = name  # clears dim_value
    return model


def all_graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph and every body graph (Scan, Loop), in functions too."""
    todo = [model.graph]
    todo.extend(a.g for fn in model.functions for n in fn.node for a in n.attribute
                if a.type == a.GRAPH)
    while todo:
        g = todo.pop()
        yield g
        todo.extend(a.g for n in g.node for a in n.attribute if a.type == a.GRAPH)


def build_model(graph: Graph, tensors: dict[str, np.ndarray] | None = None, *, seed: int = 0,
                flat: bool = False, opset: int = DEFAULT_OPSET, spec_text: str = "",
                version: str = "", progress: Callable[..., None] | None = None
                ) -> onnx.ModelProto:
    """The ONNX model of ``graph`` in inference form, with ``tensors`` (by state_dict key;
    default: the compiler's initial weights at ``seed``)."""
    step = progress or (lambda *_: None)
    step("lowering")
    builder = ModelBuilder(graph, flat, opset)
    top = graph.region(0)
    top_nodes, children = top.nodes, top.children
    main = builder.emitter()
    builder.emit(main, top_nodes, children, lambda v: v)
    step("weights")
    values = tensors if tensors is not None else initial_state(graph, seed, progress=step)
    initializers = [numpy_helper.from_array(np.require(values[k], np.float32, "C"), k)
                    for k in expected_tensors(graph)]
    inputs = [_value_info(i, graph[i]) for i in graph.inputs]
    outputs = []
    for o, name in zip(graph.outputs, graph.output_labels(), strict=True):
        # a named output is its own value, the node's copy
        if name != o:
            if name in graph.all_nodes():
                raise error(E_DUPLICATE, f"output `{name}` is also the name of a node",
                            graph[o].span, hint="choose another output name")
            main.source = graph[o].span.position()  # where the output's value is made
            main.add("Identity", [o], [name], f"outputs/{name}")
            main.source = ""
        outputs.append(_value_info(name, graph[o]))
    g = helper.make_graph(main.nodes, graph.model, inputs, outputs, initializers)
    functions = list(builder.functions.values())
    for fn in functions:
        fn.doc_string = "instances: " + "; ".join(builder.signatures[fn.name])
    functions += builder.plugin_functions.values()
    model = helper.make_model(g, opset_imports=_opsets(opset, bool(builder.functions),
                                                       builder.domains),
                              functions=functions, producer_name="ssnc",
                              producer_version=version,
                              ir_version=ir_version(opset, bool(functions)))
    meta = {
        "ssnc.version": version,
        "ssnc.model": graph.model,
        "ssnc.spec_sha256": hashlib.sha256(spec_text.encode("utf-8")).hexdigest(),
        "ssnc.parameters": json.dumps({k: json_data(v) for k, v in graph.params.items()},
                                      sort_keys=True),
        "ssnc.input": graph.input_type,
    }
    helper.set_model_props(model, meta)
    return model
