"""The object stores and item readers of the distributed Map against moto's S3 server and directory
buckets: ranged reads, listing pages, writes, error names, and every reader paged from its cursor (issue 16)."""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.objectstore import NO_SUCH_BUCKET, NO_SUCH_KEY, UNREACHABLE, ObjectStore, StoreError
from common.settings import Settings
from openfnf.redisserver import free_port
from tests.motos3 import MotoS3, moto_s3
from worker.itemreader import ReaderError, count, iterate, read_page
from worker.objectstores import DirStore, S3Store

OBJECTS = {
    "rows.csv": b'\xef\xbb\xbfid,name\r\n1,"a,b"\r\n2,"x\ny ""q"""\r\n\r\n3,\r\n',
    "bad.csv": b"a,b\n1,2,3\n",
    "list.json": json.dumps([1, {"a": [1, 2]}, "\u00e9t\u00e9", 12345, None, 2.5e3, True]).encode(),
    "notlist.json": b'{"a": 1}',
    "nan.json": b"[1, NaN]",
    "deep.json": b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]",
    "objs/b": b"bb",
    "objs/a": b"a",
    "objs/sub/c": b"ccc",
    "inv/data/0.csv.gz": gzip.compress(b'"src","x%2Fy","5"\n"src","z","7"\n'),
    "inv/data/1.csv.gz": gzip.compress(b'"src","w","1"\n'),
    "inv/manifest.json": json.dumps({"fileSchema": "Bucket, Key, Size", "files": [{"key": "inv/data/0.csv.gz"}, {"key": "inv/data/1.csv.gz"}]}).encode(),
}


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        client = server.client()
        client.create_bucket(Bucket="data")
        for key, body in OBJECTS.items():
            client.put_object(Bucket="data", Key=key, Body=body)
        yield server


@pytest.fixture(scope="module", params=["s3", "dir"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    if request.param == "s3":
        server: MotoS3 = request.getfixturevalue("moto")
        return S3Store(Settings(**{k.removeprefix("OPENFNF_").lower(): v for k, v in server.env().items()}))  # type: ignore[arg-type]
    root = tmp_path_factory.mktemp("buckets")
    for key, body in OBJECTS.items():
        path = root / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return DirStore(root)


def test_ranged_read_listing_pages_and_write(store: ObjectStore) -> None:
    assert b"".join(store.read("data", "objs/sub/c")) == b"ccc"
    assert b"".join(store.read("data", "objs/sub/c", 1)) == b"cc"
    assert b"".join(store.read("data", "objs/sub/c", 3)) == b""
    page = store.list("data", "objs/", "", 2)
    assert [o.key for o in page] == ["objs/a", "objs/b"]
    assert [o.key for o in store.list("data", "objs/", "objs/b", 2)] == ["objs/sub/c"]
    assert page[0].size == 1 and page[0].etag and page[0].last_modified.endswith("Z")
    store.write("data", "out/x.json", b"[1]")
    assert b"".join(store.read("data", "out/x.json")) == b"[1]"


@pytest.mark.parametrize(
    ("bucket", "key", "code"), [("data", "missing", NO_SUCH_KEY), ("nobucket", "x", NO_SUCH_BUCKET)]
)
def test_store_errors_have_names(store: ObjectStore, bucket: str, key: str, code: str) -> None:
    with pytest.raises(StoreError) as info:
        b"".join(store.read(bucket, key))
    assert info.value.code == code


def test_unreachable_store_is_named() -> None:
    settings = Settings(oss_endpoint=f"http://127.0.0.1:{free_port()}", oss_addressing_style="path", oss_access_key_id="a", oss_access_key_secret="b")
    with pytest.raises(StoreError) as info:
        S3Store(settings).list("data", "", "", 10)
    assert info.value.code == UNREACHABLE


SOURCES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "OSS_CSV", "Bucket": "data", "ObjectName": "rows.csv"},
     [{"id": "1", "name": "a,b"}, {"id": "2", "name": 'x\ny "q"'}, {"id": "3", "name": ""}]),
    ({"type": "OSS_CSV", "Bucket": "data", "ObjectName": "rows.csv", "headers": ["c1", "c2"]},
     [{"c1": "id", "c2": "name"}, {"c1": "1", "c2": "a,b"}, {"c1": "2", "c2": 'x\ny "q"'}, {"c1": "3", "c2": ""}]),
    ({"type": "OSS_JSON_LIST", "Bucket": "data", "ObjectName": "list.json"}, [1, {"a": [1, 2]}, "\u00e9t\u00e9", 12345, None, 2500.0, True]),
    ({"type": "OSS_OBJECTS", "Bucket": "data", "Prefix": "objs/"}, ["objs/a", "objs/b", "objs/sub/c"]),
    ({"type": "OSS_INVENTORY_FILES", "Bucket": "data", "ObjectName": "inv/manifest.json"},
     [{"Bucket": "src", "Key": "x/y", "Size": 5}, {"Bucket": "src", "Key": "z", "Size": 7}, {"Bucket": "src", "Key": "w", "Size": 1}]),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), SOURCES, ids=[s["type"] + ("_given" if "headers" in s else "") for s, _ in SOURCES])
@pytest.mark.parametrize("page", [1, 2, 100])
def test_readers_page_from_their_cursor(store: ObjectStore, source: dict[str, Any], expected: list[Any], page: int) -> None:
    got: list[Any] = []
    cursor = None
    while True:
        items, cursor, done = read_page(store, source, cursor, page)
        got += items
        json.dumps(cursor)  # a cursor is JSON data kept in the MapRun's record
        if done:
            break
    if source["type"] == "OSS_OBJECTS":
        got = [o["Key"] for o in got]
    assert got == expected
    assert count(store, source, 100) == len(expected)
    assert count(store, source, 1) == 2  # counts stop one past the cap


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"type": "OSS_CSV", "Bucket": "data", "ObjectName": "bad.csv"}, "has 3 cells but there are 2 headers"),
        ({"type": "OSS_JSON_LIST", "Bucket": "data", "ObjectName": "notlist.json"}, "does not hold a JSON array"),
        ({"type": "OSS_JSON_LIST", "Bucket": "data", "ObjectName": "nan.json"}, "NaN is not a JSON number"),
        ({"type": "OSS_JSON_LIST", "Bucket": "data", "ObjectName": "deep.json"}, "nests too deeply"),
        ({"type": "OSS_INVENTORY_FILES", "Bucket": "data", "ObjectName": "list.json"}, "not an inventory manifest"),
    ],
)
def test_malformed_sources_are_reader_errors(store: ObjectStore, source: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ReaderError, match=fragment):
        list(iterate(store, source, None))


def test_dir_store_refuses_paths_out_of_the_bucket(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(StoreError):
        DirStore(tmp_path).read("b", "../x")
    with pytest.raises(StoreError):
        DirStore(tmp_path).read("..", "x")
