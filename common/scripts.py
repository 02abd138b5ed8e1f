"""The Lua scripts of common/lua, loaded once and registered on a redis-py client (sync or asyncio)."""
from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

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
    "publish_version",
    "put_alias",
    "delete_version",
)


@cache
def source(name: str) -> str:
    """The text of common/lua/<name>.lua."""
    return resources.files("common").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """Every script registered on one client; `scripts.claim(keys=..., args=..., client=pipe)`."""

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    def __getattr__(self, name: str) -> Any:  # for type checkers: attributes are set in __init__
        raise AttributeError(name)
