"""Flow definitions: parsing, validation and the data rules of both FDL syntaxes (pure, no I/O)."""
from common.fdl.errors import ExpressionError, FdlError
from common.fdl.model import FlowDef, Mapping, ScopeDef, StateDef
from common.fdl.parse import parse_definition

__all__ = ["ExpressionError", "FdlError", "FlowDef", "Mapping", "ScopeDef", "StateDef", "parse_definition"]
