"""Parents and children: how deep an execution is nested, which children a parent waits for, and the
stop that reaches them (issue 14).

- Depth. A root execution is at depth 0; a child flow started by a task of an execution at depth d
  is at d + 1 (record field `depth`, written only when above 0), whatever the task's mode, and so is
  an execution started with a waiting task's token as CallbackFnFTaskToken. A child-flow start
  deeper than `max_nesting_depth` fails the parent's task with FnF.MaxNestingDepthExceeded.
- Children a parent waits for: sync / WaitForSystemCallback children, and executions started with
  one of the parent's task tokens as CallbackFnFTaskToken. Once claimed, each is adopted (adopt.lua
  records child tag -> task id in keys.children(parent)) while that task still waits; its end takes
  it out again (Dispatcher.notify_parent).
- The stop. When the interpreter cancels a task that waits for a child (the parent is stopped, fails
  or times out, a sibling branch failed, the task timed out), the dispatcher stops that child:
  PARENT_STOPPED when the parent was stopped, TASK_CANCELLED otherwise. StopExecution, and the
  dispatcher, walk the whole adopted tree at once (stop_tree, stop_child.lua): each execution is
  marked `stopping` (adopt.lua then refuses it new children) and gets a StopRequested, so a flow
  that spawns a level per drive cannot outrun its stop. A child adopted after its task was
  cancelled is stopped by whoever adopted it (adopt.lua tells). Fire-and-forget children
  (RequestComplete / requestResponse) are not adopted and run on.
"""
from __future__ import annotations

from typing import Any

from common import keys
from common.records import dumps
from common.scripts import Scripts

PARENT_STOPPED = "FnF.ParentStopped"  # the Error of a child stopped because its parent was stopped
TASK_CANCELLED = "FnF.TaskCancelled"  # ... because the parent's task that waited for it was cancelled otherwise
MAX_NESTING = "FnF.MaxNestingDepthExceeded"  # the Error of a child start deeper than max_nesting_depth


def depth_of(raw: Any) -> int:
    """The nesting depth stored in a record's `depth` field (bytes, str or None; absent: 0)."""
    if raw is None or raw in (b"", ""):
        return 0
    return int(raw.decode() if isinstance(raw, bytes) else raw)


def too_deep(depth: int, limit: int) -> str:
    """The cause of a start at `depth` refused by the limit, or '' when it may start."""
    if depth <= limit:
        return ""
    return (
        f"Starting this child flow would nest executions {depth} deep, "
        f"more than the limit of {limit} (OPENFNF_MAX_NESTING_DEPTH)."
    )


def orphan_event(flow: str, name: str, parent_status: str) -> dict[str, Any]:
    """The StopRequested event a child gets when the task of its parent (flow `flow`, execution `name`,
    now `parent_status`) that waited for it is cancelled. It names the parent only, not the parent's
    own Error and Cause: a cause must not grow with the depth."""
    if parent_status == "Stopped":
        return {"t": "StopRequested", "error": PARENT_STOPPED, "cause": f"The parent execution {name} of flow {flow} was stopped."}
    why = f"the parent ended {parent_status}" if parent_status in ("Failed", "TimedOut", "Succeeded") else "its task was cancelled"
    cause = f"The parent execution {name} of flow {flow} no longer waits for this execution: {why}."
    return {"t": "StopRequested", "error": TASK_CANCELLED, "cause": cause}


def queue_adopt(scripts: Scripts, pipe: Any, parent_tag: str, task_id: str, child_tag: str) -> None:
    """Queue adopt.lua: the parent's task `task_id` waits for this child (unless it no longer waits)."""
    parent_keys = [keys.execution(parent_tag), keys.tasks(parent_tag), keys.children(parent_tag)]
    scripts.queue(pipe, "adopt", parent_keys, [child_tag, task_id])


def adoption_refused(answer: Any) -> str:
    """'' when adopt.lua adopted the child, else the parent's status it saw ('' -> 'Running' when only
    the task was gone): the caller then stops the child with orphan_event(..., that status)."""
    code = int(answer[0])
    if code == 1 or code == -1:  # adopted; or no parent at all (nothing to stop it for)
        return ""
    if code == 0:
        status = answer[1]
        return status.decode() if isinstance(status, bytes) else str(status)
    return "Running"


def queue_stops(scripts: Scripts, pipe: Any, tags: list[str], event: dict[str, Any], now: int, wake_after_ms: int, partitions: int = 16) -> None:
    """Queue a stop for each of these executions (ZADD wake-up, append.lua: two results each); those
    that have ended or do not exist are left alone. `stops_to_publish` reads which need a drive."""
    raw = dumps(event)
    for tag in tags:
        pipe.zadd(keys.wake_for(tag, partitions), {tag: now + wake_after_ms})
        scripts.queue(pipe, "append", [keys.execution(tag), keys.inbox(tag)], [raw, now, wake_after_ms])


def stops_to_publish(tags: list[str], results: list[Any]) -> list[str]:
    """Of the stops queue_stops queued (its results, in order), the executions whose drive must be published."""
    out = []
    for i, tag in enumerate(tags):
        answer = results[2 * i + 1]
        if int(answer[0]) == 1 and len(answer) > 2 and int(answer[2]) == 1:
            out.append(tag)
    return out


class _TreeStop:
    """One walk down a tree of adopted children, level by level (stop_child.lua): what to queue for a
    level, and from its answers which drives to publish and which children make the next level."""

    def __init__(self, scripts: Scripts, tags: list[str], event: dict[str, Any], now: int, wake_after_ms: int, partitions: int) -> None:
        self.partitions = partitions  # Settings.partitions: which keys.wake holds each
        self.scripts = scripts
        self.now = now
        self.wake_after_ms = wake_after_ms
        self.level = [(tag, event) for tag in tags]
        self.seen: set[str] = set()
        self.publish: list[str] = []
        self.answers: list[Any] = []  # stop_child.lua's answers for the first level (the tags asked for)
        self._first = True

    def next_level(self) -> bool:
        """Whether a level is left to stop (those seen before are skipped)."""
        self.level = [(tag, ev) for tag, ev in dict(self.level).items() if tag not in self.seen]
        self.seen.update(tag for tag, _ in self.level)
        return bool(self.level)

    def build(self, pipe: Any) -> None:
        for tag, ev in self.level:
            pipe.zadd(keys.wake_for(tag, self.partitions), {tag: self.now + self.wake_after_ms})
            script_keys = [keys.execution(tag), keys.inbox(tag), keys.children(tag)]
            self.scripts.queue(pipe, "stop_child", script_keys, [dumps(ev), self.now, self.wake_after_ms])

    def read(self, results: list[Any]) -> None:
        below: list[tuple[str, dict[str, Any]]] = []
        answers = results[1::2]
        if self._first:
            self.answers, self._first = answers, False
        for (tag, _), answer in zip(self.level, answers, strict=True):
            if int(answer[0]) != 1:
                continue  # gone or ended already
            if int(answer[1]) == 1:
                self.publish.append(tag)
            flow = answer[2].decode() if isinstance(answer[2], bytes) else str(answer[2])
            child_event = orphan_event(flow, keys.split_tag(tag)[1], "Stopped")
            below += [(c.decode() if isinstance(c, bytes) else str(c), child_event) for c in answer[3:]]
        self.level = below


def stop_tree(scripts: Scripts, tags: list[str], event: dict[str, Any], now: int, wake_after_ms: int, partitions: int = 16) -> list[str]:
    """Stop these executions with `event` and, at once, every descendant they have adopted (stop_child.lua,
    one round trip per level, sync client); the executions whose drive the caller must publish.

    Marking each one `stopping` first makes adopt.lua refuse new children for it, so a flow that
    spawns a level of children per drive cannot outrun its stop.
    """
    walk = _TreeStop(scripts, tags, event, now, wake_after_ms, partitions)
    while walk.next_level():
        walk.read(scripts.pipeline_sync(walk.build))
    return walk.publish


async def stop_tree_async(
    scripts: Scripts, tag: str, event: dict[str, Any], now: int, wake_after_ms: int, partitions: int = 16
) -> tuple[int, list[str]]:
    """stop_tree for one execution on an asyncio client (StopExecution): stop_child.lua's verdict for
    it (-1 missing, 0 ended, 1 stopping) and the executions whose drive must be published."""
    walk = _TreeStop(scripts, [tag], event, now, wake_after_ms, partitions)
    while walk.next_level():
        walk.read(await scripts.pipeline(walk.build))
    return int(walk.answers[0][0]), walk.publish


def orphans(children: dict[Any, Any], cancelled: set[str]) -> list[str]:
    """The child tags (from an HGETALL of keys.children) whose task id is among the cancelled ones."""
    out = []
    for child, task_id in children.items():
        task = task_id.decode() if isinstance(task_id, bytes) else str(task_id)
        if task in cancelled:
            out.append(child.decode() if isinstance(child, bytes) else str(child))
    return sorted(out)
