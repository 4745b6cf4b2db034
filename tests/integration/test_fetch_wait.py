"""BORDERFLOW_FETCH_MAX_WAIT_MS reaches the aiokafka consumer the worker fetches with (Faust would fix it at 1.5 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from aiokafka.consumer import fetcher as aiokafka_fetcher

from streams.app.assembly import create_app
from streams.engine.seam import BatchingConsumer
from streams.settings import Settings
from tests.support import unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("wait_ms", [250, 1500])
def test_the_worker_consumer_fetches_with_the_configured_wait(
    kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_ms: int
) -> None:
    """The consumer Faust's transport makes for the worker, started on Kafka, has its fetcher ask for the setting."""
    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", aiokafka_fetcher.PartitionRecords)  # create_app reads inputs bare
    app_id = unique("app")
    settings = Settings(
        kafka=kafka,
        app_id=app_id,
        topic_prefix=app_id + ".",
        data_dir=tmp_path,
        store="memory",
        broker="kafka",
        evict_dead_members=False,
        fetch_max_wait_ms=wait_ms,
    )
    app = create_app(settings)

    async def started_fetcher_wait() -> int:
        worker_consumer = cast(BatchingConsumer, app.consumer)
        consumer = worker_consumer._thread._create_consumer(loop=asyncio.get_running_loop())  # as the worker's consumer thread does
        await consumer.start()
        try:
            return int(consumer._fetcher._fetch_max_wait_ms)  # what every FetchRequest it sends carries
        finally:
            await consumer.stop()

    assert asyncio.run(started_fetcher_wait()) == wait_ms

