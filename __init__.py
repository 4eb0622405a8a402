"""ssnc: a compiler for self-similar neural-network architectures.

`ssnc.load(path)` / `ssnc.loads(text)` give a Program; `program.model(name, **params)` gives a
Model holding the verified IR (`model.graph`, `model.total_params`)."""

from .api import DropMode, InputInfo, Model, Program, anneal_slope, format_spec, load, loads
from .base.diagnostics import SsnError, SsnWarning
from .compiler.elaborate import Limits
from .compiler.ops import op
from .inference import optimize_for_inference

__version__ = "0.1.0"

__all__ = ["DropMode", "InputInfo", "Limits", "Model", "Program", "SsnError", "SsnWarning",
           "__version__", "anneal_slope", "format_spec", "load", "loads", "op",
           "optimize_for_inference"]
