"""The Lua scripts of common/lua, loaded once and registered on a redis-py client (sync or asyncio)."""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

NAMES = (
    "claim",
    "acquire",
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
        for name in NAMES:
            script = client.register_script(source(name))
            setattr(self, name, script)
            self.sha[name] = script.sha

    def __getattr__(self, name: str) -> Any:  # for type checkers: attributes are set in __init__
        raise AttributeError(name)

    def queue(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """Add an EVALSHA of script `name` to a pipeline (returned, as redis-py's pipeline commands do)."""
        return pipe.evalsha(self.sha[name], len(keys), *keys, *args)

    async def pipeline(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (asyncio client)."""
        pipe = self.client.pipeline(transaction=False)
        build(pipe)
        stack = [args for args, _ in pipe.command_stack]
        return await self.settle(stack, list(await pipe.execute(raise_on_error=False)))

    async def settle(self, stack: list[Any], results: list[Any]) -> list[Any]:
        """The answers of commands `stack` (argument tuples) that a pipeline ran with raise_on_error=False:
        those that met NOSCRIPT run again once the scripts are loaded; then the first error is raised."""
        for i in self._missing(results):  # the server lost its scripts: load them, run only those again
            if i == -1:
                for name in NAMES:
                    await self.client.script_load(source(name))
                continue
            results[i] = await self.client.execute_command(*stack[i])
        return _raise_first_error(results)

    def pipeline_sync(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (sync client)."""
        pipe = self.client.pipeline(transaction=False)
        build(pipe)
        stack = [args for args, _ in pipe.command_stack]
        results = list(pipe.execute(raise_on_error=False))
        for i in self._missing(results):
            if i == -1:
                for name in NAMES:
                    self.client.script_load(source(name))
                continue
            results[i] = self.client.execute_command(*stack[i])
        return _raise_first_error(results)

    @staticmethod
    def _missing(results: list[Any]) -> list[int]:
        """-1 (load the scripts), then the indexes of the EVALSHAs that met NOSCRIPT; [] if none did.

        Only those are run again: every other command of the pipeline ran exactly once, so counters
        (INCR) and the like in the same pipeline stay right.
        """
        failed = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        return [-1, *failed] if failed else []


def _raise_first_error(results: list[Any]) -> list[Any]:
    """The results, or the first error among them raised (as redis-py's raise_on_error does)."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
