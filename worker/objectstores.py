"""The object stores (common/objectstore.py): directory buckets, and OSS / S3-compatible stores through boto3."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.objectstore import (
    ACCESS_DENIED,
    NO_SUCH_BUCKET,
    NO_SUCH_KEY,
    NOT_CONFIGURED,
    STORE_ERROR,
    UNREACHABLE,
    ObjectInfo,
    ObjectStore,
    StoreError,
)
from common.settings import Settings

CHUNK = 64 * 1024


class DirStore:
    """Buckets as subdirectories of `root`, objects as files under them (keys use `/` as directories)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _bucket(self, bucket: str) -> Path:
        if not bucket or "/" in bucket or bucket in (".", ".."):
            raise StoreError(NO_SUCH_BUCKET, f"bucket {bucket!r} is not a valid bucket name")
        path = self.root / bucket
        if not path.is_dir():
            raise StoreError(NO_SUCH_BUCKET, f"bucket {bucket} does not exist (no directory {path})")
        return path

    def _object(self, bucket: str, key: str) -> Path:
        base = self._bucket(bucket)
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
            raise StoreError(NO_SUCH_KEY, f"object {key!r} is not a valid key")
        return base.joinpath(*parts)

    def read(self, bucket: str, key: str, start: int = 0) -> Iterator[bytes]:
        path = self._object(bucket, key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StoreError(NO_SUCH_KEY, f"object {key} does not exist in bucket {bucket}") from None
        except PermissionError:
            raise StoreError(ACCESS_DENIED, f"object {key} of bucket {bucket} cannot be read") from None
        return _chunks(handle, start)

    def list(self, bucket: str, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        base = self._bucket(bucket)
        keys: list[str] = []
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            rel = Path(folder).relative_to(base).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and key > start_after and not name.startswith(".openfnf-"):
                    keys.append(key)
        out = []
        for key in sorted(keys)[:limit]:
            stat = (base / key).stat()
            etag = hashlib.md5(f"{key}:{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False).hexdigest()
            when = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            out.append(ObjectInfo(key, stat.st_size, f'"{etag.upper()}"', when))
        return out

    def write(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> None:
        path = self._object(bucket, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".openfnf-", dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # readers see the old object or the new one, never half of it
        except PermissionError:
            raise StoreError(ACCESS_DENIED, f"object {key} of bucket {bucket} cannot be written") from None
        except OSError as exc:
            raise StoreError(STORE_ERROR, f"object {key} of bucket {bucket} cannot be written: {exc}") from None


def _chunks(handle: Any, start: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        while chunk := handle.read(CHUNK):
            yield chunk


class S3Store:
    """OSS or any S3-compatible store, through boto3 (virtual-host addressing by default, as OSS requires)."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=settings.oss_endpoint,
            region_name=settings.oss_region or settings.region,
            aws_access_key_id=settings.oss_access_key_id or None,
            aws_secret_access_key=settings.oss_access_key_secret or None,
            config=Config(
                s3={"addressing_style": settings.oss_addressing_style},
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                # OSS refuses the checksum headers newer botocore sends by default
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "InvalidRange":
                return None
            if code in ("NoSuchBucket",):
                raise StoreError(NO_SUCH_BUCKET, f"{what}: the bucket does not exist") from None
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                raise StoreError(NO_SUCH_KEY, f"{what}: no such object") from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
                raise StoreError(ACCESS_DENIED, f"{what}: access denied ({code})") from None
            raise StoreError(STORE_ERROR, f"{what}: {code or status} {exc}") from None
        except EndpointConnectionError as exc:
            raise StoreError(UNREACHABLE, f"{what}: {exc}") from None
        except BotoCoreError as exc:
            raise StoreError(UNREACHABLE, f"{what}: {exc}") from None

    def read(self, bucket: str, key: str, start: int = 0) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        answer = self._call(f"reading {bucket}/{key}", self.client.get_object, **kwargs)
        if answer is None:
            return iter(())
        return _body(answer["Body"])

    def list(self, bucket: str, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(limit, 1000))}
        if start_after:
            kwargs["StartAfter"] = start_after
        answer = self._call(f"listing {bucket}/{prefix}", self.client.list_objects_v2, **kwargs)
        out = []
        for entry in answer.get("Contents", []) if answer else []:
            when = entry.get("LastModified")
            stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z") if isinstance(when, datetime) else str(when or "")
            out.append(ObjectInfo(entry["Key"], int(entry.get("Size", 0)), str(entry.get("ETag", "")), stamp, str(entry.get("StorageClass") or "Standard")))
        return out

    def write(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> None:
        self._call(f"writing {bucket}/{key}", self.client.put_object, Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def _body(body: Any) -> Iterator[bytes]:
    try:
        while chunk := body.read(CHUNK):
            yield chunk
    finally:
        body.close()


class _Unconfigured:
    def _fail(self) -> StoreError:
        return StoreError(NOT_CONFIGURED, "no object store is configured (set OPENFNF_BUCKETS_DIR or OPENFNF_OSS_ENDPOINT)")

    def read(self, bucket: str, key: str, start: int = 0) -> Iterator[bytes]:
        raise self._fail()

    def list(self, bucket: str, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        raise self._fail()

    def write(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> None:
        raise self._fail()


def make_store(settings: Settings) -> ObjectStore:
    """The store the settings name: directory buckets, else the OSS/S3 endpoint, else one that says neither is set."""
    if settings.buckets_dir is not None:
        return DirStore(settings.buckets_dir)
    if settings.oss_endpoint:
        return S3Store(settings)
    return _Unconfigured()
