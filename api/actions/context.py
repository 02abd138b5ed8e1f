"""What an action handler gets: the caller, its parameters, the clock and the process's services."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.credentials import AccessKey
from common.settings import Settings
from common.store import Store


@dataclass
class Call:
    """One authenticated API call."""

    key: AccessKey
    params: dict[str, str]
    now: int  # epoch ms when the request arrived
    settings: Settings
    store: Store
    publisher: Any  # api.handoff.DrivePublisher
    waiters: Any  # api.waiters.EndWaiters
    flow_head: list[Any] | None = None  # StartExecution: Store.queue_flow_head's answer, read at admission
    execution_name: str = ""  # StartExecution without ExecutionName: the name the admission chose
    woken: bool = False  # StartExecution: the admission wrote its wake-up (keys.pending_start)

    @property
    def account(self) -> str:
        """The caller's account: every resource it names lives there."""
        return self.key.account
