"""A MapRun's results, collected when every item has ended: the Map's `{"Items": [...]}` output, or the
ResultWriter's files and manifest, read from the children's records a page at a time (issue 16)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from common import keys
from common.mapruns import RESULT_TOO_LARGE, RESULT_WRITER_FAILED, child_name
from common.objectstore import ObjectStore, StoreError
from common.records import as_str, dumps
from common.settings import Settings
from common.timefmt import rfc3339_ms

READ_PAGE = 500  # child records read per round trip when the results are collected
SETTLE_TRIES, SETTLE_SLEEP_S = 100, 0.02  # how long the results wait for a child's record to show its end
ENDED = frozenset({"Succeeded", "Failed", "Stopped", "TimedOut"})


class RunFailed(Exception):
    """The MapRun fails with this task error (the Map's Retry/Catch see `error`)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


class NotSettled(Exception):
    """A child counted as ended whose record does not say so yet (its drive died before its commit)."""


class Results:
    """Reads a MapRun's children and shapes or writes their results (sync redis-py client)."""

    def __init__(self, state: Any, store: ObjectStore, settings: Settings) -> None:
        self.state = state
        self.store = store
        self.settings = settings

    def children(self, fields: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
        """(name, record fields) of every child, in index order, read a page at a time."""
        fid, name, n = fields.get("fid", ""), fields.get("name", ""), int(fields.get("next") or 0)
        wanted = ("status", "input", "output", "error", "cause", "started", "stopped")
        for first in range(0, n, READ_PAGE):
            names = [child_name(name, i) for i in range(first, min(n, first + READ_PAGE))]
            records = self._read_children(fid, names, wanted)
            for _ in range(SETTLE_TRIES):
                # A child tells its run it ended just before its own record says so (side effects go
                # before the commit, worker/driver.py): the records of the last ones may lag a moment.
                late = [n for n in names if records[n]["status"] not in ENDED]
                if not late:
                    break
                time.sleep(SETTLE_SLEEP_S)
                records.update(self._read_children(fid, late, wanted))
            else:
                raise NotSettled(f"children of MapRun {name} still show Running")
            for child in names:
                yield child, records[child]

    def _read_children(self, fid: str, names: list[str], wanted: tuple[str, ...]) -> dict[str, dict[str, str]]:
        pipe = self.state.pipeline(transaction=False)
        for child in names:
            pipe.hmget(keys.execution(keys.execution_tag(fid, child)), *wanted)
        return {c: dict(zip(wanted, (as_str(v) for v in raw), strict=True)) for c, raw in zip(names, pipe.execute(), strict=True)}

    def collect(self, fields: dict[str, str], spec: dict[str, Any]) -> Any:
        """The Map's output: the JSON array, or what the ResultWriter wrote."""
        if spec.get("writer"):
            return self._write(fields, spec["writer"])
        limit = self.settings.max_state_bytes
        size = 12
        out = []
        for _, child in self.children(fields):
            if child["status"] == "Succeeded":
                value: Any = _json(child["output"])
            else:
                value = {"Error": child["error"] or _default_error(child["status"]), "Cause": child["cause"]}
            size += len(dumps(value).encode("utf-8")) + 1
            if size > limit:
                raise RunFailed(RESULT_TOO_LARGE, f"the Map's results exceed {limit} bytes; give it a ResultWriter")
            out.append(value)
        return {"Items": out}

    def _write(self, fields: dict[str, str], writer: dict[str, Any]) -> Any:
        bucket, prefix = str(writer.get("Bucket")), str(writer.get("Prefix") or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        base = f"{prefix}{fields.get('name')}/"
        per_file = max(1, self.settings.maprun_result_file_items)
        files: dict[str, list[dict[str, Any]]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": []}
        buffers: dict[str, list[dict[str, Any]]] = {"SUCCEEDED": [], "FAILED": []}

        def flush(kind: str) -> None:
            key = f"{base}{kind}_{len(files[kind])}.json"
            data = json.dumps(buffers[kind], ensure_ascii=False).encode("utf-8")
            self.store.write(bucket, key, data)
            files[kind].append({"Key": key, "Size": len(data)})
            buffers[kind] = []

        try:
            for child_name_, child in self.children(fields):
                entry: dict[str, Any] = {"ExecutionName": child_name_, "Input": child["input"], "Status": child["status"]}
                if child["status"] == "Succeeded":
                    entry["Output"] = child["output"]
                else:
                    entry.update(Error=child["error"] or _default_error(child["status"]), Cause=child["cause"])
                entry["StartedTime"] = rfc3339_ms(int(child["started"] or 0))
                if child["stopped"]:
                    entry["StoppedTime"] = rfc3339_ms(int(child["stopped"]))
                kind = "SUCCEEDED" if child["status"] == "Succeeded" else "FAILED"
                buffers[kind].append(entry)
                if len(buffers[kind]) >= per_file:
                    flush(kind)
            for kind in ("SUCCEEDED", "FAILED"):
                if buffers[kind]:
                    flush(kind)
            manifest = {"DestinationBucket": bucket, "MapRunName": fields.get("name"), "ResultFiles": files}
            key = f"{base}manifest.json"
            self.store.write(bucket, key, json.dumps(manifest, ensure_ascii=False).encode("utf-8"))
        except StoreError as exc:
            raise RunFailed(RESULT_WRITER_FAILED, str(exc)) from None
        return {"MapRunName": fields.get("name"), "ResultWriterDetails": {"Bucket": bucket, "Key": key}}


def _default_error(status: str) -> str:
    return {"Stopped": "FnF.Stopped", "TimedOut": "FnF.Timeout"}.get(status, "FnF.Failed")


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
