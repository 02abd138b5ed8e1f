"""Child flows (old `acs:fnf:::flow/NAME`, new `FNF:StartExecution`): start the child like StartExecution does.

In the WaitForSystemCallback / `sync` mode the child is started with the task's token as its
CallbackFnFTaskToken, so its end reports to the parent's task. Without an execution name in the
parameters the child is named after the parent and the activity id, so a redelivered activity finds
its own child instead of starting a second one (a UUID derived from the parent and the activity id).

A child start counts against the account's running-executions cap and is refused over it as
StartExecution is (ResourceThrottled), and it carries its nesting depth (common/lineage.py): past
max_nesting_depth it is refused with FnF.MaxNestingDepthExceeded. Either refusal fails the parent's
task, so Retry/Catch see it. A child the parent waits for is adopted: cancelling the task stops it.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from common import keys, runcount, tracing
from common.claims import queue_claim
from common.lineage import MAX_NESTING, adoption_refused, depth_of, orphan_event, queue_adopt, queue_stops, too_deep
from common.records import as_str, decode_hash
from common.redisclients import is_cluster
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
        """Start the child the command names; the outcome is StartExecution's answer, as the cloud reports it.

        Refused, as the parent's task failure: FnF.MaxNestingDepthExceeded deeper than
        max_nesting_depth, and ResourceThrottled when the account runs max_running_executions
        already (as StartExecution is refused; common/lineage.py, docs/compatibility.md).
        """
        params = command.get("params") or {}
        target = command.get("target") or {}
        flow_name = str(target.get("flow") or str(command.get("resource", "")).rsplit("/", 1)[-1])
        raw_account, raw_depth = self.state.hmget(keys.execution(parent_tag), "acct", "depth")
        account = raw_account.decode() if isinstance(raw_account, bytes) else (raw_account or "")
        depth = depth_of(raw_depth) + 1
        deep = too_deep(depth, self.settings.max_nesting_depth)
        if deep:
            return Outcome.failed(MAX_NESTING, deep)
        flow = decode_hash(self.state.hgetall(keys.flow(account, flow_name)))
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
        raw_input = json.dumps(child_input)
        started = Outcome.ok({"FlowName": flow_name, "ExecutionName": name, "RequestID": str(uuid.uuid4()).upper()})
        tag = keys.execution_tag(flow["Id"], name)
        shards = self.settings.running_shards
        running = runcount.key_for(account, tag, shards)  # the child's shard of the account's count
        # A place under the account's cap is taken first (INCR) and given back if the child does not
        # start; the count (every shard, read after the INCR) and the record come in the same round
        # trip: a redelivered activity finds its own child.
        pipe = self.state.pipeline(transaction=False)
        pipe.incr(running)
        reads = runcount.queue_total(pipe, account, shards, is_cluster(self.state))
        pipe.hget(keys.execution(tag), "input")
        answers = pipe.execute()
        count, held = runcount.total(answers[1 : 1 + reads]), answers[-1]
        cap = self.settings.max_running_executions
        if held is not None:  # the name is taken: our own child found again after a redelivery, or another's
            self.state.decr(running)
            if as_str(held) != raw_input:
                return _exists(name, flow_name)
            if callback:  # adopting it again is harmless
                self._adopt(parent_tag, str(command["id"]), tag, int(time.time() * 1000))
            return started
        if cap > 0 and int(count) > cap:
            self.state.decr(running)
            return Outcome.failed(
                "ResourceThrottled",
                f"The request is throttled: account {account} has {int(count) - 1} running executions, "
                f"the limit is {cap}. Please try again later.",
            )
        now = int(time.time() * 1000)
        pending = None

        def build(pipe: Any) -> None:
            nonlocal pending
            pending = queue_claim(
                self.scripts, pipe, self.settings, account=account, flow=flow, name=name, raw_input=raw_input,
                input_obj=child_input, def_id=flow["DefId"], now=now, callback=callback, trace=trace, depth=depth,
            )  # fmt: skip

        with child_start(parent_tag, flow_name, name):  # the child's own trace, linked to this activity (tracing on)
            trace = tracing.traceparent()
            results = self.scripts.pipeline_sync(build)
        assert pending is not None
        claim = pending.outcome(results)
        if not claim.created:  # claimed meanwhile by someone else (or by our own redelivery)
            self.state.decr(running)
            return started if claim.fields.get("input") == raw_input else _exists(name, flow_name)
        if callback:
            self._adopt(parent_tag, str(command["id"]), tag, now)
        self.publish_drive(tag)
        return started

    def _adopt(self, parent_tag: str, task_id: str, tag: str, now: int) -> None:
        """The parent's task waits for this child: cancelling the task stops it (common/lineage.py)."""
        answer = self.scripts.pipeline_sync(lambda pipe: queue_adopt(self.scripts, pipe, parent_tag, task_id, tag))[0]
        status = adoption_refused(answer)
        if status:  # the task was cancelled before the child was claimed: stop the child too
            flow_id, parent_name = keys.split_tag(parent_tag)
            raw_flow = self.state.hget(keys.execution(parent_tag), "flow")
            event = orphan_event(as_str(raw_flow) or flow_id, parent_name, status)
            self.scripts.pipeline_sync(lambda pipe: queue_stops(self.scripts, pipe, [tag], event, now, self.settings.wake_after_ms, self.settings.partitions))


def _exists(name: str, flow_name: str) -> Outcome:
    return Outcome.failed("ExecutionAlreadyExists", f"Execution {name} for flow {flow_name} already exists.")
