"""`python -m bench`: OpenFnF, the peer (moto) and the bare limits side by side in one run, as a table of ratios.

    python -m bench                       # everything (about 12-15 minutes on 2 cores), writes bench/results/latest.md
    python -m bench --quick               # a smoke run with small counts (about 3 minutes)
    python -m bench --only start,latency  # some parts: bare, start, pass10, scaling, latency, fanout, memory, dmap, cluster
    python -m bench --profile DIR         # also py-spy the front door (scenario 1) and a worker (2 and 4) into DIR
    python -m bench --tracing             # OpenFnF traced at 100% sampling, exporting to a sink in this process

See bench/README.md for how to read the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import bare, charts, cluster, completion, distributed_map, latency, memory, otlpsink, profiling, services, start
from bench.context import Ctx, Sizes
from bench.table import Report, Row, chosen, render

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs"
PARTS = ("bare", "start", "pass10", "scaling", "latency", "fanout", "memory", "dmap", "cluster")


def _bare(ctx: Ctx) -> None:
    noop = bare.noop_http(ctx)
    setnx = bare.redis_setnx(ctx)
    for w in ctx.sizes.workers:
        bare.celery_noop(ctx, w)
    rep = ctx.report
    rep.add(Row("0 bare limits", "aiohttp no-op, 64 conns", "/s", None, None, noop["rate"], "no-op",
                note=f"p50 {noop['p50_ms']:.1f} ms, p99 {noop['p99_ms']:.1f} ms, {noop['server_cpu_us']:.0f} µs server CPU per request"))  # fmt: skip
    rep.add(Row("0 bare limits", "load client's own ceiling: no-op requests per client CPU second", "/s", None, None,
                1e6 / max(1.0, noop["client_cpu_per_req_us"]), "client", note=f"{noop['client_cpu_per_req_us']:.0f} µs per request"))  # fmt: skip
    if setnx.get("c64"):
        rep.add(Row("0 bare limits", "redis-benchmark SET NX, 64 conns / 1 conn / 64 conns x16 pipelined", "/s", None, None, setnx["c64"],
                    "SET NX", note=f"{setnx.get('c1', 0):,.0f}/s with 1 conn, {setnx.get('c64_p16', 0):,.0f}/s pipelined"))  # fmt: skip
    rep.add(Row("0 bare limits", "redis-py SET NX, 1 conn, unpipelined", "/s", None, None, setnx["redis_py_c1"], "SET NX"))
    for w in ctx.sizes.workers:
        rep.add(Row("0 bare limits", f"no-op Celery tasks, {w} solo worker{'s' if w > 1 else ''}", "/s", None, None, ctx.facts[f"celery{w}"], "Celery",
                    note=f"{ctx.facts[f'celery{w}_cpu_us']:.0f} µs worker CPU per task"))  # fmt: skip


STEPS: dict[str, Callable[[Ctx], None]] = {
    "bare": _bare,
    "start": start.run,
    "pass10": completion.pass10,
    "scaling": completion.scaling,
    "latency": latency.run,
    "fanout": completion.fanout,
    "memory": memory.run,
    "dmap": distributed_map.run,
    "cluster": cluster.run,
}


def _versions() -> str:
    import aiohttp
    import celery
    import redis

    try:
        import moto

        moto_version = moto.__version__
    except ImportError:
        moto_version = "missing"
    return f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, celery {celery.__version__}, redis-py {redis.__version__}, moto {moto_version}"


def _commit() -> str:
    """The checked-out commit (short), marked if product files differ from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "api", "common", "worker", "openfnf"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" with uncommitted product changes" if dirty else "") if head else "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print the table, write it (unless --no-write)."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts and 3 s loads: a smoke run, not for the record")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts (default all: {','.join(PARTS)})")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest.md", help="where the table is written")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--charts", type=Path, default=None, metavar="DIR",
                    help="where the charts go (default docs/, except with --quick or --no-write: none unless given)")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR", help="py-spy the front door and a worker into DIR")
    ap.add_argument("--repeat", type=int, default=None, help="attempts per throughput figure, best kept (default 2; --quick 1)")
    ap.add_argument("--front-doors", type=int, default=None, metavar="N",
                    help="front door processes sharing the port in scenarios 2 and 4 (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (process logs, redis data)")
    ap.add_argument("--broker", default=None, metavar="URL",
                    help="scenario 2 also on this Celery broker (amqp://...), or `rabbitmq`: a RabbitMQ node of its own")
    ap.add_argument("--comment", default="", help="a line added under the header (e.g. why the machine was busy)")
    ap.add_argument("--tracing", action="store_true",
                    help="OpenFnF's processes export every span (100%% sampling) over OTLP/HTTP to a sink in this process")
    args = ap.parse_args(argv)
    parts = chosen(args.only, PARTS, ap, "parts")
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeat is not None:
        sizes = dataclasses.replace(sizes, repeat=max(1, args.repeat))
    if args.front_doors is not None:
        sizes = dataclasses.replace(sizes, front_doors=max(1, args.front_doors))
    load_start = os.getloadavg()
    commit_start = _commit()
    started = dt.datetime.now(dt.UTC)
    workdir = Path(tempfile.mkdtemp(prefix="openfnf-bench-"))
    ctx = Ctx(workdir=workdir, sizes=sizes, report=Report(), profile_dir=args.profile)
    sink = otlpsink.OtlpSink().start() if args.tracing else None
    if sink is not None:
        services.TRACING_ENV.update(sink.env())
    failed: list[str] = []
    t0 = time.monotonic()
    rabbit = None
    try:
        if args.broker == "rabbitmq":
            from openfnf.rabbitserver import start_rabbitmq

            rabbit = start_rabbitmq(workdir / "rabbitmq")
            ctx.broker = rabbit.url
            ctx.facts["rabbitmq_pid"] = rabbit.os_pid()
        elif args.broker:
            ctx.broker = args.broker
        for part in PARTS:  # always in this order: the bare limits first, the rows that use them after
            if part not in parts:
                continue
            print(f"[{time.monotonic() - t0:6.0f}s] {part} ...", file=sys.stderr, flush=True)
            ctx.mark(part)
            try:
                STEPS[part](ctx)
            except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others' figures
                traceback.print_exc()
                failed.append(f"{part}: {type(exc).__name__}: {exc}")
    finally:
        if ctx.moto is not None:
            ctx.moto.stop()
        if sink is not None:
            sink.stop()
        if rabbit is not None:
            rabbit.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    commit_end = _commit()
    commit = commit_start if commit_end == commit_start else f"{commit_start} at the start, {commit_end} at the end (the code changed during the run)"
    for f in failed:
        ctx.report.note(f"FAILED {f}")
    if ctx.facts.get("attempts") and sizes.repeat > 1:
        tried = "; ".join(f"{k}: {', '.join(f'{v:,}' for v in vs)}" for k, vs in ctx.facts["attempts"].items())
        ctx.report.note(f"Throughput rows are the best of {sizes.repeat} attempts (per second): {tried}.")
    ctx.report.note("Load average (1 min) as each part started: " + ", ".join(ctx.facts.get("load", [])) + ".")
    header = [
        "# OpenFnF benchmark: side by side with the peer (moto) and the bare limits",
        "",
        (
            f"- date: {started:%Y-%m-%d %H:%M} UTC; took {time.monotonic() - t0:.0f} s; {'QUICK smoke run (small counts), ' if args.quick else ''}"
            f"command: `{' '.join(['python -m bench', *(argv if argv is not None else sys.argv[1:])])}`"
        ),
        (
            f"- machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}); load average at start "
            f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} (1/5/15 min), at end {load_end[0]:.2f}"
        ),
        f"- code: {commit}; {_versions()}; everything (client, servers, workers, redis-server) on this one machine",
    ]
    if args.comment:
        header.append(f"- {args.comment}")
    if sink is not None:
        header.append(f"- TRACING ON: every OpenFnF process exported all its spans (100% sampling) to an OTLP/HTTP sink in the bench process: {sink.summary()}")
    text = render(ctx.report, header)
    if args.profile is not None:
        profiles = [("api-start.txt", "Front door during scenario 1 (StartExecution)"),
                    ("worker-pass10.txt", "Worker 0 during scenario 2 (10-state Pass)"),
                    ("worker-fanout.txt", "Worker 0 during scenario 4 (Map x100 calls)")]  # fmt: skip
        summary = "\n".join(profiling.summarize(args.profile / f, t) for f, t in profiles if (args.profile / f).exists())
        args.profile.mkdir(parents=True, exist_ok=True)
        (args.profile / "summary.md").write_text(summary, encoding="utf-8")
        print(summary)
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"written to {args.out}", file=sys.stderr)
    chart_dir = args.charts or (None if args.quick or args.no_write else DOCS)
    if chart_dir is not None:
        caption = f"python -m bench, {started:%Y-%m-%d}, {os.cpu_count()} cores, load {load_start[0]:.2f} at start, code {commit_start}"
        drawn = charts.write(ctx.facts, chart_dir, caption)
        wanted = {"dmap", "cluster"} & set(parts)
        if wanted and not drawn:
            print("no chart drawn: it needs matplotlib (pip install 'openfnf[bench]')", file=sys.stderr)
        for path in drawn:
            print(f"chart written to {path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
