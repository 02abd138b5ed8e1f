"""A worker whose tasks keep failing on Redis errors a restart may cure fails `--check` once that has
lasted heartbeat_stale_seconds; Redis being unreachable does not (issue 17)."""
from __future__ import annotations

import time
from pathlib import Path

import redis
from redis.exceptions import ClusterDownError

from worker.heartbeat import Heartbeat, judge

STALE = 30.0


def _doc(beat: Heartbeat, at: float) -> dict[str, object]:
    """The file as the beat thread writes it at `at` (the heartbeat fresh, the loop running)."""
    return {**beat.snapshot(), "at": at, "loop_at": at}


def test_lasting_client_errors_fail_the_check_and_a_success_clears_them(tmp_path: Path) -> None:
    beat = Heartbeat(tmp_path / "w.alive", "worker", 1.0)
    beat.state = "ready"
    beat.task_outcome(redis.ResponseError("MOVED 3999 127.0.0.1:7001"))
    now = time.time()
    assert judge(_doc(beat, now), now, STALE, 0, True).alive  # not for long yet
    verdict = judge(_doc(beat, now + STALE + 1), now + STALE + 1, STALE, 0, True)
    assert not verdict.alive and "Redis errors" in verdict.reason
    beat.task_outcome(redis.ResponseError("again"))  # still failing: the first failure's time stays
    assert not judge(_doc(beat, now + STALE + 1), now + STALE + 1, STALE, 0, True).alive
    beat.task_outcome(None)
    assert judge(_doc(beat, now + 1), now + 1, STALE, 0, True).alive


def test_redis_away_and_other_errors_do_not_fail_the_check(tmp_path: Path) -> None:
    beat = Heartbeat(tmp_path / "w.alive", "worker", 1.0)
    beat.state = "ready"
    for error in (redis.ConnectionError("refused"), redis.TimeoutError("slow"), ClusterDownError("down"), ValueError("a handler's")):
        beat.task_outcome(error)
        assert beat.failing_since is None, error
