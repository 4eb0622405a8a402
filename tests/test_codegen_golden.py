"""Goldens of the generated code, because the generated code is the product: the PyTorch
source and the printed ONNX graph (weights left out) of a small FractalNet and of NiN.
Regenerate with `pytest --update-goldens` and review the diff."""

from __future__ import annotations

import linecache
import traceback

import onnx
import pytest
import torch

import ssnc
from tests.conftest import GOLDEN, SPECS

CASES = {
    "fractalnet_small": ("fractalnet.ssn", {"C": 2, "classes": 10, "widths": [4, 8],
                                            "drops": [0.0, 0.1]}),
    "nin_cifar10": ("nin_cifar10.ssn", {}),
}


def model(case: str) -> ssnc.Model:
    file, params = CASES[case]
    return ssnc.loads((SPECS / file).read_text(encoding="utf-8"), file).model(**params)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_pytorch_source(case: str, golden) -> None:  # type: ignore[no-untyped-def]
    golden(GOLDEN / "code" / f"{case}.py.txt", model(case).torch_source())


def test_generated_source_with_units(golden) -> None:  # type: ignore[no-untyped-def]
    """What `ssnc.distributed.parallelize` switches on: the regions it picks by default
    (rule instances at depth 1) emitted as units, each a module whose forward FSDP2 and
    checkpointing wrap. The reviewed diff against `fractalnet_small.py.txt`; state-dict keys
    unchanged (tests/test_units.py)."""
    from ssnc import __version__
    from ssnc.backends.torch import generate_source
    from ssnc.distributed import Regions, _choose

    m = model("fractalnet_small")
    ids = {r.scope.id for r in _choose(m.ir, Regions())}
    assert ids, "parallelize picks regions in a FractalNet"
    source = generate_source(m.ir, units=lambda r: r.scope.id in ids, origin=m.program.file,
                             version=__version__)
    golden(GOLDEN / "code" / "fractalnet_small.units.py.txt", source)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("form", ["flat", "functions"])
def test_printed_onnx(case: str, form: str, golden) -> None:  # type: ignore[no-untyped-def]
    proto = model(case).to_onnx(flat=form == "flat")
    del proto.graph.initializer[:]  # the structure, not the weights
    suffix = ".onnx.txt" if form == "functions" else ".flat.onnx.txt"
    golden(GOLDEN / "code" / f"{case}{suffix}", onnx.printer.to_text(proto) + "\n")


def test_a_runtime_error_points_back_into_the_spec() -> None:
    m = ssnc.loads("def unit(w) = conv(w, 3) >> relu\n"
                   "model m : tensor[3, 8, 8] = unit(4) >> flatten >> linear(2)\n", "m.ssn").model()
    net = m.to_torch().eval()
    with pytest.raises(RuntimeError) as info:  # an image size the forward lets through
        net(torch.randn(2, 3, 9, 9))  # (fully convolutional nets take any), `linear` cannot
    text = "".join(traceback.format_exception(info.value))
    col = m.ir["linear"].span.col
    assert f"# m.ssn:2:{col}" in text  # the linear's position, on the failing line
    assert any("m.ssn" in (linecache.getline(f.filename, f.lineno) or "")
               for f in traceback.extract_tb(info.value.__traceback__))


def test_a_failing_lowering_is_a_diagnostic_at_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssnc.backends.onnx.lower as onnx_backend
    import ssnc.backends.torch as torch_backend

    def broken(*args: object) -> None:
        raise ValueError("injected")

    m = model("nin_cifar10")
    for backend, build in ((onnx_backend, m.to_onnx), (torch_backend, m.torch_source)):
        monkeypatch.setitem(backend.LOWERINGS, "maxpool", broken)
        with pytest.raises(ssnc.SsnError) as info:
            build()
        d = info.value.diagnostics[0]
        assert d.code.id == "E9001" and "while lowering %nin." in d.message
        assert "(maxpool): ValueError: injected" in d.message
        assert d.span.file.endswith(".ssn") and d.span.line > 0  # the pooling in the spec
        monkeypatch.undo()
