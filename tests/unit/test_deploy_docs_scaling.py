"""docs/deploy.md's "Scaling past one Redis" section says what issue 17 asks of it: the topology, every
setting it involves, RabbitMQ's consumer_timeout, the end-of-execution channel, and a marked place
for the bench's cluster figures."""
from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def section() -> str:
    text = DEPLOY.read_text(encoding="utf-8")
    start = text.index("\n## Scaling past one Redis\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_section_names_the_topology_and_its_settings() -> None:
    text = section()
    for setting in ("OPENFNF_REDIS_URL", "OPENFNF_REDIS_CLUSTER", "OPENFNF_BROKER_URL", "OPENFNF_PARTITIONS", "OPENFNF_LEASE_MS"):
        assert f"`{setting}" in text, setting
    assert "cannot live on a cluster" in text and "refused at start" in text


def test_the_section_documents_consumer_timeout_and_sharded_pubsub() -> None:
    text = section()
    assert "`consumer_timeout`" in text and "30 minutes on a default server" in text
    assert "SPUBLISH" in text and "Redis 7.0" in text and "PUBLISH on one channel" in text


def test_the_section_keeps_a_marked_place_or_figures_for_the_cluster_bench() -> None:
    text = section()
    assert "<!-- bench: cluster figures go here" in text or "completed/s" in text
