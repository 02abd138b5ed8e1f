"""Redis work per completed execution of the 10-state Pass flow (issue 17): `INFO commandstats` per command.

    python -m bench.rediswork [--n 3000] [--workers 2] [--front-doors 1] [--by-script] [--cap N] [--json]
    python -m bench.rediswork --callgrind [--n 2000]   # redis-server's instructions per execution instead

Starts OpenFnF as bench scenario 2 runs it (bench/services.py: its own redis-server, `openfnf api`,
solo workers, `openfnf timers`), warms it up, waits until the warm-up's wake-ups are gone, resets
the server's statistics, starts N executions of the 10-state Pass flow with the signed load client
(bench/httpload.py), waits until every one has ended and the safety net has nothing left of them
(the wake-up set is empty), then prints calls and microseconds per completed execution of every
command (`INFO commandstats`), and redis-server CPU per execution (`INFO cpu`, user + system).

Commands a Lua script runs are counted by Redis under their own names too, so EVALSHA's time
already contains theirs: the table marks the script total and the `total (top level)` row counts
EVALSHA and the commands no script runs. The harness's own polling (GET of the running counter,
ZCARD of the wake-up set, INFO) is left out by name; its counts are tiny and fixed per poll.
The timers process polls its sets every `timers_poll_ms` whatever the load: that background
(idle calls/s, measured before the run) is printed too, and is part of the per-execution figure
in the proportion of the run's duration.

With `--callgrind` the service's redis-server runs under valgrind (bench/callgrind.py) and the figure
is its user-space instructions per completed execution: the run's count less the idle polling's (its
count over the idle seconds, scaled to the run's duration). Instructions repeat to within a couple of
percent where CPU time moved by a quarter, so code points compare in one run each: `--code DIR` runs
the service from another checkout (a git worktree of an older commit) under this harness, which then
waits on what every version has (the last execution's status, the drive queue, the wake-up sets);
without `--callgrind` it compares their CPU the same way.
Under valgrind the server is ~30 times slower: read the calls, not the times.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench import callgrind
from bench.flows import fdl_pass_chain
from bench.measure import TERMINAL, load, wait_ended
from bench.services import ACCOUNT, KEY_ID, SECRET, OpenFnF
from common import keys, runcount
from common.records import as_str
from common.scripts import NAMES, source
from common.settings import Settings

N = Settings().partitions  # the wake-up set's partitions (keys.wake) the services use

HARNESS = {"info", "config", "zcard", "keys", "type"}  # the harness's own reads (its GETs are subtracted by count)
# Commands only scripts run here (their time is inside EVALSHA's); others may also be sent at top level
# (EXISTS too: the idle timers gate their partitioned sets with one).
SCRIPTED_ONLY = {"hincrby", "hdel", "lrange", "ltrim", "llen", "expire", "hexists", "zscore", "time"}


def commandstats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) since the last CONFIG RESETSTAT."""
    info: dict[str, Any] = r.info("commandstats")
    out = {}
    for name, stats in info.items():
        command = name.removeprefix("cmdstat_")
        out[command] = (int(stats["calls"]), int(stats["usec"]))
    return out


def server_cpu(r: redis.Redis) -> tuple[float, float]:
    """redis-server's user and system CPU seconds so far (INFO cpu)."""
    info: dict[str, Any] = r.info("cpu")
    return float(info["used_cpu_user"]), float(info["used_cpu_sys"])


def wait_quiet(r: redis.Redis, timeout: float) -> int:
    """Until no execution runs and the safety net holds no wake-up (the timers released every one);
    how many GETs it sent."""
    deadline, gets = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        running = runcount.read_total_sync(r, ACCOUNT, Settings().running_shards)
        gets += 1
        if running <= 0 and not any(r.zcard(keys.wake(p, N)) for p in range(N)):
            return gets
        time.sleep(0.25)
    raise RuntimeError("executions or wake-ups left after the timeout")


def wait_settled(r: redis.Redis, flow_id: str, last: str, timeout: float) -> None:
    """Until the last execution started has ended, the drive queue is empty and every wake-up set is: on the
    key layout of any version (--code), with a command or two per poll. (The wake-up sets are found with
    one KEYS once the starts are in: a SCAN per poll would cost the server more than the run.)"""
    deadline, queue = time.monotonic() + timeout, Settings().drive_queue
    record = keys.execution(keys.execution_tag(flow_id, last))
    while as_str(r.hget(record, "status")) not in TERMINAL or r.llen(queue):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{last} did not end, or drives were left queued")
        time.sleep(0.5)
    wake_sets = [k for k in r.keys(keys.PREFIX + "*wake*") if r.type(k) == b"zset"]
    while any(r.zcard(k) for k in wake_sets):
        if time.monotonic() > deadline:
            raise RuntimeError("wake-ups left after the timeout")
        time.sleep(0.5)


def by_script(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """Script name -> (calls, usec) of the EVALSHAs in the slow log (every command logged: `--by-script`)."""
    names = {hashlib.sha1(source(name).encode()).hexdigest(): name for name in NAMES}
    out: dict[str, tuple[int, int]] = {}
    for entry in r.slowlog_get(1_000_000):
        command = entry["command"].split() if isinstance(entry["command"], str) else entry["command"].decode("utf-8", "replace").split()
        if command and command[0].lower() == "evalsha" and len(command) > 1:
            name = names.get(command[1], command[1])
            calls, usec = out.get(name, (0, 0))
            out[name] = (calls + 1, usec + int(entry["duration"]))
    return out


def measure(
    n: int, workers: int, front_doors: int, workdir: Path, scripts: bool = False, cap: int = 0, instructions: bool = False,
    code: Path | None = None,
) -> dict[str, Any]:
    """Run the workload once; the figures per completed execution (`instructions`: under callgrind; `code`: the
    service from another checkout)."""
    env = {"OPENFNF_MAX_RUNNING_EXECUTIONS": str(cap)} if cap else None
    settled = instructions or code is not None  # wait on what every version has (another checkout's keys differ)
    binary, out = callgrind.wrapper(workdir) if instructions else (None, workdir / "none")
    svc = OpenFnF(workdir, workers=workers, api_processes=front_doors, env=env, redis_binary=binary, code=code).start()
    try:
        assert svc.r is not None
        r = svc.r
        flow_id = svc.create_flow("f", fdl_pass_chain(10))
        spec: dict[str, Any] = {"host": "127.0.0.1", "port": svc.port, "kind": "fnf", "key_id": KEY_ID, "secret": SECRET,
                                "flow": "f", "concurrency": 64, "duration": 600, "keep_indexes": True}  # fmt: skip
        warm = load({**spec, "prefix": "w", "count": 100})
        wait_ended(r, flow_id, [f"w{i}" for i in warm["ok_indexes"]], 120)
        if settled:
            wait_settled(r, flow_id, f"w{max(warm['ok_indexes'])}", 120)
        else:
            wait_quiet(r, 120)
        r.config_resetstat()
        pid = svc.redis.process.pid if svc.redis is not None else 0
        if instructions:
            callgrind.zero(pid)
        idle_s = 3.0
        time.sleep(idle_s)  # the timers' polling when nothing runs
        if instructions:
            callgrind.dump(pid)
        idle = commandstats(r)
        r.config_resetstat()
        if scripts:
            r.config_set("slowlog-max-len", 1_000_000)
            r.config_set("slowlog-log-slower-than", 0)
            r.slowlog_reset()
        cpu0, t0 = server_cpu(r), time.monotonic()
        result = load({**spec, "prefix": "x", "count": n})
        names = [f"x{i}" for i in result["ok_indexes"]]
        gets = 0
        if settled:
            wait_settled(r, flow_id, f"x{max(result['ok_indexes'])}", 600)
        else:
            gets = wait_quiet(r, 600)
        seconds = time.monotonic() - t0
        if instructions:
            callgrind.dump(pid)
        stats = commandstats(r)
        user, system = (b - a for a, b in zip(cpu0, server_cpu(r), strict=True))
        per_script = by_script(r) if scripts else {}
        ended = wait_ended(r, flow_id, names, 10)
        done = ended.by_status.get("Succeeded", 0)
        if done != n:
            raise RuntimeError(f"{done} of {n} executions succeeded: {ended.by_status}")
        if "get" in stats:
            calls, usec = stats["get"]
            stats["get"] = (calls - gets, round(usec * (calls - gets) / max(1, calls)))
        rows = {c: v for c, v in stats.items() if c not in HARNESS and v[0] > 0}
        idle_rows = {c: v for c, v in idle.items() if c not in HARNESS}
        return {
            "n": n, "seconds": seconds, "cpu_us": (user + system) / n * 1e6, "cpu_user_us": user / n * 1e6, "cpu_sys_us": system / n * 1e6,
            "commands": {c: {"calls": calls / n, "usec": usec / n} for c, (calls, usec) in sorted(rows.items())},
            "scripts": {s: {"calls": calls / n, "usec": usec / n} for s, (calls, usec) in sorted(per_script.items())},
            "idle_per_s": {c: {"calls": calls / idle_s, "usec": usec / idle_s} for c, (calls, usec) in sorted(idle_rows.items())},
            **({"instructions": _instructions(out, idle_s, seconds, n)} if instructions else {}),
        }  # fmt: skip
    finally:
        svc.stop()


def _instructions(out: Path, idle_s: float, seconds: float, n: int) -> dict[str, float]:
    """redis-server's instructions per execution from callgrind's two dumps (the idle seconds', then the run's)."""
    idle, run = callgrind.totals(out)[:2]
    background = idle / idle_s * seconds
    return {"per_execution": (run - background) / n, "idle_per_s": idle / idle_s, "background_share": background / run}


def table(res: dict[str, Any]) -> str:
    """The Markdown table of one measurement."""
    lines = [
        f"{res['n']} executions of the 10-state Pass flow in {res['seconds']:.1f} s; "
        f"redis-server CPU {res['cpu_us']:.1f} us per execution (INFO cpu: user {res['cpu_user_us']:.1f} + system {res['cpu_sys_us']:.1f})",
        "",
    ]
    if "instructions" in res:
        ins = res["instructions"]
        lines[0] = (f"{res['n']} executions of the 10-state Pass flow in {res['seconds']:.1f} s, redis-server under callgrind: "
                    f"**{ins['per_execution'] / 1000:.1f}k instructions per execution** (user space; the timers' idle polling, "
                    f"{ins['background_share']:.1%} of the run's, left out). Times below are under valgrind: read the calls")  # fmt: skip
    lines += [
        "| command | calls/exec | usec/exec |",
        "|---|---:|---:|",
    ]
    commands = res["commands"]
    top_calls = top_usec = 0.0
    for name, v in sorted(commands.items(), key=lambda kv: -kv[1]["usec"]):
        scripted = name in SCRIPTED_ONLY
        if not scripted:
            top_calls += v["calls"]
            top_usec += v["usec"]
        label = f"{name} (in scripts)" if scripted else name
        lines.append(f"| {label} | {v['calls']:.2f} | {v['usec']:.2f} |")
    all_usec = sum(v["usec"] for v in commands.values())
    lines.append(f"| **total (top level)** | {top_calls:.2f} | **{top_usec:.2f}** |")
    lines.append(f"| total (every row) | | {all_usec:.2f} |")
    idle_us = sum(v["usec"] for c, v in res["idle_per_s"].items() if c not in SCRIPTED_ONLY) * res["seconds"] / res["n"]
    lines.append(f"| of the top-level total: the timers' idle polling over the run | | {idle_us:.2f} |")
    if res["scripts"]:
        lines += ["", "| script (slow log) | calls/exec | usec/exec |", "|---|---:|---:|"]
        for name, v in sorted(res["scripts"].items(), key=lambda kv: -kv[1]["usec"]):
            lines.append(f"| {name} | {v['calls']:.2f} | {v['usec']:.2f} |")
    idle = res["idle_per_s"]
    lines += ["", "Background when idle, per second: " + (", ".join(
        f"{c} {v['calls']:.0f} calls {v['usec']:.0f} us" for c, v in idle.items()) or "none")]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="python -m bench.rediswork", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="executions measured (default 3000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--front-doors", type=int, default=1)
    parser.add_argument("--by-script", action="store_true", help="also time each script (slow log; slows Redis a little)")
    parser.add_argument("--cap", type=int, default=0,
                        help="OPENFNF_MAX_RUNNING_EXECUTIONS (default 0, as scenario 2; the service's default is 10000)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    parser.add_argument("--callgrind", action="store_true",
                        help="redis-server under valgrind: its instructions per execution (repeatable, unlike CPU time)")
    parser.add_argument("--code", action="append", default=None, metavar="DIR[=LABEL]",
                        help="run the service from this checkout (a git worktree of an older commit; repeat it to compare "
                             "several, `.` for this one), one after the other, the harness waiting on what every version "
                             "has; LABEL names it in the table and chart (default: its commit, date and subject)")
    parser.add_argument("--chart", type=Path, default=None, help="with several --code: draw the comparison (SVG) here")
    args = parser.parse_args(argv)
    if args.callgrind and (missing := callgrind.available()):
        parser.error(missing)
    if args.chart is not None and (len(args.code or []) < 2 or not args.callgrind):
        parser.error("--chart needs --callgrind and two --code checkouts or more")
    points: list[tuple[str, float]] = []
    for code in args.code or [None]:
        directory, _, label = (code or "").partition("=")
        with tempfile.TemporaryDirectory(prefix="rediswork-") as tmp:
            where = Path(directory).resolve() if code else None
            res = measure(args.n, args.workers, args.front_doors, Path(tmp), args.by_script, args.cap, instructions=args.callgrind, code=where)
        if where is not None:
            points.append((label or checkout_label(where), res["instructions"]["per_execution"] if args.callgrind else res["cpu_us"]))
            print(f"## {points[-1][0]}\n")
        print(table(res) + "\n")
        if args.json:
            print(json.dumps(res, indent=1))
    if len(points) > 1:
        print(comparison(points, args.n, instructions=args.callgrind))
        if args.chart is not None:
            from bench.charts import instructions_chart

            caption = f"python -m bench.rediswork --callgrind --n {args.n} --code ...: bundled redis-server, 2 solo workers, AOF"
            print(f"chart: {instructions_chart(points, args.chart, caption)}")
    return 0


def checkout_label(code: Path) -> str:
    """A checkout's commit and date (`git log`), or its path where git cannot say."""
    got = subprocess.run(["git", "-C", str(code), "log", "-1", "--format=%h %cs %s"], capture_output=True, text=True, check=False)
    line = got.stdout.strip()
    return line[:72] if got.returncode == 0 and line else str(code)


def comparison(points: list[tuple[str, float]], n: int, instructions: bool = True) -> str:
    """The table of instructions (or, not under callgrind, CPU us) per execution by checkout, each against the first."""
    first = points[0][1]
    what, unit, scale = ("instructions", "k instructions", 1000.0) if instructions else ("CPU (INFO cpu, user + system)", "us", 1.0)
    lines = [f"redis-server {what} per completed execution, {n} executions each", "",
             f"| checkout | {unit} | vs the first |", "|---|---:|---:|"]  # fmt: skip
    for label, value in points:
        lines.append(f"| {label} | {value / scale:.1f} | {(value - first) / first:+.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
