"""Accounts and their access keys, from the credentials file and/or the settings' single key."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.settings import Settings


@dataclass(frozen=True)
class AccessKey:
    """One access key: its secret, its account, whether it may sign requests, its policy."""

    id: str
    secret: str
    account: str
    enabled: bool = True
    policy: tuple[dict[str, Any], ...] = field(default=(), compare=False)


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


def read_credentials_file(path: Path) -> dict[str, AccessKey]:
    """Parse a credentials YAML file (`accounts: [{id, access_keys: [{id, secret, enabled, policy}]}]`)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts", []), list):
        raise CredentialsError(f"{path}: expected a mapping with an `accounts` list")
    out: dict[str, AccessKey] = {}
    for i, account in enumerate(doc.get("accounts") or []):
        if not isinstance(account, dict) or "id" not in account:
            raise CredentialsError(f"{path}: accounts[{i}] needs an `id`")
        for j, key in enumerate(account.get("access_keys") or []):
            if not isinstance(key, dict) or not key.get("id") or not key.get("secret"):
                raise CredentialsError(f"{path}: accounts[{i}].access_keys[{j}] needs `id` and `secret`")
            out[str(key["id"])] = AccessKey(
                id=str(key["id"]),
                secret=str(key["secret"]),
                account=str(account["id"]),
                enabled=bool(key.get("enabled", True)),
                policy=tuple(key.get("policy") or ()),
            )
    return out


def write_credentials_file(path: Path, account: str, key_id: str, secret: str) -> None:
    """Write a one-account, one-key credentials file (what `openfnf dev` keeps in its data dir)."""
    doc = {"accounts": [{"id": account, "access_keys": [{"id": key_id, "secret": secret, "enabled": True}]}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
