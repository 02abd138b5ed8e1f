"""Activities: the slow work a Task asks for (functions, HTTP, child flows), run on the activities queue.

A RunActivity command comes from the interpreter through the driver. A functions-file binding that
matches the command's resource wins whatever the kind (so MNS, ECS, HTTP calls and child flows can
be mocked locally); without one, FC is FnF.FunctionNotFound, HTTP:Request a real request, a child
flow a real child, anything else FnF.ResourceNotSupported. Its outcome goes back into the
execution's inbox as ActivityCompleted / ActivityFailed, and a drive is published unless one is
queued already (append.lua's mark). Side effects are at least once (a redelivered message runs the
call again); the interpreter accepts one result per activity id, so the execution's history and
result stay exactly once.

One message carries one command or a batch of one decision's commands (activity_messages): they run
one after another, their results go back in one round trip, and a batch that turns out slow hands
the commands it has not started back to the queue (_Batch).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from common import jsonlimits, keys
from common.faults import fault_point
from common.records import dumps
from common.scripts import Scripts
from common.settings import Settings
from common.taskmsg import ACTIVITY_TASK, redis_task_message
from worker.functions import TASK_TIMEOUT, Functions, Invocation
from worker.httptask import http_request
from worker.outcomes import INVALID_RESULT, Outcome
from worker.spans import traced_activity

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
WORKER_CRASHED = "FnF.WorkerCrashed"  # the call killed the worker running it max_activity_crashes times


def worker_crashed(deaths: int, limit: int) -> Outcome:
    """The failure of a call whose worker died `deaths` times while running it (limit reached)."""
    return Outcome.failed(
        WORKER_CRASHED,
        f"the worker running this task's call died {deaths} times (limit OPENFNF_MAX_ACTIVITY_CRASHES={limit}): "
        "the function may exit its process or exhaust its memory",
    )


def activity_member(tag: str, activity_id: str) -> str:
    """The activity's entry in keys.activities and keys.activity_commands (the execution's partition)."""
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
    account = str(command.get("acct") or "")  # added by the dispatcher (worker/dispatch.py)
    return Invocation(str(command.get("step") or ""), str(command.get("id") or ""), flow_id, name, token, account)


def activity_messages(tag: str, commands: list[dict[str, Any]], queue: str, per_message: int) -> list[str]:
    """The activity messages for one execution's RunActivity commands: a lone command as itself, more
    in batches of up to `per_message` (ActivityRunner.run takes either). Celery's own cost per message
    (about 0.7 ms of worker CPU) is then paid once per batch, and a batch reports its results in one
    round trip that publishes at most one drive."""
    size = max(1, per_message)
    chunks = [commands[i : i + size] for i in range(0, len(commands), size)]
    return [redis_task_message(ACTIVITY_TASK, [tag, chunk[0] if len(chunk) == 1 else chunk], queue) for chunk in chunks]


class ActivityRunner:
    """Runs RunActivity commands and feeds their outcomes back (sync redis-py clients).

    `broker` is where commands handed back by a slow batch are queued again (the worker passes the
    client it made for the broker, worker/celeryapp.py); by default the state client itself.
    """

    def __init__(
        self,
        state: Any,
        settings: Settings,
        functions: Functions,
        publish_drive: Callable[[str], None],
        start_child: Callable[[str, dict[str, Any]], Outcome] | None = None,
        broker: Any = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.scripts = Scripts(state)
        self.functions = functions
        self.publish_drive = publish_drive
        self.start_child = start_child
        self.broker = state if broker is None else broker
        self.mapruns: Any = None  # worker.mapruns.MapRuns: starts a distributed Map's MapRun (kind `maprun`)

    @traced_activity  # an openfnf.activity span when tracing is on (worker/spans.py)
    def execute(self, tag: str, command: dict[str, Any]) -> Outcome:
        """Make the call the command describes; a result that is not JSON the service takes fails the task
        (INVALID_RESULT: too deep for OPENFNF_MAX_JSON_DEPTH, NaN, not JSON-able), never the worker."""
        outcome = self._call(tag, command)
        if not outcome.succeeded:
            return outcome
        try:
            return Outcome.ok(jsonlimits.normalize(outcome.result, self.settings.max_json_depth))
        except jsonlimits.JsonRefused as exc:
            return Outcome.failed(INVALID_RESULT, f"the task's result {exc}")

    def _call(self, tag: str, command: dict[str, Any]) -> Outcome:
        kind = str(command.get("kind") or "")
        timeout_ms = command.get("timeout_ms")
        timeout_s = float(timeout_ms) / 1000 if timeout_ms else None
        params = command.get("params") or {}
        resource = str(command.get("resource") or "")
        if kind == "maprun" and self.mapruns is not None:
            return self.mapruns.start(tag, command)  # type: ignore[no-any-return]
        if kind == "fc" or self.functions.binding(resource) is not None:
            return self.functions.invoke(resource, handler_event(command), timeout_s, invocation_of(tag, command))
        if kind == "http":
            return http_request(dict(params), timeout_s)
        if kind == "flow" and self.start_child is not None:
            return self.start_child(tag, command)
        return Outcome.failed(UNSUPPORTED, f"OpenFnF cannot call {resource or kind!r}; a functions-file binding can answer it")

    def run(self, tag: str, command: dict[str, Any] | list[dict[str, Any]]) -> str:
        """Execute and report one command, or a batch of them (one message); returns what was reported
        (for logs and tests): per command ActivityCompleted, ActivityFailed, TimedOut, HandedBack, or
        Gone (a command that was reported, cancelled or failed by the timers before it began: not run)."""
        if isinstance(command, list):
            return " ".join(_Batch(self, tag, command, batched=True).run())
        return _Batch(self, tag, [command]).run()[0]

    def outcome_event(self, tag: str, command: dict[str, Any], outcome: Outcome) -> dict[str, Any] | None:
        """The inbox event reporting a call's outcome; None when the task's own timer ends it."""
        if not outcome.succeeded and outcome.error == TASK_TIMEOUT and command.get("timeout_ms"):
            # A task with its own timeout has a timer armed with this command, due before the call
            # limit ends here: the timer ends the task (TaskTimedOut). Delivering this too would race
            # it and make the history depend on which lands first; the limit only frees the worker.
            logger.info("activity %s of %s outlived its timeout; its timer ends the task", command.get("id"), tag)
            return None
        # In the callback modes ActivityCompleted only says "submitted"; the task then waits for the
        # token's report (a child flow's end reports through its CallbackFnFTaskToken).
        if outcome.succeeded:
            return {"t": "ActivityCompleted", "id": command["id"], "result": outcome.result}
        return {"t": "ActivityFailed", "id": command["id"], "error": outcome.error, "cause": outcome.cause}

    def begin(self, member: str) -> int | None:
        """A lone command's call is about to start: its rescue deadline pushed on and the start counted,
        in one round trip before the call (a call that kills this process at once is counted too).
        Returns the starts so far, this one included (every earlier one died without reporting), or
        None when the command is no longer recorded (reported, cancelled or failed meanwhile)."""
        deadline = int(time.time() * 1000) + self.settings.activity_rescue_ms
        pipe = self.state.pipeline(transaction=False)
        pipe.zscore(self._acts([member]), member)
        pipe.zadd(self._acts([member]), {member: deadline}, xx=True)
        pipe.hincrby(self._starts(member), member, 1)
        score, _, starts = pipe.execute()
        if score is not None:
            return int(starts)
        self.state.hdel(self._starts(member), member)  # a duplicate message of a call already over: not counted
        return None

    def beat(self, members: list[str]) -> None:
        """Push the rescue deadline of these running activities on (XX: one delivered or cancelled
        meanwhile is not brought back)."""
        if members:
            deadline = int(time.time() * 1000) + self.settings.activity_rescue_ms
            self.state.zadd(self._acts(members), dict.fromkeys(members, deadline), xx=True)

    def _acts(self, members: list[str]) -> str:
        """The rescue zset of these activities (all of one execution, as one message carries)."""
        return keys.activities_for(members[0].rsplit("#", 1)[0], self.settings.partitions)

    def _starts(self, member: str) -> str:
        return keys.activity_starts_for(member.rsplit("#", 1)[0], self.settings.partitions)

    def take(self, members: list[str]) -> list[bool]:
        """Which of these activities are still recorded (neither reported nor cancelled), their rescue
        deadlines pushed on, in one round trip."""
        deadline = int(time.time() * 1000) + self.settings.activity_rescue_ms
        pipe = self.state.pipeline(transaction=False)
        pipe.zmscore(self._acts(members), members)
        pipe.zadd(self._acts(members), dict.fromkeys(members, deadline), xx=True)
        scores = pipe.execute()[0]
        return [score is not None for score in scores]

    def hand_back(self, tag: str, commands: list[dict[str, Any]]) -> None:
        """Queue commands again, one per message, at the end of the activity queue that is served next
        (they have waited their turn once), in their order."""
        if commands:
            queue = self.settings.activity_queue
            self.broker.rpush(queue, *reversed(activity_messages(tag, commands, queue, 1)))

    def deliver(self, tag: str, event: dict[str, Any], member: str | None = None) -> bool:
        """Append an event to a running execution's inbox and drive it (and forget the activity's rescue
        entry); returns whether a drive was published."""
        return self.report(tag, [(event, member)])

    def report(self, tag: str, entries: list[tuple[dict[str, Any] | None, str | None]]) -> bool:
        """Deliver events to one execution in one round trip and forget the activities they end (an
        entry without an event only forgets its activity); returns whether a drive was published.

        At most one drive is queued per execution (append.lua's `dq` mark, cleared when a driver takes
        the lease): when one is, the events wait for it and nothing is published. A mark older than
        wake_after_ms is not trusted (its message may be lost) and these events publish again; the
        safety net's wake-up, recorded here too, re-drives the execution anyway.
        """
        events = [dumps(e) for e, _ in entries if e is not None]
        members = [m for _, m in entries if m is not None]
        now = int(time.time() * 1000)
        wake_after = self.settings.wake_after_ms

        def build(pipe: Any) -> None:
            if events:
                pipe.zadd(keys.wake_for(tag, self.settings.partitions), {tag: now + wake_after})
                self.scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [events[0], now, wake_after, *events[1:]])
            if members:  # after the append: a crash in between runs the call again, never loses it
                pipe.zrem(keys.activities_for(tag, self.settings.partitions), *members)
                pipe.hdel(keys.activity_commands_for(tag, self.settings.partitions), *members)
                pipe.hdel(keys.activity_starts_for(tag, self.settings.partitions), *members)

        results = self.scripts.pipeline_sync(build)
        if not events:
            return False
        appended = results[1]
        if int(appended[0]) != 1 or (len(appended) > 2 and int(appended[2]) == 0):
            return False  # the execution is gone or over (the events are dropped), or a drive is queued already
        self.publish_drive(tag)
        return True


SLOW_CALL_S = 0.1  # a batch whose current call has run this long hands the commands it has not started back
SLOW_BATCH_S = 0.25  # ... and so does a batch that has run this long


class _Batch:
    """The commands of one activity message, run one after another on this worker.

    A watcher thread keeps every command not yet reported alive (pushes its rescue deadline on at
    once and every third of activity_rescue_ms, so the timers do not run it again) and, once a call
    has run SLOW_CALL_S or the batch SLOW_BATCH_S, hands the commands not yet started back to the
    queue one per message: a slow call never holds back its batch-mates for long while other workers
    could run them. Results are reported together when the batch ends (one round trip, at most one
    drive), or as they come once the batch was split.

    Only the dispatcher makes batches, and it records every command before it publishes them: a
    command of a batch that is no longer recorded was reported already (Celery delivered the message
    again after a worker died mid-batch) or cancelled, and is skipped, so a redelivered batch runs
    again only the calls it had not finished.
    """

    def __init__(self, runner: ActivityRunner, tag: str, commands: list[dict[str, Any]], batched: bool = False) -> None:
        self.runner = runner
        self.tag = tag
        self.commands = commands
        self.batched = batched
        self.members = [activity_member(tag, str(c["id"])) for c in commands]
        self.gone: set[int] = set()  # indexes of commands no longer recorded
        self.crashed: dict[int, Outcome] = {}  # indexes of commands not to run: their workers died too often
        self.lock = threading.Lock()
        self.started = 0  # commands started or handed back: the index of the next one
        self.call_began = 0.0  # time.monotonic() when the current call began
        self.split = False
        self.live = set(self.members)  # the members the watcher keeps alive
        self.pending: list[tuple[dict[str, Any] | None, str | None]] = []  # outcomes not yet reported
        self.stop = threading.Event()

    def run(self) -> list[str]:
        """Run every command (or hand the rest back); what was reported for each, in order."""
        if self.batched:  # kept alive from here: the watcher's first beat is due a period later
            self.gone = {i for i, kept in enumerate(self.runner.take(self.members)) if not kept}
            self.live.difference_update(self.members[i] for i in self.gone)
        else:  # likewise, and the start is counted (a batch's calls are not: one that kills its worker comes back alone)
            try:
                starts = self.runner.begin(self.members[0])
            except Exception as exc:  # noqa: BLE001 - the call runs anyway; the watcher beats again
                logger.warning("activity start not recorded: %s", exc)
                starts = 0
            limit = self.runner.settings.max_activity_crashes
            if starts is None:
                # A duplicate message (a rescue or redelivery) of a call that was reported, cancelled
                # or failed meanwhile: running it again would only repeat its side effects (or kill
                # another worker, for a call failed with WORKER_CRASHED).
                self.gone = {0}
                self.live.clear()
            elif limit > 0 and starts > limit:  # the timers have not failed it yet: do it here, never run it again
                logger.warning(
                    "activity %s of %s killed its worker %d times; its task fails with %s",
                    self.commands[0].get("id"), self.tag, starts - 1, WORKER_CRASHED,
                )  # fmt: skip
                self.crashed[0] = worker_crashed(starts - 1, limit)
        said = ["Gone" if i in self.gone else "HandedBack" for i in range(len(self.commands))]
        watcher = threading.Thread(target=self._watch, name="activity-watch", daemon=True)
        watcher.start()
        try:
            for i, command in enumerate(self.commands):
                with self.lock:
                    if self.split:
                        break
                    self.started, self.call_began = i + 1, time.monotonic()
                if i in self.gone:
                    continue
                outcome = self.crashed[i] if i in self.crashed else self.runner.execute(self.tag, command)
                fault_point(self.runner.settings, "activity.after_call")
                event = self.runner.outcome_event(self.tag, command, outcome)
                said[i] = "TimedOut" if event is None else event["t"]
                with self.lock:
                    self.pending.append((event, self.members[i]))
                    self.live.discard(self.members[i])
                    now = self.split
                if now:
                    self._report()
        finally:
            self.stop.set()
            watcher.join(5)
            self._report()
        return said

    def _report(self) -> None:
        with self.lock:
            entries, self.pending = self.pending, []
        if entries:
            self.runner.report(self.tag, entries)

    def _waiting(self) -> bool:
        """Whether commands of the batch have not started yet (called with the lock held)."""
        return not self.split and self.started < len(self.commands)

    def _slow(self, now: float, began: float) -> bool:
        """Whether commands wait that should be handed back (called with the lock held)."""
        return self._waiting() and self.started > 0 and (now - self.call_began >= SLOW_CALL_S or now - began >= SLOW_BATCH_S)

    def _watch(self) -> None:
        period = self.runner.settings.activity_rescue_ms / 3000
        began = time.monotonic()
        beat_at = began + period  # run() pushed the deadlines on already
        while True:
            now = time.monotonic()
            if now >= beat_at:
                with self.lock:
                    members = list(self.live)
                try:
                    self.runner.beat(members)
                except Exception as exc:  # noqa: BLE001 - a missed beat only risks one duplicate run
                    logger.warning("activity heartbeat failed: %s", exc)
                beat_at = now + period
            with self.lock:
                slow, waiting = self._slow(now, began), self._waiting()
            if slow:
                try:
                    self._split()
                except Exception as exc:  # noqa: BLE001 - what was not handed back stays recorded: the timers run it
                    logger.warning("handing back the rest of a slow activity batch failed: %s", exc)
                waiting = False
            wake = min(beat_at, now + SLOW_CALL_S / 2) if waiting else beat_at
            if self.stop.wait(max(0.0, wake - time.monotonic())):
                return

    def _split(self) -> None:
        with self.lock:
            first, self.started, self.split = self.started, len(self.commands), True
            rest = [c for i, c in enumerate(self.commands[first:], first) if i not in self.gone]
            self.live.difference_update(self.members[first:])
        if rest:
            logger.info("activity batch of %s is slow: %d command(s) handed back to the queue", self.tag, len(rest))
            self.runner.hand_back(self.tag, rest)
        self._report()  # what finished so far is not held back by the call still running
