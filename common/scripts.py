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
)


@cache
def source(name: str) -> str:
    """The text of common/lua/<name>.lua."""
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """Every script registered on one client: `scripts.claim(keys=..., args=...)` for a lone call;
    `scripts.queue(pipe, "claim", keys, args)` inside a pipeline run by `pipeline()` / `pipeline_sync()`.

    redis-py checks `SCRIPT EXISTS` before every pipeline holding Script objects, one more round
    trip each time; queued EVALSHAs avoid it, and a NOSCRIPT (a restarted or flushed server) loads
    the scripts and runs the pipeline once more (every pipeline here is safe to repeat).
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

    def queue(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        """Add an EVALSHA of script `name` to a pipeline."""
        pipe.evalsha(self.sha[name], len(keys), *keys, *args)

    async def pipeline(self, build: Callable[[Any], None]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (asyncio client)."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
                for name in NAMES:
                    await self.client.script_load(source(name))
        raise AssertionError("unreachable")

    def pipeline_sync(self, build: Callable[[Any], None]) -> list[Any]:
        """Run the commands `build(pipe)` queues in one round trip (sync client)."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            try:
                return list(pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
                for name in NAMES:
                    self.client.script_load(source(name))
        raise AssertionError("unreachable")
