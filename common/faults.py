"""Test-only fault points: die on the spot, as a SIGKILL would, where the settings name the point."""
from __future__ import annotations

import os

from common.settings import Settings

EXIT_KILLED = 137  # what a shell reports for a process killed by SIGKILL


def fault_point(settings: Settings, name: str) -> None:
    """os._exit(137) here if `name` is in settings.fault_points (never set outside tests)."""
    if name in settings.fault_points:
        os._exit(EXIT_KILLED)
