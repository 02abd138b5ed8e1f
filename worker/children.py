"""Child flows (old `acs:fnf:::flow/NAME`, new `FNF:StartExecution`): start the child like StartExecution does.

In the WaitForSystemCallback / `sync` mode the child is started with the task's token as its
CallbackFnFTaskToken, so its end reports to the parent's task. Without an execution name in the
parameters the child is named after the parent and the activity id, so a redelivered activity finds
its own child instead of starting a second one (a UUID derived from the parent and the activity id).
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from common import keys, tracing
from common.claims import queue_claim
from common.records import decode_hash
from common.scripts import Scripts
from common.settings import Settings
from worker.activities import SYSTEM, mode_of
from worker.outcomes import Outcome
from worker.spans import child_start


def _param(params: dict[str, Any], *names: str) -> Any:
    return next((params[n] for n in names if n in params and params[n] not in (None, "")), None)


class ChildStarter:
    """Starts child executions for `kind: flow` activities (sync redis-py client)."""

    def __init__(self, state: Any, settings: Settings, publish_drive: Callable[[str], None]) -> None:
        self.state = state
        self.settings = settings
        self.scripts = Scripts(state)
        self.publish_drive = publish_drive

    def __call__(self, parent_tag: str, command: dict[str, Any]) -> Outcome:
        """Start the child the command names; the outcome is StartExecution's answer, as the cloud reports it."""
        params = command.get("params") or {}
        target = command.get("target") or {}
        flow_name = str(target.get("flow") or str(command.get("resource", "")).rsplit("/", 1)[-1])
        account = self.state.hget(keys.execution(parent_tag), "acct")
        account = account.decode() if isinstance(account, bytes) else account
        flow = decode_hash(self.state.hgetall(keys.flow(account or "", flow_name)))
        if not flow:
            return Outcome.failed("FlowNotExists", f"Flow {flow_name} does not exist.")
        if flow.get("ExecutionMode") == "Express":
            return Outcome.failed("ActionNotSupported", f"Flow {flow_name} runs in Express mode and cannot be a child flow.")
        child_input = _param(params, "Input", "input")
        if child_input is None:
            child_input = command.get("input") or {}
        if isinstance(child_input, str):
            try:
                child_input = json.loads(child_input)
            except ValueError:
                return Outcome.failed("InvalidArgument", "the child flow's input is not a JSON object")
        if not isinstance(child_input, dict):
            return Outcome.failed("InvalidArgument", "the child flow's input must be a JSON object")
        name = str(_param(params, "ExecutionName", "executionName") or uuid.uuid5(uuid.NAMESPACE_URL, f"openfnf:{parent_tag}#{command['id']}"))
        callback = str(command.get("token") or "") if mode_of(command) == SYSTEM else ""
        now = int(time.time() * 1000)
        raw_input = json.dumps(child_input)
        pending = None

        def build(pipe: Any) -> None:
            nonlocal pending
            pending = queue_claim(
                self.scripts, pipe, self.settings, account=account or "", flow=flow, name=name,
                raw_input=raw_input, input_obj=child_input, def_id=flow["DefId"], now=now, callback=callback, trace=trace,
            )  # fmt: skip

        with child_start(parent_tag, flow_name, name):  # the child's own trace, linked to this activity (tracing on)
            trace = tracing.traceparent()
            results = self.scripts.pipeline_sync(build)
        assert pending is not None
        claim = pending.outcome(results)
        if not claim.created:
            if claim.fields.get("input") != raw_input:  # not our own child found again after a redelivery
                return Outcome.failed("ExecutionAlreadyExists", f"Execution {name} for flow {flow_name} already exists.")
        else:
            self.state.incr(keys.running(account or ""))  # the running-executions cap (issue 7)
            self.publish_drive(pending.tag)
        return Outcome.ok({"FlowName": flow_name, "ExecutionName": name, "RequestID": str(uuid.uuid4()).upper()})
