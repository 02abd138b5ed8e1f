"""Which key of an account a function gets (worker/account_keys.py), as a table; and the file's reload."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.credentials import CredentialsError
from worker.account_keys import AccountKeys, pick_keys

POLICY = {"Statement": [{"Effect": "Allow", "Action": ["fnf:Describe*"], "Resource": ["*"]}]}


@pytest.mark.parametrize(
    ("keys", "picked"),
    [
        ([{"id": "a", "secret": "s"}], ("a", "s")),
        ([{"id": "ro", "secret": "r", "policy": POLICY}, {"id": "a", "secret": "s"}], ("a", "s")),  # no policy first
        ([{"id": "ro", "secret": "r", "policy": POLICY}], ("ro", "r")),  # else the first usable
        ([{"id": "off", "secret": "x", "enabled": False}, {"id": "a", "secret": "s"}], ("a", "s")),
        ([{"id": "off", "secret": "x", "enabled": False}], None),
        ([], None),
    ],
)
def test_the_key_picked_for_an_account(keys: list[dict[str, Any]], picked: tuple[str, str] | None) -> None:
    assert pick_keys({"accounts": [{"id": "acct", "access_keys": keys}]}).get("acct") == picked


def test_an_empty_document_gives_no_keys() -> None:
    assert pick_keys(None) == {} and pick_keys({"accounts": []}) == {}


@pytest.mark.parametrize("doc", [[], {"accounts": "x"}, {"accounts": [{"access_keys": []}]}])
def test_a_document_the_front_door_refuses_is_refused(doc: Any) -> None:
    with pytest.raises(CredentialsError):
        pick_keys(doc)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{"id": "1", "access_keys": [{"id": "k1", "secret": "s1"}]}]}))
    found = AccountKeys(path, poll_seconds=0)
    assert found.key_of("1") == ("k1", "s1") and found.key_of("2") is None
    path.write_text(yaml.safe_dump({"accounts": [{"id": "1", "access_keys": [{"id": "k2", "secret": "s2"}]}]}))
    os.utime(path, (1, 1))  # a different modification time, whatever the file system's resolution
    assert found.key_of("1") == ("k2", "s2")
    path.write_text("accounts: [")  # broken: the keys read before stay
    os.utime(path, (2, 2))
    assert found.key_of("1") == ("k2", "s2")
    assert AccountKeys(None).key_of("1") is None
