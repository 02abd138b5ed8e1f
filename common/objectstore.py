"""The object store a distributed Map reads its items from and writes its results to (the protocol only).

Two implementations live in worker/objectstores.py: OSS or any S3-compatible store (boto3), and
directory buckets for local development (a bucket is a subdirectory, objects are files). Every failure
is a StoreError whose `code` says what went wrong; the MapRun turns it into the task error the Map's
Retry/Catch see (FnF.ItemReaderFailed / FnF.ResultWriterFailed, with the code in the cause).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

NO_SUCH_BUCKET = "NoSuchBucket"
NO_SUCH_KEY = "NoSuchKey"
ACCESS_DENIED = "AccessDenied"
UNREACHABLE = "StoreUnreachable"
NOT_CONFIGURED = "StoreNotConfigured"
STORE_ERROR = "StoreError"


class StoreError(Exception):
    """An object store call failed; `code` is one of the names above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of a listing, with the fields of OSS ListObjects `Contents`."""

    key: str
    size: int
    etag: str
    last_modified: str  # RFC 3339
    storage_class: str = "Standard"

    def as_item(self) -> dict[str, object]:
        """The item an OSS_OBJECTS reader yields for this object."""
        return {
            "Key": self.key, "Size": self.size, "ETag": self.etag, "LastModified": self.last_modified,
            "StorageClass": self.storage_class, "Type": "Normal",
        }  # fmt: skip


class ObjectStore(Protocol):
    """What the item readers and the result writer need of a store."""

    def read(self, bucket: str, key: str, start: int = 0) -> Iterator[bytes]:
        """The object's bytes from offset `start` on, in chunks (empty when start is at or past its end)."""
        ...

    def list(self, bucket: str, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        """Up to `limit` objects under `prefix` with keys after `start_after`, in key order."""
        ...

    def write(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> None:
        """Create or replace an object."""
        ...
