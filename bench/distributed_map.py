"""Distributed Map throughput: items of a CSV in a directory bucket, one child execution each (issue 16).

    python -m bench.distributed_map [--items 100000] [--workers 2]

For Express and Standard children running a Pass (and one running a function call): items/s from
StartExecution to the parent's end, the parent's start-to-end time, and Redis bytes per item while the
run goes on and after it (INFO used_memory above the empty service's), and the peak resident memory of
the front door and the workers. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.services import OpenFnF

PASS = "{StartAt: P, States: [{Type: Pass, Name: P, End: true}]}"
CALL = (
    "{StartAt: T, States: [{Type: Task, Name: T, Action: 'FC:InvokeFunction', TaskMode: RequestComplete,"
    " Parameters: {resourceArn: 'acs:fc:cn-hangzhou:123:services/bench/functions/noop', body.$: $Input}, End: true}]}"
)


def flow(mode: str, processor: str, items: int) -> str:
    """The benchmark's flow: every row of data/items.csv through a child, results to a ResultWriter."""
    return f"""Type: StateMachine
SpecVersion: v1
StartAt: M
States:
  - Type: Map
    Name: M
    ProcessorConfig: {{ExecutionMode: {mode}}}
    ItemReader: {{SourceType: OSS_CSV, SourceParameters: {{Bucket: data, ObjectName: items.csv}}}}
    MaxItems: {items}
    MaxConcurrency: 300
    ResultWriter: {{Parameters: {{Bucket: data, Prefix: out/}}}}
    Processor: {processor}
    End: true
"""


def run_one(workdir: Path, mode: str, processor: str, items: int, workers: int) -> dict[str, Any]:
    """One fresh service, one parent execution over `items` rows; its figures."""
    buckets = workdir / "buckets"
    (buckets / "data").mkdir(parents=True)
    (buckets / "data" / "items.csv").write_text("id,name\n" + "".join(f"{i},item-{i}\n" for i in range(items)))
    env = {"OPENFNF_BUCKETS_DIR": str(buckets), "OPENFNF_MAPRUN_MAX_ITEMS": str(items)}
    svc = OpenFnF(workdir, workers=workers, env=env).start()
    try:
        assert svc.r is not None
        svc.create_flow("dmap", flow(mode, processor, items))
        base = int(svc.r.info("memory")["used_memory"])
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], int(svc.r.info("memory")["used_memory"]))  # type: ignore[union-attr]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        name = svc.call("StartExecution", {"FlowName": "dmap", "Input": "{}"})["Name"]
        while True:
            got = svc.call("DescribeExecution", {"FlowName": "dmap", "ExecutionName": name, "WaitTimeSeconds": "30"})
            if got["Status"] != "Running":
                break
        seconds = time.monotonic() - t0
        done.set()
        sampler.join()
        after = int(svc.r.info("memory")["used_memory"])
        peaks = {name: _peak_rss_mib(svc.procs.pid(name)) for name in ("api", *(f"worker{i}" for i in range(workers)))}
        run = json.loads(got.get("Output") or "{}").get("MapRunName", "")
        return {
            "status": got["Status"], "run": run, "seconds": seconds, "items_per_s": items / seconds,
            "bytes_running": (peak[0] - base) / items, "bytes_after": (after - base) / items,
            "api_mib": peaks["api"], "worker_mib": max(v for k, v in peaks.items() if k != "api"),
        }  # fmt: skip
    finally:
        svc.stop()


def _peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MiB; 0 where /proc does not tell."""
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.distributed_map")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--call-items", type=int, default=10_000, help="items of the function-call scenario")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dmap-") as tmp:
        for label, mode, processor, items in (
            ("Express children, Pass", "Express", PASS, args.items),
            ("Standard children, Pass", "Standard", PASS, args.items),
            ("Express children, function call", "Express", CALL, args.call_items),
        ):
            got = run_one(Path(tmp) / label.replace(" ", "_").replace(",", ""), mode, processor, items, args.workers)
            rows.append((label, items, got))
    print(f"| distributed Map ({args.workers} workers) | items | status | start to end (s) | items/s | Redis B/item running | Redis B/item after | front door peak MiB | worker peak MiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for label, items, got in rows:
        print(
            f"| {label} | {items:,} | {got['status']} | {got['seconds']:.1f} | {got['items_per_s']:,.0f} | "
            f"{got['bytes_running']:,.0f} | {got['bytes_after']:,.0f} | {got['api_mib']:.0f} | {got['worker_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
