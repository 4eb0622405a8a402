"""Optional dependencies. The core install compiles to ONNX; PyTorch comes with the `torch`
extra (`pip install 'ssnc[torch]'`), and whatever needs it is refused without it (E0604)."""

from __future__ import annotations

from .base.diagnostics import E_EXTRA, Span, error

TORCH_HINT = ("install it with `pip install 'ssnc[torch]'`; for a CPU-only build, first "
              "`pip install torch --index-url https://download.pytorch.org/whl/cpu`")


def require_torch(what: str) -> None:
    """Refuse ``what`` (a command-line option or a library call, as the user wrote it) with
    E0604 when PyTorch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise error(E_EXTRA, "PyTorch is not installed (the core install compiles to ONNX "
                    "only)", Span.unknown(what), hint=TORCH_HINT) from None
