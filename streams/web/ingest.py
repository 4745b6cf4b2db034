"""``POST /events``: the HTTP front door for systems that cannot speak Kafka.

The body is read whole (bounded in size and time) and every line validated
before anything is published, so a rejected line is never published and a
request cut off mid-body publishes nothing. Valid lines go to their topics,
keyed as the stream expects, and the answer waits for the broker's
acknowledgement: 202 means the events are in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from streams.engine import metrics
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from streams.web.access import bearer_matches, is_loopback
from streams.web.ingest_body import BodyError, LineResult, RecentIds, parse_body, report

log = logging.getLogger(__name__)

#: ``(topic, ids) -> the ids the stream has already seen``, asked of every worker
SeenLookup = Callable[[dict[str, list[str]]], Awaitable[set[str]]]


def ingest_refusal(settings: Settings) -> str | None:
    """Why ingest must stay off for these settings, or None if it may serve."""
    if settings.ingest_token or is_loopback(settings.web_host):
        return None
    return (
        f"POST /events is disabled: the worker listens on {settings.web_host} (not loopback) and "
        "BORDERFLOW_INGEST_TOKEN is not set. Set a token, or bind BORDERFLOW_WEB_HOST to 127.0.0.1."
    )


class Ingest:
    """Authenticates, reads, validates, deduplicates and publishes one request at a time."""

    def __init__(self, settings: Settings, seen: SeenLookup, read_timeout: float = 30.0) -> None:
        self.settings = settings
        self.refusal = ingest_refusal(settings)
        self._token = settings.ingest_token or None
        self._seen = seen
        self._recent = RecentIds(settings.dedup_horizon.total_seconds())
        #: ids that a request is publishing now: a retry must wait for its answer
        self._in_flight: set[str] = set()
        self._publisher: Publisher | None = None
        self._publisher_lock = asyncio.Lock()
        self.read_timeout = read_timeout

    async def close(self) -> None:
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            await publisher.__aexit__(None, None, None)

    def authorize(self, header: str | None) -> BodyError | None:
        if self.refusal is not None:
            return BodyError(403, "BORDERFLOW_INGEST_TOKEN", self.refusal)
        if self._token is None:
            return None
        if not bearer_matches(header, self._token):
            return BodyError(401, "Authorization", "missing or wrong bearer token")
        return None

    async def read(self, content_length: int | None, chunks: Callable[[int], Awaitable[bytes]]) -> bytes:
        """The whole body, or :class:`BodyError` 413 past the limit / 408 if the client is too slow."""
        limit = self.settings.body_limit
        if content_length is not None and content_length > limit:
            raise BodyError(413, "$", f"body too large: {content_length} bytes, at most {limit}")
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while chunk := await chunks(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise BodyError(413, "$", f"body too large: more than {limit} bytes")
                    parts.append(chunk)
        except TimeoutError:
            raise BodyError(408, "$", f"body not received within {self.read_timeout:g} s") from None
        return b"".join(parts)

    async def handle(self, body_format: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Validate, deduplicate and publish a body of ``body_format`` (``json`` or ``ndjson``: see :func:`media_type`).

        Validation runs in a thread: a large body must not hold up the event
        loop (the stream, and every other request) while it is read.
        """
        settings = self.settings
        results = await asyncio.to_thread(
            parse_body, body_format, body, max_event_bytes=settings.max_event_bytes, max_lines=settings.ingest_max_lines
        )
        self._refuse_in_flight(results)
        mine = {line.event.event_id for line in results if line.event is not None}
        self._in_flight |= mine
        try:
            fresh = await self._mark_duplicates(results)
            try:
                await self._publish(fresh)
            except Exception as exc:
                raise BodyError(503, "$", f"could not publish to Kafka, nothing was accepted; retry the request: {exc!r}") from None
            for line in fresh:
                assert line.event is not None
                self._recent.add(line.event.event_id, line.event.event_time)
        finally:
            self._in_flight -= mine
        metrics.observe_ingest(line.status for line in results)
        return report(results)

    def _refuse_in_flight(self, results: Iterable[LineResult]) -> None:
        """409 if another request is still publishing one of these ids: until it answers, nobody knows whether it arrives."""
        busy = [line.event.event_id for line in results if line.event is not None and line.event.event_id in self._in_flight]
        if busy:
            shown = ", ".join(repr(event_id) for event_id in busy[:5]) + (f" and {len(busy) - 5} more" if len(busy) > 5 else "")
            raise BodyError(409, "event_id", f"{shown} being published by another request right now; retry once that request has answered")

    async def _mark_duplicates(self, results: Iterable[LineResult]) -> list[LineResult]:
        """Lines to publish; repeats (in this body, recently ingested, or already counted) become duplicates."""
        fresh: list[LineResult] = []
        in_body: set[str] = set()
        for line in results:
            if line.event is None:
                continue
            event_id = line.event.event_id
            if event_id in self._recent or event_id in in_body:
                line.status = "duplicate"
            else:
                in_body.add(event_id)
                fresh.append(line)
        if not fresh:
            return fresh
        by_topic: dict[str, list[str]] = {}
        for line in fresh:
            assert line.event is not None
            by_topic.setdefault(self.settings.topics.for_type(line.event.type), []).append(line.event.event_id)
        try:
            counted = await self._seen(by_topic)
        except Exception as exc:  # noqa: BLE001 - a peer may be rebalancing; the stream still deduplicates
            log.info("duplicate lookup failed, publishing anyway: %r", exc)
            counted = set()
        kept = []
        for line in fresh:
            assert line.event is not None
            if line.event.event_id in counted:
                line.status = "duplicate"
            else:
                kept.append(line)
        return kept

    async def _publish(self, lines: list[LineResult]) -> None:
        if not lines:
            return
        publisher = await self._ensure_publisher()
        await publisher.deliver([(line.event, line.data) for line in lines if line.event is not None])

    async def _ensure_publisher(self) -> Publisher:
        async with self._publisher_lock:
            if self._publisher is None:
                publisher = Publisher(self.settings)
                await publisher.__aenter__()
                self._publisher = publisher
            return self._publisher
