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


def require_extra(module: str, what: str, extra: str) -> None:
    """Refuse ``what`` with E0604 when ``module`` (of the extra ``extra``) is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise error(E_EXTRA, f"{what} needs {module}, which is not installed",
                    Span.unknown(what), hint=f"install it with `pip install 'ssnc[{extra}]'`")
