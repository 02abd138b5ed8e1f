"""Parse and validate a definition text (old `type: flow` or new `Type: StateMachine`) into a FlowDef.

Every rejection is an FdlError whose message names where (state name or document path) and what;
no text, however malformed, makes the parser raise anything else.
"""
from __future__ import annotations

from common.fdl.document import load_document
from common.fdl.errors import FdlError
from common.fdl.model import FlowDef
from common.fdl.parse_new import parse_new
from common.fdl.parse_old import parse_old

__all__ = ["FdlError", "parse_definition"]


def parse_definition(text: str) -> FlowDef:
    """Parse a definition in either syntax; raise FdlError with a precise message if it is invalid."""
    doc = load_document(text)
    if not isinstance(doc, dict):
        raise FdlError("definition must be a YAML mapping with `type: flow` or `Type: StateMachine`")
    if "Type" in doc:
        return parse_new(doc)
    if "type" in doc:
        return parse_old(doc)
    raise FdlError("definition must have `type: flow` (Serverless Workflow) or `Type: StateMachine` (CloudFlow)")
