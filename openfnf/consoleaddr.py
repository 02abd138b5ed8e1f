"""Where a front door's web console is, from the environment its processes get (for `openfnf dev`'s banner)."""
from __future__ import annotations

from collections.abc import Mapping

from common.settings import Settings


def console_address(host: str, port: int, env: Mapping[str, str]) -> str | None:
    """The console's URL for a front door on host:port, or None when OPENFNF_CONSOLE turns it off."""
    overrides = {k[len("OPENFNF_"):].lower(): v for k, v in env.items() if k in ("OPENFNF_CONSOLE", "OPENFNF_CONSOLE_PORT")}
    settings = Settings.model_validate(overrides)
    if not settings.console:
        return None
    return f"http://{host}:{settings.console_port or port}/console/"


def console_line(host: str, port: int, env: Mapping[str, str]) -> str:
    """The banner line of the console (empty when it is off)."""
    address = console_address(host, port, env)
    return f"  console:           {address}\n" if address else ""
