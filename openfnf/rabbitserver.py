"""A RabbitMQ node of its own, for the tests and the bench: node name, ports, data, logs and epmd.

Never the machine's own RabbitMQ (5672): `start_rabbitmq` runs Debian's `rabbitmq-server` (package
`rabbitmq-server`; `binary` names another) as the current user on free ports, with no plugins (no
management or Prometheus listener), HOME in its directory (so the Erlang cookie is its own) and its
own epmd port (the epmd it starts is stopped with it by `close`).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from openfnf.redisserver import free_port

# The Debian package's script that runs the node as the calling user (/usr/sbin's wrapper switches to
# the rabbitmq user and its home).
CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/sbin/rabbitmq-server")


def find_rabbitmq() -> str | None:
    """Path of a rabbitmq-server script to run, or None."""
    return next((p for p in CANDIDATES if os.path.exists(p)), None) or shutil.which("rabbitmq-server")


@dataclass
class RabbitServer:
    """One RabbitMQ node started by the tests."""

    base: Path
    binary: str
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        """The Erlang node name."""
        return f"openfnf-test-{self.port}@localhost"

    @property
    def url(self) -> str:
        """The AMQP URL of this node (guest may log in over loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        """Environment of rabbitmq-server and its tools for this node."""
        home = self.base / "home"
        home.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_PID_FILE=str(self.base / "rabbitmq.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's (it names the system node)
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        (self.base / "rabbitmq-env.conf").write_text("")
        return env

    def start(self, timeout: float = 90) -> None:
        """Start the node (again, on the same data) and wait until it takes AMQP connections."""
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([self.binary], env=self.env(), stdout=log, stderr=log, cwd=self.base, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self.proc.returncode}): {self.tail()}")
            if self.answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not take connections within {timeout} s: {self.tail()}")

    def answers(self) -> bool:
        """Whether an AMQP connection opens now."""
        import amqp

        conn = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest", connect_timeout=1)
        try:
            conn.connect()
        except Exception:  # noqa: BLE001 - not up yet
            return False
        try:
            conn.close()
        except Exception:  # noqa: BLE001, S110 - it answered, which is all we asked
            pass
        return True

    def os_pid(self) -> int | None:
        """The Erlang VM's process id (from the node's pid file), for CPU accounting."""
        try:
            return int((self.base / "rabbitmq.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 60) -> None:
        """Stop the node (SIGTERM: RabbitMQ shuts down cleanly; its data stays for `start`)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        """Stop the node and the epmd it started."""
        self.stop()
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        if os.path.exists(epmd):
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self.env(), capture_output=True, timeout=10, check=False)

    def tail(self, lines: int = 30) -> str:
        """The end of the node's output and log, for failure messages."""
        text = ""
        for path in [self.base / "server.out", *sorted((self.base / "log").glob("*.log"))]:
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text


def start_rabbitmq(base: Path, binary: str | None = None) -> RabbitServer:
    """A started RabbitMQ node with its data under `base` (RuntimeError when there is no rabbitmq-server)."""
    found = binary or find_rabbitmq()
    if found is None:
        raise RuntimeError("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    server = RabbitServer(base=base, binary=found)
    base.mkdir(parents=True, exist_ok=True)
    server.start()
    return server
