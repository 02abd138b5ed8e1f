"""redis-server under valgrind's callgrind: user-space instructions, which do not move with the machine's load.

CPU time on a shared 2-core machine moved by a quarter between runs of the same code (bench/README.md,
"Redis work per execution"); instructions repeat to within a percent or two. bench.rediscost counts a
replay's, bench.rediswork (`--callgrind`) the real service's; this module is what both use:

- `wrapper(directory)`: an executable that runs the bundled redis-server under callgrind (pass it as
  start_redis's `binary`), and the file its counts go to;
- `zero(pid)` and `dump(pid)`: callgrind_control's counters reset and dump, while the server runs;
- `totals(out)`: the instructions in each file the server's callgrind wrote (a dump each, and one at exit).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from openfnf.redisserver import redis_server_binary


def available() -> str:
    """'' when valgrind and callgrind_control are on PATH, else what is missing (Debian's `valgrind` package)."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    return "" if not missing else f"{' and '.join(missing)} not found: apt-get install -y valgrind"


def wrapper(directory: Path) -> tuple[str, Path]:
    """(a redis-server executable running under callgrind, the callgrind output file it writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "callgrind.out"
    binary = directory / "redis-under-callgrind"
    binary.write_text(f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} {redis_server_binary()} "$@"\n')
    binary.chmod(0o755)
    return str(binary), out


def zero(pid: int) -> None:
    """Reset the running server's counters."""
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True, timeout=60)


def dump(pid: int) -> None:
    """Write the counters since the last zero or dump to a file of their own (out.1, out.2, ...), and reset them."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True, timeout=60)


def totals(out: Path) -> list[int]:
    """The instructions in each of callgrind's files for `out`: the dumps in order (out.1, out.2, ...), then
    `out` itself once the server has exited (callgrind creates it at start and fills it in at exit)."""
    files = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    counts = [_total(f) for f in files]
    at_exit = _total(out) if out.exists() else None
    if any(c is None for c in counts):
        raise RuntimeError(f"a dump of {out} has no totals")
    return [c for c in (*counts, at_exit) if c is not None]


def _total(path: Path) -> int | None:
    """The instructions callgrind counted in one file (its `totals:` or `summary:` line), None if not written yet."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    return None
