"""The Lua scripts of common/lua, loaded once and registered on a redis-py client (sync or asyncio)."""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

NAMES = (
    "claim",
    "commit",
    "append",
    "watch",
    "create_flow",
    "update_flow",
    "delete_flow",
    "claim_due",
    "release_if",
    "gcra",
    "publish_version",
    "put_alias",
    "delete_version",
    "report",
    "put_schedule",  # schedules (issue 8)
    "arm_schedule",
    "adopt",  # child flows (issue 14)
    "stop_child",
    "reopen",  # RedriveExecution (issue 18)
    "maprun_acquire",  # distributed Map (issue 16)
    "maprun_commit",
    "maprun_child_end",
    "maprun_update",
    "maprun_child_done",
    "partition_lease",  # timers share the partitioned sets (issue 17)
    "gcra_refund",
)


@cache
def source(name: str) -> str:
    """The text of common/lua/<name>.lua."""
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """Every script registered on one client: `scripts.claim(keys=..., args=...)` for a lone call;
    `scripts.queue(pipe, "claim", keys, args)` inside a pipeline run by `pipeline()` / `pipeline_sync()`.

    redis-py checks `SCRIPT EXISTS` before every pipeline holding Script objects, one more round
    trip each time; queued EVALSHAs avoid it. After a NOSCRIPT (a restarted or flushed server) the
    scripts are loaded and only the script calls that failed run again.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sha: dict[str, str] = {}
        # pipeline being built -> its EVALSHAs: shared by every Scripts, since a pipeline one instance builds
        # may get its scripts queued through another (the front door's Store and its batcher's)
        self._queued = _QUEUED
        for name in NAMES:
            script = client.register_script(source(name))
            setattr(self, name, script)
            self.sha[name] = script.sha

    def __getattr__(self, name: str) -> Any:  # for type checkers: attributes are set in __init__
        raise AttributeError(name)

    def queue(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """Add an EVALSHA of script `name` to a pipeline (returned, as redis-py's pipeline commands do)."""
        command = ("EVALSHA", self.sha[name], len(keys), *keys, *args)
        queued = self._queued.get(id(pipe))
        if queued is not None:  # remembered for a run again after NOSCRIPT (no reading of the pipeline's internals)
            queued.append((len(pipe), command))
        return pipe.evalsha(self.sha[name], len(keys), *keys, *args)

    def each(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> Callable[[Any], None]:
        """A build function for `pipeline`/`pipeline_sync` queueing script `name` once per (keys, args)."""

        def build(pipe: Any) -> None:
            for script_keys, args in calls:
                self.queue(pipe, name, script_keys, args)

        return build

    def _build(self, build: Callable[[Any], object]) -> tuple[Any, list[tuple[int, tuple[Any, ...]]]]:
        """A non-transactional pipeline (grouped per node by a cluster client) with `build`'s commands,
        and the EVALSHAs among them (index, command)."""
        pipe = self.client.pipeline(transaction=False)
        queued: list[tuple[int, tuple[Any, ...]]] = []
        self._queued[id(pipe)] = queued
        try:
            build(pipe)
        finally:
            del self._queued[id(pipe)]
        return pipe, queued

    async def pipeline(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (one per node on a cluster) (asyncio client)."""
        pipe, queued = self._build(build)
        if not len(pipe):
            return []
        return await self.settle_queued(queued, list(await pipe.execute(raise_on_error=False)))

    async def settle(self, stack: list[Any], results: list[Any]) -> list[Any]:
        """The answers of commands `stack` (argument tuples) that a pipeline ran with raise_on_error=False:
        those that met NOSCRIPT run again once the scripts are loaded; then the first error is raised."""
        return await self.settle_queued([(i, tuple(args)) for i, args in enumerate(stack)], results)

    async def settle_queued(self, queued: list[tuple[int, tuple[Any, ...]]], results: list[Any]) -> list[Any]:
        """As settle, for the commands `queued` (index, argument tuple) among the results."""
        commands = dict(queued)
        missing = self._missing(results)
        if missing:  # the server lost its scripts: load them (on every primary of a cluster), run only those again
            for name in NAMES:
                await self._load(source(name))
            for i in missing:
                results[i] = await self._evalsha(commands[i])
        return _raise_first_error(results)

    async def _load(self, text: str) -> None:
        await self.client.script_load(text)  # a cluster client loads it on every primary

    async def _evalsha(self, command: tuple[Any, ...]) -> Any:
        _, sha, numkeys, *rest = command
        return await self.client.evalsha(sha, numkeys, *rest)

    def pipeline_sync(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (one per node on a cluster) (sync client)."""
        pipe, queued = self._build(build)
        if not len(pipe):
            return []
        results = list(pipe.execute(raise_on_error=False))
        missing = self._missing(results)
        if missing:
            commands = dict(queued)
            for name in NAMES:
                self.client.script_load(source(name))  # a cluster client loads it on every primary
            for i in missing:
                _, sha, numkeys, *rest = commands[i]
                results[i] = self.client.evalsha(sha, numkeys, *rest)
        return _raise_first_error(results)

    @staticmethod
    def _missing(results: list[Any]) -> list[int]:
        """The indexes of the EVALSHAs that met NOSCRIPT (load the scripts, then run those again); [] if none did.

        Only those are run again: every other command of the pipeline ran exactly once, so counters
        (INCR) and the like in the same pipeline stay right.
        """
        return [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]


_QUEUED: dict[int, list[tuple[int, tuple[Any, ...]]]] = {}


def _raise_first_error(results: list[Any]) -> list[Any]:
    """The results, or the first error among them raised (as redis-py's raise_on_error does)."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
