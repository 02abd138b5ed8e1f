"""`openfnf dev`: the whole service on one machine, with an embedded redis-server, until Ctrl-C."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from openfnf.redisserver import RedisServer, listening_pids, start_redis, wait_for_ports

ALPHABET = string.ascii_letters + string.digits


@dataclass
class DevOptions:
    """What `openfnf dev` was asked for."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    api_processes: int = 1  # front doors sharing the port (SO_REUSEPORT)
    functions: Path | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    account_id: str = "1234567890"
    credentials: Path | None = None  # accounts, keys and policies as `openfnf api --credentials` reads them; the dev key is added
    extra_env: dict[str, str] = field(default_factory=dict)


def ensure_credentials(opts: DevOptions) -> tuple[str, str, Path]:
    """The dev key pair: as given, else the one kept in the data dir, else a new one (kept there)."""
    path = opts.data_dir / "credentials.yaml"
    key_id, secret = opts.access_key_id, opts.access_key_secret
    if not (key_id and secret) and path.exists():
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            first = doc["accounts"][0]["access_keys"][0]
            key_id, secret = str(first["id"]), str(first["secret"])
        except (KeyError, IndexError, TypeError):
            key_id = secret = None
    if not (key_id and secret):
        key_id = "LTAI" + "".join(secrets.choice(ALPHABET) for _ in range(16))
        secret = "".join(secrets.choice(ALPHABET) for _ in range(30))
    if path.exists():
        try:
            first = (yaml.safe_load(path.read_text(encoding="utf-8")) or {})["accounts"][0]["access_keys"][0]
            if (str(first["id"]), str(first["secret"])) == (key_id, secret):
                return key_id, secret, path  # the same dev key: keep what else was added (accounts, keys, policies)
        except (KeyError, IndexError, TypeError, yaml.YAMLError):
            pass
    doc = {"accounts": [{"id": opts.account_id, "access_keys": [{"id": key_id, "secret": secret, "enabled": True}]}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return key_id, secret, path


def ensure_token_secret(data_dir: Path) -> str:
    """The HMAC key for task tokens, kept in the data dir so tokens survive restarts."""
    path = data_dir / "token-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


class DataDirBusy(RuntimeError):
    """Another `openfnf dev` runs on this data dir."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold data_dir/dev.lock (flock) with this process's pid in it, for as long as the returned file
    stays open (here or in a child it was passed to); DataDirBusy naming the pid of the `openfnf dev`
    that holds it. Taken before anything else is touched: a second instance must not rewrite keys or
    remove the first one's socket. The children inherit the lock, so processes left running by a
    supervisor that was killed (SIGKILL) still keep a new one out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "dev.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if holder.isdigit() and not Path(f"/proc/{holder}").exists() and Path("/proc/self").exists():
            raise DataDirBusy(
                f"another openfnf dev (pid {holder}) ran on data dir {data_dir.resolve()} and is gone, but processes "
                f"it started still run (`fuser -v {data_dir.resolve() / 'dev.lock'}` lists them); stop them first"
            ) from None
        raise DataDirBusy(
            f"another openfnf dev (pid {holder}) runs on data dir {data_dir.resolve()}; "
            "stop it first, or give this one another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


STAY_UP_SECONDS = 30.0  # a child that ran this long stayed up: its crash count starts again
MAX_FAILED_STARTS = 3  # exits in a row before the child was ready: it cannot stay up, everything stops
FIRST_BACKOFF_SECONDS = 0.5  # the first restart's delay, doubled for each crash in a row
MAX_BACKOFF_SECONDS = 15.0
START_TIMEOUT_SECONDS = 120.0  # every child ready within this, or everything stops
BANNER_SETTLE_SECONDS = 1.0  # the banner waits this long after the last child is ready: Celery says "ready." just after
MAX_REDIS_STARTS = 3  # attempts to start a dead redis-server again before everything stops


def exit_text(code: int) -> str:
    """How a child ended, for a person: `was killed by SIGKILL`, `exited with 1`."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def _say(message: str) -> None:
    print(f"openfnf dev: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    """One supervised child process and what its supervisor knows of its restarts."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    started: float  # time.monotonic() of the latest start
    ready: bool = False  # listening (front door) or its heartbeat said ready since the latest start
    ready_at: float = 0.0  # time.monotonic() when it was first seen ready since the latest start
    crashes: int = 0  # exits in a row, none after running STAY_UP_SECONDS
    failed_starts: int = 0  # exits in a row before it was ready
    restart_at: float | None = None  # time.monotonic() at which it starts again, while it is down


class Supervisor:
    """Starts redis-server and the child processes, restarts any of them that crashes (with back-off),
    and stops them all on SIGINT/SIGTERM or when one cannot stay up."""

    def __init__(self, opts: DevOptions) -> None:
        self.opts = opts
        self.redis: RedisServer | None = None
        self.redis_port: int | None = None  # TCP port when the data dir's path is too long for a socket
        self.children: list[Child] = []
        self.stopping = False
        self.lock: IO[str] | None = None

    def _heartbeat(self, name: str) -> Path:
        return (self.opts.data_dir / f"{name}.alive").resolve()

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self._heartbeat(name).unlink(missing_ok=True)  # "ready" is read from a file this start writes
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops children in order.
        return subprocess.Popen([sys.executable, "-m", "openfnf", *args], env=env, start_new_session=True, pass_fds=self._lock_fds())

    def _lock_fds(self) -> tuple[int, ...]:
        """The lock on the data dir, for children to inherit."""
        return () if self.lock is None else (self.lock.fileno(),)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        env = {**env, "OPENFNF_HEARTBEAT_FILE": str(self._heartbeat(name))}  # one per process
        child = Child(name, args, env, self._popen(name, args, env), time.monotonic())
        self.children.append(child)
        return child

    def _is_ready(self, child: Child) -> bool:
        """A front door listens on the port; a worker or timers process wrote `ready` in its heartbeat."""
        if child.args[0] == "api":
            if not Path("/proc/net/tcp").exists():  # no way to tell which process listens
                return time.monotonic() - child.started > 5
            return bool(listening_pids(self.opts.port, [child.proc.pid]))
        try:
            doc = json.loads(self._heartbeat(child.name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and doc.get("pid") == child.proc.pid and doc.get("state") == "ready"

    def _watch_children(self, now: float) -> bool:
        """Restart crashed children (each after its back-off); False when one cannot stay up."""
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.proc, child.started, child.ready, child.restart_at = self._popen(child.name, child.args, child.env), now, False, None
                continue
            code = child.proc.poll()
            if code is None:
                if not child.ready and self._is_ready(child):
                    child.ready, child.ready_at, child.failed_starts = True, now, 0
                continue
            if now - child.started >= STAY_UP_SECONDS:
                child.crashes = 0
            child.crashes += 1
            if not child.ready and child.args[0] != "api" and self._is_ready(child):
                child.ready = True  # it said ready in its heartbeat, then died before the next look (its first task killed it)
            if not child.ready:
                child.failed_starts += 1
            if child.failed_starts >= MAX_FAILED_STARTS:
                _say(f"{child.name} {exit_text(code)}, {child.failed_starts} times in a row before it was ready; "
                     "it cannot stay up: stopping everything")  # fmt: skip
                return False
            delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (child.crashes - 1))
            _say(f"{child.name} {exit_text(code)}; restarting it in {delay:g} s (crash {child.crashes} in a row)")
            child.restart_at = now + delay
        return True

    def _watch_redis(self) -> bool:
        """Start redis-server again on the same data dir and address if it died; False if it cannot."""
        assert self.redis is not None
        code = self.redis.process.poll()
        if code is None:
            return True
        _say(f"redis-server {exit_text(code)}; starting it again on {self.opts.data_dir.resolve()} (same address, data from its AOF)")
        for attempt in range(MAX_REDIS_STARTS):
            if self.stopping:
                return True
            try:
                self.redis = start_redis(self.opts.data_dir, port=self.redis_port, pass_fds=self._lock_fds())
            except RuntimeError as exc:
                _say(f"redis-server did not start again: {exc}")
                time.sleep(FIRST_BACKOFF_SECONDS * 2**attempt)
                continue
            _say(f"redis-server is back at {self.redis.url}")
            return True
        _say("redis-server cannot stay up: stopping everything")
        return False

    def run(self) -> int:
        """Run until told to stop; the exit status is 0 after a clean stop."""
        opts = self.opts
        try:
            self.lock = lock_data_dir(opts.data_dir)  # before anything else is touched
        except DataDirBusy as exc:
            _say(str(exc))
            return 1
        try:
            return self._run()
        finally:
            self.lock.close()

    def _run(self) -> int:
        from api.credentials import CredentialsError, read_credentials_file
        from common.settings import Settings

        opts = self.opts
        if opts.credentials is not None:
            try:
                read_credentials_file(opts.credentials)  # refuse a bad file now, not in the front door's log
            except (CredentialsError, OSError) as exc:
                _say(f"--credentials: {exc}")
                return 1
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)  # its terminal closed: stop cleanly, leave nothing running
        key_id, secret, cred_path = ensure_credentials(opts)
        self.redis = start_redis(opts.data_dir, pass_fds=self._lock_fds())
        if self.redis.url.startswith("redis://"):
            self.redis_port = int(self.redis.url.rsplit(":", 1)[1].split("/")[0])
        (opts.data_dir / "redis.url").write_text(self.redis.url + "\n", encoding="utf-8")  # for `openfnf throttle --data-dir`
        client_host = "127.0.0.1" if opts.host in ("0.0.0.0", "") else opts.host  # for the terminal client's --data-dir (openfnf/client.py)
        (opts.data_dir / "endpoint").write_text(f"http://{client_host}:{opts.port}\n", encoding="utf-8")
        if self.stopping:  # told to stop while starting
            self.redis.stop()
            return 0
        env = dict(os.environ)
        for var in ("OPENFNF_BROKER_URL", "OPENFNF_ACCESS_KEY_ID", "OPENFNF_ACCESS_KEY_SECRET"):
            env.pop(var, None)
        env.setdefault("OPENFNF_HEARTBEAT_INTERVAL_SECONDS", "1")  # "ready" shows within a second
        env.update(
            OPENFNF_REDIS_URL=self.redis.url,
            OPENFNF_TOKEN_SECRET=ensure_token_secret(opts.data_dir),
            OPENFNF_HOST=opts.host,
            OPENFNF_PORT=str(opts.port),
            OPENFNF_ACCOUNT_ID=opts.account_id,
        )
        if opts.credentials is None:
            env["OPENFNF_CREDENTIALS"] = str(cred_path.resolve())
        else:  # the user's file, watched for changes by the front door, and the dev key beside it
            env.update(
                OPENFNF_CREDENTIALS=str(opts.credentials.resolve()),
                OPENFNF_ACCESS_KEY_ID=key_id,
                OPENFNF_ACCESS_KEY_SECRET=secret,
            )
        if opts.functions is not None:
            env["OPENFNF_FUNCTIONS"] = str(opts.functions.resolve())
        # Functions may call the API back (ReportTask*, StartExecution) with the dev key, as FC
        # functions do with their role's credentials.
        env.update(OPENFNF_FUNCTIONS_ACCESS_KEY_ID=key_id, OPENFNF_FUNCTIONS_ACCESS_KEY_SECRET=secret)
        env.update(opts.extra_env)
        region = Settings().region  # what the children read from the same environment
        code = 0
        try:
            if opts.api_processes > 1:
                env["OPENFNF_REUSE_PORT"] = "1"
            apis = [self._spawn("api" if i == 0 else f"api-{i + 1}", ["api"], env) for i in range(opts.api_processes)]
            for i in range(opts.workers):
                self._spawn(f"worker-{i + 1}", ["worker", "--hostname", f"worker{i + 1}@%h"], env)
            self._spawn("timers", ["timers"], env)
            wait_for_ports(opts.port, [a.proc for a in apis], host=opts.host)
            began, shown = time.monotonic(), False
            while not self.stopping:
                now = time.monotonic()
                if not (self._watch_redis() and self._watch_children(now)):
                    code = 1
                    break
                if not shown and all(c.ready and now - c.ready_at >= BANNER_SETTLE_SECONDS for c in self.children):
                    # Last, once every child is up: the Celery banners and start-up warnings come before it.
                    print(self._banner(key_id, secret, region, env), flush=True)
                    shown = True
                elif not shown and now - began > START_TIMEOUT_SECONDS:
                    late = ", ".join(c.name for c in self.children if not c.ready)
                    _say(f"{late} not ready within {START_TIMEOUT_SECONDS:g} s: stopping everything")
                    code = 1
                    break
                time.sleep(0.2)
        except RuntimeError as exc:
            _say(str(exc))
            code = 1
        finally:
            self.shutdown()
        return code

    def _banner(self, key_id: str, secret: str, region: str, env: dict[str, str]) -> str:
        from openfnf.consoleaddr import console_line  # the console's address, when it is on (issue 15)

        opts = self.opts
        shown_host = "127.0.0.1" if opts.host in ("0.0.0.0", "") else opts.host
        endpoint = f"{shown_host}:{opts.port}"
        rule = "=" * 78
        lines = [
            "",
            rule,
            "OpenFnF is running.",
            f"  endpoint:          http://{endpoint}",
            *([console_line(shown_host, opts.port, env).rstrip("\n")] if console_line(shown_host, opts.port, env) else []),
            f"  region:            {region}",
            f"  access key id:     {key_id}",
            f"  access key secret: {secret}",
            f"  data dir:          {opts.data_dir.resolve()}",
        ]
        if opts.credentials is not None:
            lines.append(f"  credentials:       {opts.credentials.resolve()} (and the dev key above, account {opts.account_id})")
        lines += [
            "For the SDK examples (README), in a second terminal:",
            f"  export OPENFNF_ENDPOINT={endpoint} OPENFNF_ACCESS_KEY_ID={key_id} OPENFNF_ACCESS_KEY_SECRET={secret}",
            "Press Ctrl-C to stop.",
            rule,
        ]
        return "\n".join(lines)

    def _on_signal(self, *_: object) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        """SIGTERM every child, wait for each, then stop redis-server (flushing the AOF)."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in self.children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()
