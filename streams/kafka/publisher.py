"""Publishing validated events to their topics, keyed as the stream expects."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from events.model import Event
from events.partitioning import home_key
from streams.kafka.clients import client_options
from streams.settings import Settings


class Publisher:
    """An aiokafka producer that waits for every send to be acknowledged."""

    def __init__(self, settings: Settings, **producer: Any) -> None:
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,  # a send retried after a lost answer is written once
            linger_ms=5,
            max_batch_size=256 * 1024,
            compression_type=settings.compression_type,
            **client_options(settings),
            **producer,
        )
        self._pending: list[asyncio.Future[Any]] = []
        self.topics = settings.topics

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a producer that could not start still holds its client
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, event: Event, data: bytes, topic: str | None = None) -> None:
        """Queue ``data`` (the event's original bytes) for ``event``'s topic."""
        future = await self._producer.send(topic or self.topics.for_type(event.type), data, key=home_key(event))
        self._pending.append(future)
        if len(self._pending) >= 10_000:
            await self.flush()

    async def deliver(self, items: list[tuple[Event, bytes]]) -> None:
        """Send ``(event, bytes)`` pairs and wait for exactly these to be acknowledged.

        Safe to call concurrently: unlike :meth:`flush`, it waits only for its own sends.
        """
        futures = [await self._producer.send(self.topics.for_type(event.type), data, key=home_key(event)) for event, data in items]
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, data: bytes, key: bytes | None = None) -> None:
        self._pending.append(await self._producer.send(topic, data, key=key))

    async def flush(self) -> int:
        """Wait until everything queued is acknowledged; raise if anything failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
        return len(pending)
