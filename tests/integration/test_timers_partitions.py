"""The timers processes share the partitioned sets (issue 17): each partition is polled by one process
at a time, all of them by someone, and a dead process's partitions are taken over after its lease."""
from __future__ import annotations

import time

import redis

from common import keys
from common.scripts import Scripts
from common.settings import Settings
from worker.timers import Timers

N = 16


def _timers(r: redis.Redis, lease_ms: int) -> Timers:
    return Timers(r, r, Settings(partitions=N, lease_ms=lease_ms, _env_file=None))  # type: ignore[call-arg]


def _now() -> int:
    return int(time.time() * 1000)


def test_partitions_are_shared_without_overlap_and_taken_over_when_a_process_dies(r: redis.Redis) -> None:
    a, b, c = _timers(r, 600), _timers(r, 600), _timers(r, 600)
    for _ in range(6):  # a few renewals: the processes count each other and settle on their shares
        owned = [set(t.share(_now())) for t in (a, b, c)]
        for t in (a, b, c):
            t._renew_at = 0
    assert owned[0] | owned[1] | owned[2] == set(range(N))
    assert not (owned[0] & owned[1] or owned[0] & owned[2] or owned[1] & owned[2])
    assert all(len(o) <= -(-N // 3) for o in owned)
    holders = {p: r.get(keys.partition_lease(p, N)) for p in range(N)}
    assert {h.decode() for h in holders.values() if h} == {a.id, b.id, c.id}
    # c dies (stops renewing): once its leases and its membership expire, a and b take its partitions.
    deadline = time.monotonic() + 10
    while True:
        now = int(time.time() * 1000)
        got = [set(t.share(now)) for t in (a, b)]
        for t in (a, b):
            t._renew_at = 0
        if got[0] | got[1] == set(range(N)):
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    assert not got[0] & got[1]
    a.release()
    assert all(r.get(keys.partition_lease(p, N)) != a.id.encode() for p in range(N))


def test_a_poll_peeks_with_plain_commands_and_claims_only_where_something_is_due(r: redis.Redis) -> None:
    t = _timers(r, 10_000)
    now = _now()
    sets = [keys.timers, keys.wake, keys.activities, keys.schedules_due, keys.maprun_wake]
    r.zadd(keys.wake(3, N), {"later": now + 60_000})  # not due
    assert t.due(now, list(range(N)), sets) == [[]] * len(sets)
    r.zadd(keys.wake(3, N), {"due": now - 1})
    r.zadd(keys.timers(7, N), {"t": now})
    # The timers set had no key at the last poll: this one learns it has members (one EXISTS), the next peeks it.
    assert t.due(now, list(range(N)), sets) == [[], [3], [], [], []]
    assert t.due(now, list(range(N)), sets) == [[7], [3], [], [], []]
    assert t.due(now, [0, 1, 2], sets) == [[]] * len(sets)  # only the partitions asked for
    # A loop over nothing due runs no script at all (issue 17: claim_due on every set of every partition
    # every poll was most of an idle Redis's work).
    r.delete(keys.wake(3, N), keys.timers(7, N))
    r.config_resetstat()
    r.config_set("slowlog-log-slower-than", 0)
    r.config_set("slowlog-max-len", 100_000)
    r.slowlog_reset()
    polls: list[int] = []
    t.on_tick = lambda: polls.append(1) if len(polls) < 5 else setattr(t, "stopping", True)
    try:
        t.run()
        logged = [e["command"] for e in r.slowlog_get(100_000)]
    finally:
        r.config_set("slowlog-log-slower-than", 10_000)
    claim_due = Scripts(r).sha["claim_due"].encode()
    stats = r.info("commandstats")
    # Every set empty: one EXISTS per set a poll, no peek partition by partition (a single Redis).
    assert len(polls) == 5 and stats["cmdstat_exists"]["calls"] >= 5 * len(sets) and "cmdstat_zrangebyscore" not in stats
    assert logged and not [c for c in logged if claim_due in c]


def test_the_safety_nets_sets_are_looked_at_every_rescue_poll_the_others_every_poll(r: redis.Redis) -> None:
    t = Timers(r, r, Settings(partitions=N, timers_poll_ms=50, rescue_poll_ms=500, _env_file=None))  # type: ignore[call-arg]
    every = {keys.timers, keys.schedules_due, keys.maprun_wake}
    nets = {keys.wake, keys.activities}
    now = _now()
    assert {key for key, _ in t.polled(now)} == every | nets  # the first poll looks at every set
    for later in (50, 250, 499):
        assert {key for key, _ in t.polled(now + later)} == every
    assert {key for key, _ in t.polled(now + 500)} == every | nets
    assert {key for key, _ in t.polled(now + 550)} == every
    # A wake-up due now is rescued by the loop no later than a rescue poll after its deadline.
    tag = keys.execution_tag("f-cadence", "e1")
    r.hset(keys.execution(tag), mapping={"status": "Running", "acct": "1", "flow": "f"})
    r.rpush(keys.inbox(tag), '{"t": "Started"}')
    r.zadd(keys.wake_for(tag, N), {tag: _now() - 1})
    published: list[list[str]] = []
    t.publish_drives = published.append  # type: ignore[method-assign]
    t._rescue_at = armed = _now() + 300  # the last look at the safety nets was 200 ms ago: the next is 300 ms away
    deadline = time.monotonic() + 10
    while not published:
        now = _now()
        owned = t.share(now)
        served = t.polled(now)
        for (_, serve), due_parts in zip(served, t.due(now, owned, [key for key, _ in served]), strict=True):
            if due_parts:
                serve(now, due_parts)
        assert time.monotonic() < deadline, "the wake-up was never rescued"
        time.sleep(0.05)
    assert published == [[tag]] and _now() >= armed  # not before the next look, though due from the start
