"""Item readers of a distributed Map: every ItemReader source type, read in pages from a resumable cursor.

`iterate(store, source, cursor)` yields (item, cursor after it) while streaming the object, so a page
of items is read without holding the rest: CSV and JSON lists resume at a byte offset (a ranged read),
listings after the last key, inventories at (data file, row). A cursor is JSON data the MapRun keeps
in its record between pages. A malformed source raises ReaderError; a store failure StoreError.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from common.objectstore import ObjectStore

Cursor = dict[str, Any]
LIST_PAGE = 1000


class ReaderError(Exception):
    """The source is not what its SourceType says (bad CSV, not a JSON array, bad manifest)."""


def iterate(store: ObjectStore, source: dict[str, Any], cursor: Cursor | None) -> Iterator[tuple[Any, Cursor]]:
    """Items of the source from the cursor on (None: from the start), each with the cursor after it."""
    kind = source.get("type")
    if kind == "OSS_CSV":
        return _csv(store, source["Bucket"], source["ObjectName"], source.get("headers"), cursor)
    if kind == "OSS_JSON_LIST":
        return _json_list(store, source["Bucket"], source["ObjectName"], cursor)
    if kind == "OSS_OBJECTS":
        return _objects(store, source["Bucket"], str(source.get("Prefix") or ""), cursor)
    if kind == "OSS_INVENTORY_FILES":
        return _inventory(store, source["Bucket"], source["ObjectName"], cursor)
    raise ReaderError(f"unknown SourceType {kind!r}")


def read_page(store: ObjectStore, source: dict[str, Any], cursor: Cursor | None, limit: int) -> tuple[list[Any], Cursor | None, bool]:
    """Up to `limit` items from the cursor: (items, cursor after them, whether the source is exhausted)."""
    items: list[Any] = []
    it = iterate(store, source, cursor)
    try:
        for item, after in it:
            items.append(item)
            cursor = after
            if len(items) >= limit:
                break
        else:
            return items, cursor, True
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return items, cursor, False


def count(store: ObjectStore, source: dict[str, Any], cap: int) -> int:
    """How many items the source holds, counting at most cap + 1 (streamed, nothing kept)."""
    n = 0
    for _ in iterate(store, source, None):
        n += 1
        if n > cap:
            break
    return n


# ---------------------------------------------------------------- CSV


def _records(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Whole CSV records (a quoted cell may hold newlines), each with its line end: the bytes as stored."""
    pending = b""
    record = b""
    for chunk in chunks:
        pending += chunk
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                break
            record += pending[: cut + 1]
            pending = pending[cut + 1 :]
            if record.count(b'"') % 2 == 0:  # RFC 4180: quotes come in pairs once a record is complete
                yield record
                record = b""
    record += pending
    if record:
        yield record


def _cells(record: bytes, where: str) -> list[str] | None:
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        raise ReaderError(f"{where} is not UTF-8 text") from None
    if not text.strip("\r\n"):
        return None  # a blank line is no row
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise ReaderError(f"{where} is not valid CSV: {exc}") from None
    return rows[0] if rows else None


def _csv(store: ObjectStore, bucket: str, key: str, given: list[str] | None, cursor: Cursor | None) -> Iterator[tuple[Any, Cursor]]:
    offset = int(cursor["o"]) if cursor else 0
    row = int(cursor["r"]) if cursor else 0
    headers = list(cursor["h"]) if cursor and cursor.get("h") else (list(given) if given else None)
    first = offset == 0
    for record in _records(store.read(bucket, key, offset)):
        offset += len(record)
        if first and record.startswith(codecs.BOM_UTF8):
            record = record[len(codecs.BOM_UTF8) :]
        first = False
        row += 1
        cells = _cells(record, f"{key} row {row}")
        if cells is None:
            continue
        if headers is None:
            headers = cells
            if len(set(headers)) != len(headers):
                raise ReaderError(f"{key}: the header row repeats a column name")
            continue
        if len(cells) > len(headers):
            raise ReaderError(f"{key} row {row} has {len(cells)} cells but there are {len(headers)} headers")
        cells += [""] * (len(headers) - len(cells))
        yield dict(zip(headers, cells, strict=True)), {"o": offset, "r": row, "h": headers}


# ---------------------------------------------------------------- JSON list


def _json_list(store: ObjectStore, bucket: str, key: str, cursor: Cursor | None) -> Iterator[tuple[Any, Cursor]]:
    offset = int(cursor["o"]) if cursor else 0
    state = "after" if cursor else "start"
    chunks = store.read(bucket, key, offset)
    decoder = codecs.getincrementaldecoder("utf-8-sig" if offset == 0 else "utf-8")()
    parser = json.JSONDecoder(parse_constant=_no_constant)
    buf, pos, base, eof = "", 0, offset, False

    def more() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        chunk = next(chunks, None)
        if chunk is None:
            eof = True
            buf += decoder.decode(b"", final=True)
            return True
        buf += decoder.decode(chunk)
        return True

    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buf):
            if not more():
                raise ReaderError(f"{key} ends before its JSON array is closed" if state != "start" else f"{key} is empty, not a JSON array")
            continue
        ch = buf[pos]
        if state == "start":
            if ch != "[":
                raise ReaderError(f"{key} does not hold a JSON array (it starts with {ch!r})")
            pos, state = pos + 1, "first"
        elif state in ("first", "after") and ch == "]":
            return
        elif state == "after":
            if ch != ",":
                raise ReaderError(f"{key} is not valid JSON near byte {base + len(buf[:pos].encode())}")
            pos, state = pos + 1, "value"
        else:
            try:
                value, end = parser.raw_decode(buf, pos)
                complete = end < len(buf) or eof
            except RecursionError:
                raise ReaderError(f"{key} nests too deeply near byte {base + len(buf[:pos].encode())}") from None
            except json.JSONDecodeError:
                value, end, complete = None, pos, False
                if eof:
                    raise ReaderError(f"{key} is not valid JSON near byte {base + len(buf[:pos].encode())}") from None
            if not complete:  # the value may go on in the next chunk (a number, or a truncated text)
                more()
                continue
            base += len(buf[:end].encode("utf-8"))
            buf, pos, state = buf[end:], 0, "after"
            yield value, {"o": base}


def _no_constant(name: str) -> Any:
    raise ReaderError(f"{name} is not a JSON number")


# ---------------------------------------------------------------- object listing


def _objects(store: ObjectStore, bucket: str, prefix: str, cursor: Cursor | None) -> Iterator[tuple[Any, Cursor]]:
    after = str(cursor["a"]) if cursor else ""
    while True:
        page = store.list(bucket, prefix, after, LIST_PAGE)
        for info in page:
            after = info.key
            yield info.as_item(), {"a": after}
        if len(page) < LIST_PAGE:
            return


# ---------------------------------------------------------------- inventory


def _inventory(store: ObjectStore, bucket: str, key: str, cursor: Cursor | None) -> Iterator[tuple[Any, Cursor]]:
    """An OSS inventory: manifest.json lists gzip'ed CSV data files whose columns its fileSchema names."""
    raw = b"".join(store.read(bucket, key))
    try:
        manifest = json.loads(raw.decode("utf-8-sig"))
        files = [str(f["key"]) for f in manifest["files"]]
        schema = [c.strip() for c in str(manifest["fileSchema"]).split(",")]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReaderError(f"{key} is not an inventory manifest (files, fileSchema): {exc}") from None
    start_file = int(cursor["f"]) if cursor else 0
    start_row = int(cursor["r"]) if cursor else 0
    for index in range(start_file, len(files)):
        data_key = files[index]
        row = 0
        for record in _records(_gunzip(store.read(bucket, data_key), data_key)):
            cells = _cells(record, f"{data_key} row {row + 1}")
            if cells is None:
                continue
            row += 1
            if index == start_file and row <= start_row:
                continue
            item: dict[str, Any] = {}
            for name, value in zip(schema, cells, strict=False):
                if name == "Key":
                    value = unquote(value)
                item[name] = int(value) if name == "Size" and value.isdigit() else value
            yield item, {"f": index, "r": row}


def _gunzip(chunks: Iterator[bytes], key: str) -> Iterator[bytes]:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for chunk in chunks:
            out = inflate.decompress(chunk)
            if out:
                yield out
        tail = inflate.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise ReaderError(f"{key} is not a gzip file: {exc}") from None


__all__ = ["ReaderError", "count", "iterate", "read_page"]
