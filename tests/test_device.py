"""The generated modules on a device: `to_torch(device=, dtype=)` and `.to()` work, the forward
makes no host synchronisation (no `.item()`, no branch on a tensor's value, no tensor made
from host data per step; batch drop-path decides on the host once per step, up front, from
its CPU generator), and it runs under autocast and with channels-last inputs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

import ssnc  # noqa: E402
from ssnc.backends.torch import example_input, example_inputs  # noqa: E402
from tests.conftest import SMALL, SPECS  # noqa: E402

SPECS_ALL = sorted(SPECS.glob("*.ssn"))
HOST_DECISIONS = {"draw", "_column", "_local_keep", "_global_keep", "_uniform"}
"""DropPath's batch-mode draw: the one place that decides on the host (once per step)."""


@contextlib.contextmanager
def no_host_sync(allowed: set[str]) -> Iterator[list[str]]:
    """Record every read of a tensor's value into Python (and every tensor made from host
    data) outside the functions ``allowed``."""
    seen: list[str] = []
    originals = {}
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        originals[name] = getattr(torch.Tensor, name)

        def spy(self, *a, __name=name, **k):  # type: ignore[no-untyped-def]
            caller = sys._getframe(1).f_code.co_name
            if caller not in allowed:
                seen.append(f"{__name} in {caller}")
            return originals[__name](self, *a, **k)
        setattr(torch.Tensor, name, spy)
    make = torch.tensor

    def made(*a, **k):  # type: ignore[no-untyped-def]
        caller = sys._getframe(1).f_code.co_name
        if caller not in allowed:
            seen.append(f"torch.tensor in {caller}")
        return make(*a, **k)
    torch.tensor = made
    try:
        yield seen
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
        torch.tensor = make


@pytest.mark.parametrize("spec", SPECS_ALL, ids=lambda p: p.stem)
def test_the_forward_never_waits_for_the_device(spec) -> None:  # type: ignore[no-untyped-def]
    m = ssnc.load(spec).model(**SMALL.get(spec.stem, {}))
    xs = example_inputs(m.ir, batch=4, steps=3)
    for mode, training, allowed in (("batch", False, set()), ("sample", True, set()),
                                    ("batch", True, HOST_DECISIONS)):
        net = m.to_torch(seed=0, drop_mode=mode).train(training)
        net(*xs)  # the first step makes what later steps reuse
        with no_host_sync(allowed) as seen:
            net(*xs)
        assert seen == [], (mode, training, seen)


def test_device_dtype_channels_last_and_autocast() -> None:
    m = ssnc.load(SPECS / "fractalnet.ssn").model(C=2, classes=10, widths=[4, 4, 8, 8, 8])
    x = example_input(m.ir, batch=3)
    net = m.to_torch(seed=1).eval()
    with torch.no_grad():
        want = net(x)
        wide = m.to_torch(seed=1, device="cpu", dtype=torch.float64).eval()
        assert next(wide.parameters()).dtype == torch.float64
        torch.testing.assert_close(wide(x.double()).float(), want, rtol=1e-4, atol=1e-5)
        moved = m.to_torch(seed=1).to(torch.float64).eval()
        torch.testing.assert_close(moved(x.double()), wide(x.double()))
        last = net(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(last, want, rtol=1e-5, atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(x)
        scale = float(want.abs().max())
        assert float((half.float() - want).abs().max()) <= 5e-2 * scale
