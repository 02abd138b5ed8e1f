"""The terminal client's connection: where the endpoint and key come from, and the official SDK's client on them."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

DEFAULT_DATA_DIR = Path(".openfnf")  # `openfnf dev`'s default --data-dir
ENDPOINT_FILE = "endpoint"  # `openfnf dev` writes its endpoint there (openfnf/dev.py)
CREDENTIALS_FILE = "credentials.yaml"
READ_TIMEOUT_MS = 70_000  # above the longest long-poll (WaitTimeSeconds <= 60); the SDK's default is 10 s
CONNECT_TIMEOUT_MS = 5_000

T = TypeVar("T")


class ServiceError(click.ClickException):
    """An error the service answered (`Code: Message`), or an endpoint that could not be reached."""

    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where to send requests and the key to sign them with."""

    endpoint: str  # host:port, as the SDK's Config wants it
    protocol: str  # http or https
    access_key_id: str
    access_key_secret: str
    region: str
    source: str  # what chose them, for error messages


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """`http://h:p`, `https://h` or `h:p` -> (host[:port], protocol); a bare address is plain HTTP, as `openfnf dev` serves."""
    text = endpoint.strip().rstrip("/")
    for scheme in ("http", "https"):
        if text.lower().startswith(scheme + "://"):
            return text[len(scheme) + 3 :], scheme
    if "://" in text:
        raise click.BadParameter(f"{endpoint!r}: only http:// and https:// endpoints", param_hint="--endpoint")
    return text, "http"


def read_data_dir(data_dir: Path) -> tuple[str | None, str | None, str | None]:
    """(endpoint, access key id, secret) that `openfnf dev --data-dir DIR` keeps there; None where missing."""
    endpoint = key_id = secret = None
    written = data_dir / ENDPOINT_FILE
    if written.exists():
        endpoint = written.read_text(encoding="utf-8").strip() or None
    creds = data_dir / CREDENTIALS_FILE
    if creds.exists():
        try:
            first = (yaml.safe_load(creds.read_text(encoding="utf-8")) or {})["accounts"][0]["access_keys"][0]
            key_id, secret = str(first["id"]), str(first["secret"])
        except (KeyError, IndexError, TypeError, yaml.YAMLError):
            raise click.UsageError(f"{creds}: no access key in it (accounts[0].access_keys[0])") from None
    return endpoint, key_id, secret


def resolve(
    endpoint: str | None,
    access_key_id: str | None,
    access_key_secret: str | None,
    data_dir: Path | None,
    region: str | None,
    environ: dict[str, str] | None = None,
) -> Target:
    """Each value from its option, else from --data-dir, else from OPENFNF_*, else from ./.openfnf (a local `openfnf dev`)."""
    env = dict(os.environ) if environ is None else environ
    if bool(access_key_id) != bool(access_key_secret):
        raise click.UsageError("--access-key-id and --access-key-secret go together")
    layers: list[tuple[str, str | None, str | None, str | None]] = [("options", endpoint, access_key_id, access_key_secret)]
    if data_dir is not None:
        if not data_dir.is_dir():
            raise click.UsageError(f"--data-dir {data_dir}: no such directory")
        layers.append((f"--data-dir {data_dir}", *read_data_dir(data_dir)))
    layers.append(
        ("OPENFNF_* variables", env.get("OPENFNF_ENDPOINT"), env.get("OPENFNF_ACCESS_KEY_ID"), env.get("OPENFNF_ACCESS_KEY_SECRET"))
    )
    if data_dir is None and DEFAULT_DATA_DIR.is_dir():
        layers.append((f"{DEFAULT_DATA_DIR}/ (openfnf dev's data dir)", *read_data_dir(DEFAULT_DATA_DIR)))
    chosen_endpoint = next((e for _, e, _, _ in layers if e), None)
    key = next(((k, s, src) for src, _, k, s in layers if k and s), None)
    if key is None:
        raise click.UsageError(
            "no access key: give --access-key-id/--access-key-secret, set OPENFNF_ACCESS_KEY_ID/OPENFNF_ACCESS_KEY_SECRET, "
            "or --data-dir of a running `openfnf dev`"
        )
    host, protocol = split_endpoint(chosen_endpoint or "127.0.0.1:8080")
    return Target(
        endpoint=host, protocol=protocol, access_key_id=key[0], access_key_secret=key[1],
        region=region or env.get("OPENFNF_REGION") or "cn-hangzhou", source=key[2],
    )  # fmt: skip


def sdk_client(target: Target) -> Any:
    """The official SDK's client (alibabacloud_fnf20190315) on the target."""
    from alibabacloud_fnf20190315.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(
        access_key_id=target.access_key_id, access_key_secret=target.access_key_secret, endpoint=target.endpoint,
        protocol=target.protocol, region_id=target.region, read_timeout=READ_TIMEOUT_MS, connect_timeout=CONNECT_TIMEOUT_MS,
    ))  # fmt: skip


@contextmanager
def service_errors(target: Target) -> Iterator[None]:
    """Turn the SDK's exceptions into `Code: Message` errors (exit 1, no traceback)."""
    from Tea.exceptions import TeaException, UnretryableException  # type: ignore[import-untyped]

    try:
        yield
    except UnretryableException as exc:  # the SDK's wrapper around what retries did not cure: connection failures
        inner = exc.inner_exception
        if isinstance(inner, TeaException) and inner.code:
            raise ServiceError(str(inner.code), _message(inner)) from None
        raise ServiceError("ConnectionError", f"cannot reach {target.protocol}://{target.endpoint}: {_root(exc)}") from None
    except TeaException as exc:
        raise ServiceError(str(exc.code or "Error"), _message(exc)) from None
    except OSError as exc:
        raise ServiceError("ConnectionError", f"cannot reach {target.protocol}://{target.endpoint}: {exc}") from None


def call(target: Target, fn: Callable[[], T]) -> T:
    """fn() with the SDK's errors turned into `Code: Message`."""
    with service_errors(target):
        return fn()


def _message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        return str(data["Message"])
    return str(getattr(exc, "message", "") or "")


def _root(exc: BaseException) -> str:
    inner = getattr(exc, "inner_exception", None)
    seen = exc if inner is None else inner
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return f"{type(seen).__name__}: {seen}"
