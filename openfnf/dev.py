"""`openfnf dev`: the whole service on one machine, with an embedded redis-server, until Ctrl-C."""
from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from openfnf.redisserver import RedisServer, start_redis, wait_for_ports

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


class Supervisor:
    """Starts redis-server and the child processes; stops them all on SIGINT/SIGTERM."""

    def __init__(self, opts: DevOptions) -> None:
        self.opts = opts
        self.redis: RedisServer | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops children in order.
        env = {**env, "OPENFNF_HEARTBEAT_FILE": str((self.opts.data_dir / f"{name}.alive").resolve())}  # one per process
        proc = subprocess.Popen([sys.executable, "-m", "openfnf", *args], env=env, start_new_session=True)
        self.children.append((name, proc))
        return proc

    def run(self) -> int:
        """Run until told to stop; the exit status is 0 after a clean stop."""
        opts = self.opts
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        key_id, secret, cred_path = ensure_credentials(opts)
        self.redis = start_redis(opts.data_dir)
        (opts.data_dir / "redis.url").write_text(self.redis.url + "\n", encoding="utf-8")  # for `openfnf throttle --data-dir`
        client_host = "127.0.0.1" if opts.host in ("0.0.0.0", "") else opts.host  # for the terminal client's --data-dir (openfnf/client.py)
        (opts.data_dir / "endpoint").write_text(f"http://{client_host}:{opts.port}\n", encoding="utf-8")
        if self.stopping:  # told to stop while starting
            self.redis.stop()
            return 0
        env = dict(os.environ)
        for var in ("OPENFNF_BROKER_URL", "OPENFNF_ACCESS_KEY_ID", "OPENFNF_ACCESS_KEY_SECRET"):
            env.pop(var, None)
        env.update(
            OPENFNF_REDIS_URL=self.redis.url,
            OPENFNF_CREDENTIALS=str(cred_path.resolve()),
            OPENFNF_TOKEN_SECRET=ensure_token_secret(opts.data_dir),
            OPENFNF_HOST=opts.host,
            OPENFNF_PORT=str(opts.port),
            OPENFNF_ACCOUNT_ID=opts.account_id,
        )
        if opts.functions is not None:
            env["OPENFNF_FUNCTIONS"] = str(opts.functions.resolve())
        # Functions may call the API back (ReportTask*, StartExecution) with the dev key, as FC
        # functions do with their role's credentials.
        env.update(OPENFNF_FUNCTIONS_ACCESS_KEY_ID=key_id, OPENFNF_FUNCTIONS_ACCESS_KEY_SECRET=secret)
        env.update(opts.extra_env)
        code = 0
        try:
            if opts.api_processes > 1:
                env["OPENFNF_REUSE_PORT"] = "1"
            apis = [self._spawn("api" if i == 0 else f"api-{i + 1}", ["api"], env) for i in range(opts.api_processes)]
            for i in range(opts.workers):
                self._spawn(f"worker-{i + 1}", ["worker", "--hostname", f"worker{i + 1}@%h"], env)
            self._spawn("timers", ["timers"], env)
            wait_for_ports(opts.port, apis, host=opts.host)
            shown_host = "127.0.0.1" if opts.host in ("0.0.0.0", "") else opts.host
            from openfnf.consoleaddr import console_line  # the console's address, when it is on (issue 15)

            print(
                "OpenFnF is running.\n"
                f"  endpoint:          http://{shown_host}:{opts.port}\n"
                f"{console_line(shown_host, opts.port, env)}"
                f"  region:            cn-hangzhou\n"
                f"  access key id:     {key_id}\n"
                f"  access key secret: {secret}\n"
                f"  data dir:          {opts.data_dir.resolve()}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
            while not self.stopping:
                for name, proc in self.children:
                    if proc.poll() is not None and not self.stopping:
                        print(f"openfnf dev: {name} exited with {proc.returncode}; stopping everything", file=sys.stderr, flush=True)
                        code = 1
                        self.stopping = True
                time.sleep(0.2)
        except RuntimeError as exc:
            print(f"openfnf dev: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            self.shutdown()
        return code

    def _on_signal(self, *_: object) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        """SIGTERM every child, wait for each, then stop redis-server (flushing the AOF)."""
        for _, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
