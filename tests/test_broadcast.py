"""Broadcasting, written down in docs/language.md: joins and `concat` line inputs up from the
last axis; a batch-free `param` broadcasts over the batch; what cannot broadcast is a
diagnostic naming both shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ssnc
from tests.conftest import compile_refused


def test_a_class_token_is_put_before_every_sequence() -> None:
    """ViT's class token: `concat(param([1, D]), x, axis = "T")` is
    `torch.cat([token.expand(N, -1, -1), x], 1)`, also where T is of any length."""
    m = ssnc.loads('model m : sequence[4] = (x) => concat(param([1, 4]), x, axis = "T")',
                   "m.ssn").model()
    assert "f32[N,T+1,4]{NTC} = concat" in m.format_ir()
    net = m.to_torch().eval()
    token = net.state_dict()["param"]
    x = torch.randn(3, 5, 4)
    want = torch.cat([token.expand(3, -1, -1), x], 1)
    torch.testing.assert_close(net(x), want)


@pytest.mark.parametrize("body,needle", [
    ("(x) => concat(param([2, 3]), x, axis = \"T\")",
     "concat inputs differ outside axis 1: [2,3] vs [N,T,4]{NTC}"),
    ("(x) => concat(x, x, axis = \"T\")",
     "concat joins two axes of symbolic size along axis 1 (`T` and `T`)"),
    ("(x) => x + param([3])", "sum inputs do not match: [N,T,4]{NTC} vs [3]"),
    ("(x) => x + gap(x)", "sum inputs do not match: [N,T,4]{NTC} vs [N,4]{NC}"),
])
def test_what_cannot_broadcast_is_a_diagnostic(body: str, needle: str, tmp_path: Path) -> None:
    assert needle in compile_refused(tmp_path, f"model m : sequence[4] = {body}\n")
