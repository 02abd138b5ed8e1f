"""gcra.lua against a real redis-server: burst, retry-after, all-or-nothing charging, the running cap beside it, rate."""
from __future__ import annotations

import threading
import time

import redis

from api.throttle import CAPPED, Check
from common import keys
from common.scripts import Scripts

A = keys.gcra_bucket("acct1", "account", "", "StartExecution")
B = keys.gcra_bucket("acct1", "access_key", "LTAIkey", "StartExecution")
SHARDS = 4
SLOW = 1e9  # microseconds per request: one request per 1000 s, so no refill happens during a test


def check(buckets: list[tuple[str, float, int]], cap: int = 0) -> Check:
    args: list[object] = [len(buckets)]
    for _, interval, burst in buckets:
        args += [repr(interval), burst]
    return Check([b[0] for b in buckets], args, cap, "acct1", SHARDS)


def admit(s: Scripts, buckets: list[tuple[str, float, int]], cap: int = 0) -> list[int]:
    """What the front door does (api/admission.py): the count's shards and gcra.lua in one round trip, the
    verdict from both, and a charge refused by the cap given back."""
    c = check(buckets, cap)
    verdict, value, charged = c.verdict(s.pipeline_sync(lambda pipe: c.queue(pipe, s, False)))
    if charged and verdict == CAPPED:
        s.gcra_refund(keys=c.keys, args=c.args)
    return [verdict, value]


def server_us(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1_000_000 + int(usec)


def test_a_full_bucket_admits_burst_then_tells_when_to_retry(r: redis.Redis) -> None:
    s = Scripts(r)
    assert [admit(s, [(A, SLOW, 3)]) for _ in range(3)] == [[0, 0]] * 3
    verdict, ms = admit(s, [(A, SLOW, 3)])
    assert verdict == 1
    assert 999_000 < ms <= 1_000_000  # one interval (1000 s) minus the little time the test took
    assert 0 < r.pttl(A) <= 3 * 1_000_000 + 1  # the key lives only while the bucket is not full


def test_a_refused_request_charges_no_bucket(r: redis.Redis) -> None:
    s = Scripts(r)
    both = [(A, SLOW, 5), (B, SLOW, 2)]
    assert admit(s, both) == [0, 0]
    assert admit(s, both) == [0, 0]
    assert admit(s, both)[0] == 1  # B is empty
    # A was charged twice, not three times: three more fit, then it is empty too.
    assert [admit(s, [(A, SLOW, 5)])[0] for _ in range(4)] == [0, 0, 0, 1]


def test_the_running_cap_refuses_without_charging(r: redis.Redis) -> None:
    s = Scripts(r)
    r.set(keys.running("acct1", 0), 1)
    r.set(keys.running("acct1", SHARDS - 1), 2)  # the count is the sum of the shards: 3
    assert admit(s, [(A, SLOW, 5)], cap=3) == [2, 3]
    assert admit(s, [], cap=3) == [2, 3]  # the cap alone, with no rule
    assert admit(s, [(A, SLOW, 5)], cap=4) == [0, 0]
    # The refused request's charge was given back: of the burst of 5, one is spent, four fit.
    assert [admit(s, [(A, SLOW, 5)])[0] for _ in range(5)] == [0, 0, 0, 0, 1]
    r.set(keys.running("acct1", 1), 10**6)
    assert admit(s, [(B, SLOW, 5)], cap=0) == [0, 0]  # 0: no cap check at all


def test_waiting_the_advertised_time_is_enough(r: redis.Redis) -> None:
    s = Scripts(r)
    interval = 50_000.0  # 20 per second
    assert admit(s, [(A, interval, 1)]) == [0, 0]
    verdict, ms = admit(s, [(A, interval, 1)])
    assert verdict == 1 and 0 < ms <= 50
    time.sleep(ms / 1000)  # exactly what the client is told to do
    assert admit(s, [(A, interval, 1)]) == [0, 0]


def test_concurrent_callers_get_burst_plus_rate_times_elapsed(redis_server: str, r: redis.Redis) -> None:
    """Two clients hammer one bucket of 200/s, burst 20; the admitted count follows the Redis clock."""
    interval, burst = 5_000.0, 20
    admitted = [0, 0]
    stop = threading.Event()

    def hammer(i: int) -> None:
        client = redis.Redis.from_url(redis_server)
        s = Scripts(client)
        while not stop.is_set():
            if admit(s, [(A, interval, burst)])[0] == 0:
                admitted[i] += 1
        client.close()

    start = server_us(r)
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while server_us(r) - start < 1_000_000 and time.monotonic() < deadline:  # one second of the Redis clock
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    elapsed_s = (server_us(r) - start) / 1e6
    expected = burst + 200 * elapsed_s
    total = sum(admitted)
    assert min(admitted) > 0  # both callers got some
    assert total <= expected + 1  # never more than the rule allows
    assert total >= 0.8 * expected  # and not far below while offered far more
