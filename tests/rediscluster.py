"""A real Redis Cluster for tests: N primaries (and replicas) of the bundled redis-server, on free
ports, with the slots assigned and the cluster formed here (no system Redis, no redis-cli).

Failure to start raises: the tests that need a cluster fail, never skip.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from openfnf.redisserver import free_port, redis_server_binary, start_redis, wait_for_port
from tests.conftest import Service

SLOTS = 16384


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    dir: Path

    def freeze(self) -> None:
        """SIGSTOP: the node stops answering (a hung or cut-off shard) until thaw()."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def myid(self) -> str:
        return str(self.client().execute_command("CLUSTER", "MYID").decode())

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Cluster:
    """A running cluster: `url` for OPENFNF_REDIS_URL (with OPENFNF_REDIS_CLUSTER=true)."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes if n.alive)

    def client(self) -> redis.cluster.RedisCluster:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes if n.alive], socket_timeout=5)

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
        pid = primary.client().execute_command("CLUSTER", "MYID").decode()
        for n in self.nodes:
            if n is not primary and n.alive:
                for line in n.client().execute_command("CLUSTER", "NODES").decode().splitlines():
                    f = line.split()
                    if "myself" in f[2] and f[3] == pid:
                        return n
        return None

    def owner(self, key: str) -> Node:
        """The node serving `key`'s slot now (as a live node's CLUSTER NODES says)."""
        return self.owner_of_slot(key_slot(key.encode()))

    def owner_of_slot(self, slot: int) -> Node:
        """The node serving `slot` now (as a live node's CLUSTER NODES says)."""
        view = next(n for n in self.nodes if n.alive).client().execute_command("CLUSTER", "NODES")
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
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            batch = source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1)
            if not batch:
                break
            source.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *batch)
            if between_keys is not None:
                between_keys()
        for n in self.primaries():
            n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def kill(self, node: Node) -> None:
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


def _start_node(base: Path, binary: str) -> Node:
    port = _free_pair()
    d = base / str(port)
    d.mkdir(parents=True)
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "", "--appendonly", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500",
        "--cluster-replica-validity-factor", "0",
        "--cluster-require-full-coverage", "no",  # a shard down fails its slots only (the outage tests) "--daemonize", "no", "--logfile", "redis.log",
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, proc, timeout=30)
    return Node(port, proc, d)


def start_cluster(base: Path, primaries: int = 3, replicas: int = 0) -> Cluster:
    """Start and form a cluster of `primaries` primaries, each with `replicas` replicas."""
    binary = os.environ.get("OPENFNF_TEST_REDIS_BINARY") or redis_server_binary()
    cluster = Cluster()
    try:
        for _ in range(primaries * (1 + replicas)):
            cluster.nodes.append(_start_node(base, binary))
        first = cluster.nodes[0].client()
        for n in cluster.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        per = SLOTS // primaries
        for i, n in enumerate(cluster.nodes[:primaries]):
            lo, hi = i * per, (SLOTS - 1 if i == primaries - 1 else (i + 1) * per - 1)
            n.client().execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))  # ADDSLOTSRANGE needs 7.0
        ids = [n.client().execute_command("CLUSTER", "MYID").decode() for n in cluster.nodes[:primaries]]
        for j, n in enumerate(cluster.nodes[primaries:]):
            target = ids[j % primaries]
            deadline = time.monotonic() + 30
            while target.encode() not in n.client().execute_command("CLUSTER", "NODES"):
                if time.monotonic() > deadline:
                    raise RuntimeError("replica never learnt of its primary")
                time.sleep(0.05)
            n.client().execute_command("CLUSTER", "REPLICATE", target)
        cluster.wait_ok()
        deadline = time.monotonic() + 30
        while len(cluster.nodes) > 1:  # every node knows every other (the gossip has converged)
            views = [n.client().execute_command("CLUSTER", "NODES").decode().count("connected") for n in cluster.nodes]
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


@contextlib.contextmanager
def running_cluster_service(tmp: Path, workers: int = 1, timers: int = 1, replicas: int = 0, **env: str) -> Iterator[tuple[Service, Cluster]]:
    """OpenFnF as processes with its state on a fresh 3-primary Redis Cluster and its broker on a
    separate single redis-server (kombu cannot use a cluster)."""
    cluster = start_cluster(tmp / "cluster", 3, replicas)
    broker = start_redis(tmp / "broker", aof=False)
    svc = Service(
        workdir=tmp, redis=broker, redis_url=cluster.url, port=free_port(),
        env_extra={"OPENFNF_REDIS_CLUSTER": "true", "OPENFNF_BROKER_URL": broker.url, **env},
    )  # fmt: skip
    try:
        svc.start("api", "api")
        for i in range(workers):
            svc.start(f"worker{i}", "worker", "--hostname", f"w{i}@%h")
        for i in range(timers):
            svc.start(f"timers{i}", "timers")
        yield svc, cluster
    finally:
        svc.close()
        cluster.stop()
