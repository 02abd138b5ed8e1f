"""Activities: the slow work a Task asks for (functions, HTTP, child flows), run on the activities queue.

A RunActivity command comes from the interpreter through the driver. A functions-file binding that
matches the command's resource wins whatever the kind (so MNS, ECS, HTTP calls and child flows can
be mocked locally); without one, FC is FnF.FunctionNotFound, HTTP:Request a real request, a child
flow a real child, anything else FnF.ResourceNotSupported. Its outcome goes back into the
execution's inbox as ActivityCompleted / ActivityFailed, and a drive is published. Side effects are
at least once (a redelivered message runs the call again); the interpreter accepts one result per
activity id, so the execution's history and result stay exactly once.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from common import keys
from common.records import dumps
from common.faults import fault_point
from common.scripts import Scripts
from common.settings import Settings
from worker.functions import TASK_TIMEOUT, Functions, Invocation
from worker.httptask import http_request
from worker.outcomes import Outcome

logger = logging.getLogger(__name__)

# Modes, whatever syntax named them.
REQUEST = "request"  # requestResponse / RequestComplete: the call's answer is the result
SYSTEM = "system"  # sync / WaitForSystemCallback: the service reports when the job (child flow) ends
CUSTOM = "custom"  # waitForCallback / WaitForCustomCallback: someone calls ReportTask* with the token
MODES = {
    "": REQUEST, "requestResponse": REQUEST, "RequestComplete": REQUEST,
    "sync": SYSTEM, "WaitForSystemCallback": SYSTEM,
    "waitForCallback": CUSTOM, "WaitForCustomCallback": CUSTOM,
}  # fmt: skip
UNSUPPORTED = "FnF.ResourceNotSupported"


def activity_member(tag: str, activity_id: str) -> str:
    """The activity's entry in keys.ACTIVITIES and keys.ACTIVITY_COMMANDS."""
    return f"{tag}#{activity_id}"


def mode_of(command: dict[str, Any]) -> str:
    """The normalised mode of a RunActivity command."""
    return MODES.get(str(command.get("mode") or ""), REQUEST)


def waits_for_report(command: dict[str, Any]) -> bool:
    """Whether the task ends on a token report rather than on the call's answer."""
    return mode_of(command) in (SYSTEM, CUSTOM)


def handler_event(command: dict[str, Any]) -> Any:
    """What a bound handler is called with: Parameters.body when given, else the task's input.

    FC:InvokeFunction's rule (common/interpreter/model.py), used for every bound resource.
    """
    params = command.get("params")
    return params["body"] if isinstance(params, dict) and "body" in params else command.get("input", {})


def invocation_of(tag: str, command: dict[str, Any]) -> Invocation:
    """The task a command runs for, as a handler's context shows it."""
    flow_id, name = keys.split_tag(tag)
    token = str(command.get("token") or "") if waits_for_report(command) else ""
    return Invocation(str(command.get("step") or ""), str(command.get("id") or ""), flow_id, name, token)


class ActivityRunner:
    """Runs RunActivity commands and feeds their outcomes back (sync redis-py clients)."""

    def __init__(
        self,
        state: Any,
        settings: Settings,
        functions: Functions,
        publish_drive: Callable[[str], None],
        start_child: Callable[[str, dict[str, Any]], Outcome] | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.scripts = Scripts(state)
        self.functions = functions
        self.publish_drive = publish_drive
        self.start_child = start_child

    def execute(self, tag: str, command: dict[str, Any]) -> Outcome:
        """Make the call the command describes."""
        kind = str(command.get("kind") or "")
        timeout_ms = command.get("timeout_ms")
        timeout_s = float(timeout_ms) / 1000 if timeout_ms else None
        params = command.get("params") or {}
        resource = str(command.get("resource") or "")
        if kind == "fc" or self.functions.binding(resource) is not None:
            return self.functions.invoke(resource, handler_event(command), timeout_s, invocation_of(tag, command))
        if kind == "http":
            return http_request(dict(params), timeout_s)
        if kind == "flow" and self.start_child is not None:
            return self.start_child(tag, command)
        return Outcome.failed(UNSUPPORTED, f"OpenFnF cannot call {resource or kind!r}; a functions-file binding can answer it")

    def run(self, tag: str, command: dict[str, Any]) -> str:
        """Execute and report; returns what was reported (for logs and tests)."""
        member = activity_member(tag, str(command["id"]))
        with self._alive(member):  # keeps the timers from running it again while this call lasts
            outcome = self.execute(tag, command)
        fault_point(self.settings, "activity.after_call")
        if not outcome.succeeded and outcome.error == TASK_TIMEOUT and command.get("timeout_ms"):
            # A task with its own timeout has a timer armed with this command, due before the call
            # limit ends here: the timer ends the task (TaskTimedOut). Delivering this too would race
            # it and make the history depend on which lands first; the limit only frees the worker.
            logger.info("activity %s of %s outlived its timeout; its timer ends the task", command.get("id"), tag)
            self._forget(member)
            return "TimedOut"
        # In the callback modes ActivityCompleted only says "submitted"; the task then waits for the
        # token's report (a child flow's end reports through its CallbackFnFTaskToken).
        if outcome.succeeded:
            event = {"t": "ActivityCompleted", "id": command["id"], "result": outcome.result}
        else:
            event = {"t": "ActivityFailed", "id": command["id"], "error": outcome.error, "cause": outcome.cause}
        self.deliver(tag, event, member)
        return event["t"]

    @contextlib.contextmanager
    def _alive(self, member: str) -> Iterator[None]:
        """Push the activity's rescue deadline on now and every third of it while the call runs."""
        period = self.settings.activity_rescue_ms / 1000
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:  # XX: an activity removed meanwhile (cancelled, delivered) is not brought back
                    self.state.zadd(keys.ACTIVITIES, {member: int(time.time() * 1000) + self.settings.activity_rescue_ms}, xx=True)
                except Exception as exc:  # noqa: BLE001 - a missed beat only risks one duplicate run
                    logger.warning("activity heartbeat failed: %s", exc)
                if stop.wait(period / 3):
                    return

        thread = threading.Thread(target=beat, name="activity-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    def _forget(self, member: str) -> None:
        pipe = self.state.pipeline(transaction=False)
        pipe.zrem(keys.ACTIVITIES, member)
        pipe.hdel(keys.ACTIVITY_COMMANDS, member)
        pipe.execute()

    def deliver(self, tag: str, event: dict[str, Any], member: str | None = None) -> None:
        """Append an event to a running execution's inbox and drive it (and forget the activity's rescue entry)."""
        now = int(time.time() * 1000)

        def build(pipe: Any) -> None:
            pipe.zadd(keys.WAKE, {tag: now + self.settings.wake_after_ms})
            self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [dumps(event)])
            if member is not None:  # after the append: a crash in between runs the call again, never loses it
                pipe.zrem(keys.ACTIVITIES, member)
                pipe.hdel(keys.ACTIVITY_COMMANDS, member)

        self.scripts.pipeline_sync(build)
        self.publish_drive(tag)

