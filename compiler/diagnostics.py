"""Kept importable for code written against earlier releases: the diagnostics live in
`ssnc.base.diagnostics`, a floor below both the grammar and the compiler."""

from ..base.diagnostics import *  # noqa: F403
from ..base.diagnostics import __all__ as __all__
