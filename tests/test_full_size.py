"""Full-size runs, outside CI (`python -m pytest -m slow`): every shipped spec at its
published size (FractalNet's 33.7M parameters, U-Net at 572 x 572) gives the same outputs in
PyTorch and in ONNX Runtime on the same weights, in both ONNX forms, at batch 1 and 3 and,
for sequence models, at 7 and 30 steps. CI runs the same comparison at narrow sizes
(tests/test_onnx.py); this one shows that nothing changes with size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ssnc
from tests.conftest import SPECS, compat, ort_output

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.ssn")), ids=lambda p: p.stem)
def test_every_shipped_spec_at_full_size_equals_onnx_runtime(spec: Path) -> None:
    import torch

    program = ssnc.load(spec)
    for name in program.models:
        model = program.model(name)
        net = model.to_torch(seed=0).eval()
        forms = [model.to_onnx(seed=0), model.to_onnx(seed=0, flat=False)]
        for batch, steps in ((1, 7), (3, 30)):
            x = compat()["feed"](model.ir, batch=batch, steps=steps)
            with torch.no_grad():
                out = net(torch.from_numpy(x))
            want = (out[0] if isinstance(out, tuple) else out).numpy()
            for proto in forms:
                np.testing.assert_allclose(ort_output(proto, x), want, rtol=1e-4,
                                           atol=1e-4 * float(np.abs(want).max()))
