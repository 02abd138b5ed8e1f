"""Workers and timers beat in Redis too (the console's overview lists them), on a real redis-server."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from common import keys
from worker.heartbeat import Heartbeat


def test_a_heartbeat_is_written_to_redis_and_removed_on_a_clean_stop(redis_server: str, r: Any, tmp_path: Path) -> None:
    beat = Heartbeat(tmp_path / "worker.alive", "worker", 0.05, redis_server)
    beat.start()
    try:
        assert r.zscore(keys.HEARTBEATS, beat.member) is not None
        assert beat.member.startswith("worker:")
    finally:
        beat.stop()
    assert r.zscore(keys.HEARTBEATS, beat.member) is None
    assert not (tmp_path / "worker.alive").exists()


def test_without_a_redis_url_only_the_file_is_written(r: Any, tmp_path: Path) -> None:
    beat = Heartbeat(tmp_path / "timers.alive", "timers", 0.05)
    beat.write()
    assert (tmp_path / "timers.alive").exists() and r.zcard(keys.HEARTBEATS) == 0
