"""Which access key a function run for an execution gets as `context.credentials`: one of that
execution's account (issue 14).

Workers read the credentials file the front door reads (OPENFNF_CREDENTIALS; `openfnf dev` gives it
to every process) and pick, for each account, its first enabled key without a policy (a key that may
do everything its account may), else its first enabled key. An account the file does not list (or no
file) gets the settings' functions_access_key_id/secret. The file is read again when its modification
time changes, looked at no more than once per credentials_poll_seconds; a file that no longer parses
keeps the keys read before (the front door reports the error).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from common.credentials import CredentialsError, parse_credentials

logger = logging.getLogger(__name__)


def pick_keys(doc: Any, where: str = "credentials") -> dict[str, tuple[str, str]]:
    """Account id -> (key id, secret) a function of that account gets, from a parsed credentials
    document (read as the front door reads it: common/credentials.py; CredentialsError if unusable)."""
    out: dict[str, tuple[str, str]] = {}
    with_policy: dict[str, tuple[str, str]] = {}
    for key in parse_credentials(doc, where).values():  # in the file's order
        if not key.enabled:
            continue
        if key.policy is None:
            out.setdefault(key.account, (key.id, key.secret))
        else:
            with_policy.setdefault(key.account, (key.id, key.secret))
    return {**with_policy, **out}


class AccountKeys:
    """The key of each account in a credentials file, re-read when the file changes (thread-safe)."""

    def __init__(self, path: Path | None, poll_seconds: float = 1.0) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        self._keys: dict[str, tuple[str, str]] = {}
        self._mtime: float | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def key_of(self, account: str) -> tuple[str, str] | None:
        """(key id, secret) for a function of `account`, or None when the file has none for it."""
        if self.path is None or not account:
            return None
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.poll_seconds:
                self._checked = now
                self._reload()
            return self._keys.get(account)

    def _reload(self) -> None:
        assert self.path is not None
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            self._keys = pick_keys(yaml.safe_load(self.path.read_text(encoding="utf-8")), str(self.path))
            self._mtime = mtime
        except (OSError, yaml.YAMLError, CredentialsError) as exc:
            logger.warning("cannot read the credentials file %s for functions' keys: %s", self.path, exc)
