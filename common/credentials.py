"""Accounts and their access keys, from the credentials file and/or the settings' single key.

The file is re-read without a restart: a watcher checks its modification time at most once per
`credentials_poll_seconds`, and SIGHUP asks for a reload at once. A file that no longer parses is
reported in the log and the keys loaded before stay in force.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.policy import PolicyError, Statement, parse_policy
from common.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessKey:
    """One access key: its secret, its account, whether it may sign requests, its policy (None: all of its account)."""

    id: str
    secret: str
    account: str
    enabled: bool = True
    policy: tuple[Statement, ...] | None = field(default=None, compare=False)


class CredentialsError(ValueError):
    """A credentials file that cannot be used."""


def load_keys(settings: Settings) -> dict[str, AccessKey]:
    """Every configured access key by id."""
    found: dict[str, AccessKey] = {}
    if settings.credentials is not None:
        found.update(read_credentials_file(settings.credentials))
    if settings.access_key_id and settings.access_key_secret:
        found[settings.access_key_id] = AccessKey(settings.access_key_id, settings.access_key_secret, settings.account_id)
    return found


def parse_credentials(doc: Any, where: str) -> dict[str, AccessKey]:
    """Access keys of a parsed credentials document (`accounts: [{id, access_keys: [{id, secret, enabled, policy}]}]`)."""
    doc = {} if doc is None else doc
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts", []), list):
        raise CredentialsError(f"{where}: expected a mapping with an `accounts` list")
    out: dict[str, AccessKey] = {}
    for i, account in enumerate(doc.get("accounts") or []):
        if not isinstance(account, dict) or account.get("id") in (None, ""):
            raise CredentialsError(f"{where}: accounts[{i}] needs an `id`")
        for j, key in enumerate(account.get("access_keys") or []):
            at = f"accounts[{i}].access_keys[{j}]"
            if not isinstance(key, dict) or not key.get("id") or not key.get("secret"):
                raise CredentialsError(f"{where}: {at} needs `id` and `secret`")
            key_id = str(key["id"])
            if key_id in out:
                raise CredentialsError(f"{where}: {at}: access key {key_id} is listed twice")
            enabled = key.get("enabled", True)
            if not isinstance(enabled, bool):
                raise CredentialsError(f"{where}: {at}.enabled must be true or false")
            try:
                policy = None if key.get("policy") is None else parse_policy(key["policy"], f"{at}.policy")
            except PolicyError as exc:
                raise CredentialsError(f"{where}: {exc}") from None
            out[key_id] = AccessKey(id=key_id, secret=str(key["secret"]), account=str(account["id"]), enabled=enabled, policy=policy)
    return out


def read_credentials_file(path: Path) -> dict[str, AccessKey]:
    """Parse a credentials YAML file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CredentialsError(f"{path}: not valid YAML: {exc}") from None
    return parse_credentials(doc, str(path))


def write_credentials_file(path: Path, account: str, key_id: str, secret: str) -> None:
    """Write a one-account, one-key credentials file (what `openfnf dev` keeps in its data dir)."""
    doc = {"accounts": [{"id": account, "access_keys": [{"id": key_id, "secret": secret, "enabled": True}]}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten or replaced: (inode, size, mtime ns); None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Keyring:
    """The access keys a front door accepts right now; swapped whole when the credentials file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.credentials
        self._stamp = _stamp(self.path) if self.path is not None else None
        self._keys = load_keys(settings)
        self._wake = asyncio.Event()
        self.reloads = 0  # successful reloads since start (for tests and logs)

    def get(self, key_id: str) -> AccessKey | None:
        """The key with this id, or None."""
        return self._keys.get(key_id)

    def __len__(self) -> int:
        return len(self._keys)

    def request_reload(self) -> None:
        """Reload at the watcher's next turn (what SIGHUP does)."""
        self._stamp = None
        self._wake.set()

    async def reload_if_changed(self) -> bool:
        """Re-read the file if it changed since the last look; True if new keys are in force."""
        if self.path is None:
            return False
        loop = asyncio.get_running_loop()
        stamp = await loop.run_in_executor(None, _stamp, self.path)
        if stamp == self._stamp or stamp is None:
            return False
        try:
            keys = await loop.run_in_executor(None, load_keys, self.settings)
        except (CredentialsError, OSError, UnicodeDecodeError) as exc:
            logger.error("credentials file not reloaded, the previous keys stay in force: %s", exc)
            self._stamp = stamp  # report a broken file once, not once a second
            return False
        self._keys, self._stamp = keys, stamp
        self.reloads += 1
        logger.info("credentials reloaded from %s: %d access keys", self.path, len(keys))
        return True

    async def watch(self) -> None:
        """Check the file at most once per poll interval (at once when asked), forever."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.credentials_poll_seconds)
            self._wake.clear()
            try:
                await self.reload_if_changed()
            except Exception:  # the watcher must outlive any surprise; the keys in force stay
                logger.exception("credentials watcher failed; retrying")

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Run the watcher and the SIGHUP hook for the lifetime of the block."""
        loop = asyncio.get_running_loop()
        hooked = False
        if self.path is not None:
            try:
                loop.add_signal_handler(signal.SIGHUP, self.request_reload)
                hooked = True
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                logger.debug("SIGHUP reload not available in this process")
        task = asyncio.create_task(self.watch()) if self.path is not None else None
        try:
            yield
        finally:
            if hooked:
                loop.remove_signal_handler(signal.SIGHUP)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
