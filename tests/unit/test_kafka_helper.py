"""The Apache Kafka test helper's pure parts (streams/broker/apache_kafka.py)."""

from __future__ import annotations

from streams.broker.apache_kafka import new_cluster_id


def test_cluster_ids_never_start_with_a_dash() -> None:
    """``kafka-storage format -t -abc...`` reads such an id as an option: one start in 64 failed so."""
    ids = [new_cluster_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)
