"""How to write a model as ONNX: one frozen options object with one `check()`. It imports
no onnx, so a command checks its options before any heavy import or any work. Messages name
an option through `ssnc.base.options.spell`: by its keyword from the library, by its flag on
the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ...base.diagnostics import E_OPTION, Span, did_you_mean, error
from ...base.options import option_span, positive, spell

PRECISIONS = ("fp32", "fp16", "bf16")
"""The supported precisions of weights, compute, inputs and outputs."""

DEFAULT_OPSET = 17
"""The newest opset TensorRT 8.6 and onnx2torch read (Pad 18 is not in either); nothing the
compiler emits needs a later one."""

OPSETS = range(13, 23)
"""The opsets ssnc can write."""

BF16_OPSET = 22
"""Conv, pooling and most arithmetic accept bfloat16 from opset 22."""


@dataclass(frozen=True)
class OnnxOptions:
    """The ONNX export's options (docs/onnx.md), each with the meaning of its `--` flag."""

    flat: bool = True
    """One flat graph, the hierarchy in node names (False: one model-local function per
    distinct rule instance, which only ONNX Runtime and Netron read)."""
    opset: int | None = None
    """The ONNX opset (default 17; 22 where bf16 is asked for)."""
    precision: str = "fp32"
    """The weights' and compute's type: fp32, fp16 or bf16."""
    io_precision: str | None = None
    """The graph inputs' and outputs' type (default fp32, a Cast at each end)."""
    batch: int | None = None
    """A fixed batch size (default: symbolic `N`)."""
    steps: int | Mapping[str, int] | None = None
    """A fixed sequence length (default: symbolic `T`), for every time axis or per input
    name (`{"src": 12, "tgt": 9}`); a model with a time axis only."""
    symbolic_hw: bool = False
    """Symbolic height and width (`H`, `W`) for a fully convolutional image model."""
    unroll: bool = False
    """Each time loop written out as its `steps` steps (for runtimes without Scan)."""
    fold_weights: bool = False
    """What depends on weights alone computed now and stored as weights (flat form only)."""
    fold_bn: bool = False
    """BatchNorm folded into the convolution or linear before it, a mean join's 1/N into the
    weights before its ReLUs, eval identities removed (for runtimes that do not fuse them,
    such as tract and onnx2torch; ONNX Runtime fuses on its own)."""

    @classmethod
    def of(cls, where: str = "to_onnx", **given: Any) -> OnnxOptions:
        """Options from keyword arguments; an unknown one is E0601 naming it (and the option
        it was probably meant to be)."""
        known = [f.name for f in fields(cls)]
        for name in given:
            if name not in known:
                raise error(E_OPTION, f"`{where}` has no option `{name}`", Span.unknown(name),
                            hint=did_you_mean(name, known)
                            or "its options are " + ", ".join(f"`{k}`" for k in known))
        return cls(**given)

    @property
    def chosen_opset(self) -> int:
        """The opset written: the one asked for, or the default for the precisions."""
        if self.opset is not None:
            return self.opset
        return BF16_OPSET if "bf16" in (self.precision, self.io) else DEFAULT_OPSET

    @property
    def io(self) -> str:
        """The inputs' and outputs' precision."""
        return self.io_precision or "fp32"

    def check(self) -> OnnxOptions:
        """These options, if they can all be honoured together; else E0601 naming the option
        at fault. What depends on the model (a time axis for `steps`) is checked at export."""
        for name in ("precision", "io_precision"):
            value = getattr(self, name)
            if value is not None and value not in PRECISIONS:
                raise error(E_OPTION, f"{spell(name, str(value))} is not supported",
                            option_span(name), hint="choose " + ", ".join(PRECISIONS))
        if self.batch is not None:
            positive("batch", self.batch)
        lengths = self.steps.values() if isinstance(self.steps, Mapping) else [self.steps]
        for length in lengths:
            if length is not None:
                positive("steps", length)
        if self.unroll and self.steps is None:
            raise error(E_OPTION, f"{spell('unroll')} needs a fixed sequence length",
                        option_span("unroll"), hint=f"give {spell('steps', 'T')} as well")
        if self.fold_weights and not self.flat:
            raise error(E_OPTION, f"{spell('fold_weights')} works on the flat form, not "
                        f"{spell('flat', 'False')}", option_span("fold_weights"),
                        hint=f"leave out {spell('flat', 'False')}")
        self._check_opset()
        return self

    def _check_opset(self) -> None:
        if self.opset is not None and self.opset not in OPSETS:
            text = str(self.opset)
            raise error(E_OPTION, f"opset {text} is not supported", option_span("opset", text),
                        hint=f"choose {OPSETS.start}..{OPSETS.stop - 1} "
                        f"(default {DEFAULT_OPSET})").with_sources(
                            {option_span("opset", text).file: text})
        if "bf16" in (self.precision, self.io) and self.chosen_opset < BF16_OPSET:
            raise error(E_OPTION, f"bfloat16 needs opset {BF16_OPSET} or newer (Conv and "
                        f"pooling accept it from there), not {self.chosen_opset}",
                        option_span("opset"),
                        hint=f"leave out {spell('opset')} (bf16 chooses {BF16_OPSET})")
