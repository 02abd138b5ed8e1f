"""What a task calls: Function Compute, HTTP, a child flow, MNS, or anything else, from its ARN or Action.

    old  resourceArn: acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/{function}
                      acs:fnf:{region}:{account}:flow/{name}       acs:mns:{region}:{account}:/topics/{t}/messages
    new  Action:      FC:InvokeFunction (Parameters.resourceArn acs:fc:{region}:{account}:functions/{f}[/{qualifier}]),
                      FNF:StartExecution (Parameters.resourceArn acs:fnf:{region}:{account}:flow/{name}),
                      HTTP:Request, or any other `Service:Api` (passed through as kind "other")
"""
from __future__ import annotations

import re
from typing import Any

_FC_OLD = re.compile(r"^acs:fc:([^:]*):([^:]*):services/([^/]+)/functions/([^/]+)$")
_FC_NEW = re.compile(r"^acs:fc:([^:]*):([^:]*):(?:services/([^/]+)/)?functions/([^/]+)(?:/([^/]+))?$")
_FLOW = re.compile(r"^acs:fnf:([^:]*):([^:]*):flow/([^/]+)$")

ACTION_KINDS = {"FC:InvokeFunction": "fc", "FNF:StartExecution": "flow", "HTTP:Request": "http"}


def kind_of_arn(arn: str) -> str:
    """The kind of an old-syntax resourceArn: fc, flow, mns or other."""
    if arn.startswith("acs:fc:"):
        return "fc"
    if arn.startswith("acs:fnf:"):
        return "flow"
    if arn.startswith("acs:mns:"):
        return "mns"
    return "other"


def kind_of_action(action: str) -> str:
    """The kind of a new-syntax Action: fc, flow, http or other."""
    return ACTION_KINDS.get(action, "other")


def arn_problem(kind: str, arn: str) -> str | None:
    """Why an ARN of this kind cannot be called, or None if it is well formed."""
    if kind == "fc" and not (_FC_OLD.match(arn) or _FC_NEW.match(arn)):
        return f"'{arn}' is not a Function Compute ARN (acs:fc:{{region}}:{{account}}:services/{{service}}/functions/{{function}})"
    if kind == "flow" and not _FLOW.match(arn):
        return f"'{arn}' is not a flow ARN (acs:fnf:{{region}}:{{account}}:flow/{{name}})"
    return None


def target_of(kind: str, arn: str) -> dict[str, Any]:
    """The parts of an ARN the engine needs to call it (empty when there is nothing to split)."""
    if kind == "fc":
        m = _FC_OLD.match(arn)
        if m:
            service, _, qualifier = m.group(3).partition(".")
            return {"region": m.group(1), "account": m.group(2), "service": service, "function": m.group(4),
                    "qualifier": qualifier or None}  # fmt: skip
        m = _FC_NEW.match(arn)
        if m:
            return {"region": m.group(1), "account": m.group(2), "service": m.group(3), "function": m.group(4),
                    "qualifier": m.group(5)}  # fmt: skip
    if kind == "flow":
        m = _FLOW.match(arn)
        if m:
            return {"region": m.group(1), "account": m.group(2), "flow": m.group(3)}
    return {}
