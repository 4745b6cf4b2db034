"""A worker tells Apache Kafka from the embedded broker, and runs the embedded broker's workarounds only on it."""

from __future__ import annotations

import os

import pytest

from streams.defects import resolve_broker
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.skipif(bool(os.environ.get("BORDERFLOW_KAFKA")), reason="the suite's broker is not the Apache Kafka it starts")
def test_apache_kafka_is_detected_and_gets_no_eviction(kafka: str) -> None:
    resolved = resolve_broker(Settings(kafka=kafka))
    assert (resolved.broker, resolved.evict_dead_members) == ("kafka", False)


def test_the_embedded_broker_is_detected_and_gets_the_eviction(embedded_kafka: str) -> None:
    resolved = resolve_broker(Settings(kafka=embedded_kafka))
    assert (resolved.broker, resolved.evict_dead_members) == ("embedded", True)


def test_an_explicit_broker_or_switch_is_kept(embedded_kafka: str) -> None:
    told = resolve_broker(Settings(kafka=embedded_kafka, broker="kafka"))
    assert (told.broker, told.evict_dead_members) == ("kafka", False)
    switched = resolve_broker(Settings(kafka=embedded_kafka, evict_dead_members=False))
    assert (switched.broker, switched.evict_dead_members) == ("embedded", False)
