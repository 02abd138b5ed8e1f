"""A real Redis Cluster on this machine: N primaries (and replicas) of the bundled redis-server, on
free ports, with the slots assigned and the cluster formed here (no system Redis, no redis-cli).

Used by the tests (tests/rediscluster.py) and the benchmark (`python -m bench --only cluster`).
Failure to start raises: whoever needs a cluster fails, never skips.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from openfnf.redisserver import redis_server_binary, wait_for_port

SLOTS = 16384


def command(client: redis.Redis, *args: object) -> Any:
    """One raw command (CLUSTER ...) on a node's own client."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@dataclass
class Node:
    """One redis-server of the cluster."""

    port: int
    process: subprocess.Popen[bytes]
    dir: Path

    def freeze(self) -> None:
        """SIGSTOP: the node stops answering (a hung or cut-off shard) until thaw()."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        self.process.send_signal(signal.SIGCONT)

    def myid(self) -> str:
        """The node's cluster id."""
        return str(command(self.client(), "CLUSTER", "MYID").decode())

    def client(self) -> redis.Redis:
        """A plain client of this node alone."""
        return redis.Redis(port=self.port, socket_timeout=5)

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None


@dataclass
class Cluster:
    """A running cluster: `url` for OPENFNF_REDIS_URL (with OPENFNF_REDIS_CLUSTER=true)."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The live nodes as seed nodes: `redis://127.0.0.1:p1,127.0.0.1:p2,...`."""
        return "redis://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes if n.alive)

    def client(self) -> RedisCluster:
        """A cluster client on the live nodes."""
        seeds = [ClusterNode("127.0.0.1", n.port) for n in self.nodes if n.alive]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=seeds, socket_timeout=5)

    def primaries(self) -> list[Node]:
        """The live nodes that are primaries now."""
        out = []
        for n in self.nodes:
            if n.alive:
                try:
                    if n.client().info("replication")["role"] == "master":
                        out.append(n)
                except redis.RedisError:
                    pass
        return out

    def replica_of(self, primary: Node) -> Node | None:
        """A live replica of `primary`, if any."""
        pid = command(primary.client(), "CLUSTER", "MYID").decode()
        for n in self.nodes:
            if n is not primary and n.alive:
                for line in command(n.client(), "CLUSTER", "NODES").decode().splitlines():
                    f = line.split()
                    if "myself" in f[2] and f[3] == pid:
                        return n
        return None

    def owner(self, key: str) -> Node:
        """The node serving `key`'s slot now (as a live node's CLUSTER NODES says)."""
        return self.owner_of_slot(key_slot(key.encode()))

    def owner_of_slot(self, slot: int) -> Node:
        """The node serving `slot` now (as a live node's CLUSTER NODES says)."""
        view = command(next(n for n in self.nodes if n.alive).client(), "CLUSTER", "NODES")
        text = view.decode() if isinstance(view, bytes) else str(view)
        for line in text.splitlines():
            fields = line.split()
            if "master" not in fields[2]:
                continue
            for part in fields[8:]:
                lo, _, hi = part.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(slot)

    def move_slot(self, slot: int, target: Node, between_keys: Callable[[], None] | None = None) -> None:
        """Reshard `slot` to `target` as redis-cli would: IMPORTING/MIGRATING, the keys moved one at a time
        (`between_keys` runs between two, so clients meet ASK meanwhile), then the slot assigned everywhere."""
        source = self.owner_of_slot(slot)
        if source is target:
            return
        src_id, dst_id = source.myid(), target.myid()
        command(target.client(), "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        command(source.client(), "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            batch = command(source.client(), "CLUSTER", "GETKEYSINSLOT", slot, 1)
            if not batch:
                break
            command(source.client(), "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *batch)
            if between_keys is not None:
                between_keys()
        for n in self.primaries():
            command(n.client(), "CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def kill(self, node: Node) -> None:
        """SIGKILL a node and reap it."""
        node.process.kill()
        node.process.wait()

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok and agrees on the slots."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [n.client().cluster("info")["cluster_state"] for n in self.nodes if n.alive]
                if all(s == "ok" for s in states):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every live node."""
        for n in self.nodes:
            if n.alive:
                n.process.kill()
                n.process.wait()


def _free_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _start_node(base: Path, binary: str, appendonly: bool) -> Node:
    port = _free_pair()
    d = base / str(port)
    d.mkdir(parents=True)
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
        "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500",
        "--cluster-replica-validity-factor", "0",
        "--cluster-require-full-coverage", "no",  # a shard down fails its slots only (the outage tests)
        "--maxmemory-policy", "noeviction",
        "--hash-max-ziplist-value", "512",  # as openfnf/redisserver.py's single server: the same encodings
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, proc, timeout=30)
    return Node(port, proc, d)


def start_cluster(base: Path, primaries: int = 3, replicas: int = 0, appendonly: bool = False) -> Cluster:
    """Start and form a cluster of `primaries` primaries, each with `replicas` replicas
    (`appendonly`: AOF `everysec` on every node, as `openfnf dev` runs its one server)."""
    binary = os.environ.get("OPENFNF_TEST_REDIS_BINARY") or redis_server_binary()
    cluster = Cluster()
    try:
        for _ in range(primaries * (1 + replicas)):
            cluster.nodes.append(_start_node(base, binary, appendonly))
        first = cluster.nodes[0].client()
        for n in cluster.nodes[1:]:
            command(first, "CLUSTER", "MEET", "127.0.0.1", n.port)
        per = SLOTS // primaries
        for i, n in enumerate(cluster.nodes[:primaries]):
            lo, hi = i * per, (SLOTS - 1 if i == primaries - 1 else (i + 1) * per - 1)
            command(n.client(), "CLUSTER", "ADDSLOTS", *range(lo, hi + 1))  # ADDSLOTSRANGE needs 7.0
        ids = [command(n.client(), "CLUSTER", "MYID").decode() for n in cluster.nodes[:primaries]]
        for j, n in enumerate(cluster.nodes[primaries:]):
            target = ids[j % primaries]
            deadline = time.monotonic() + 30
            while target.encode() not in command(n.client(), "CLUSTER", "NODES"):
                if time.monotonic() > deadline:
                    raise RuntimeError("replica never learnt of its primary")
                time.sleep(0.05)
            command(n.client(), "CLUSTER", "REPLICATE", target)
        cluster.wait_ok()
        deadline = time.monotonic() + 30
        while len(cluster.nodes) > 1:  # every node knows every other (the gossip has converged)
            views = [command(n.client(), "CLUSTER", "NODES").decode().count("connected") for n in cluster.nodes]
            if all(v == len(cluster.nodes) for v in views):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("cluster gossip did not converge")
            time.sleep(0.05)
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster
