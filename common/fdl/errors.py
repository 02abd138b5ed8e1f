"""The errors of the FDL layer: a definition that cannot run, an expression that cannot be evaluated."""
from __future__ import annotations


class FdlError(ValueError):
    """A definition that cannot run; the message says where and what."""


class ExpressionError(ValueError):
    """An expression or condition that cannot be compiled, or cannot be evaluated on the data at hand."""
