"""The body of ``POST /events``: media types, lines, and what each line became.

Pure functions, so the endpoint's rules can be tested without a server: the
events' own wire format (one event, validated) is ``events/``; the HTTP side
(media types, status codes, the ingest's memory of recent ids) is here. The
HTTP view in ``streams/web/ingest.py`` reads the body, calls :func:`parse_body`,
checks the valid lines for duplicates, publishes them, and answers with
:func:`report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from events.model import Event
from events.validation import InvalidEvent, validate

JSON: Final = "application/json"
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
Status = Literal["accepted", "duplicate", "rejected"]


class BodyError(ValueError):
    """The request as a whole cannot be read; nothing from it is published."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, "reason": self.reason}


@dataclass(slots=True)
class LineResult:
    """One line of the body: the event and its bytes, or why it was rejected."""

    line: int
    data: bytes
    event: Event | None = None
    error: InvalidEvent | None = None
    status: Status = "rejected"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "status": self.status}
        if self.event is not None:
            out |= {"event_id": self.event.event_id, "type": self.event.type}
        if self.error is not None:
            out |= {"field": self.error.field, "reason": self.error.reason, "error": str(self.error)}
        return out


def media_type(content_type: str | None) -> str:
    """``"json"`` or ``"ndjson"`` for a Content-Type header; :class:`BodyError` (415) otherwise."""
    if not content_type:
        raise BodyError(415, "Content-Type", f"missing: send {JSON} (one event) or application/x-ndjson (one event per line)")
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BodyError(415, "Content-Type", f"unsupported charset {value.strip()[:32]!r}: events are UTF-8")
    if kind == JSON:
        return "json"
    if kind in NDJSON_TYPES:
        return "ndjson"
    raise BodyError(415, "Content-Type", f"unsupported media type {kind[:64]!r}: send {JSON} or application/x-ndjson")


def _line(number: int, data: bytes, max_event_bytes: int) -> LineResult:
    if len(data) > max_event_bytes:
        return LineResult(number, data, error=InvalidEvent("$", f"oversize: {len(data)} bytes, at most {max_event_bytes}"))
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = "invalid UTF-8" if "utf-8" in str(exc).lower() else "invalid JSON"
        return LineResult(number, data, error=InvalidEvent("$", f"{reason}: {exc}"))
    try:
        event = validate(obj)
        return LineResult(number, data, event=event, status="accepted")
    except InvalidEvent as exc:
        return LineResult(number, data, error=exc)
    except RecursionError:
        return LineResult(number, data, error=InvalidEvent("$", "too deeply nested"))


def parse_body(kind: str, body: bytes, *, max_event_bytes: int, max_lines: int = 10_000) -> list[LineResult]:
    """Validate every line of a body; raise :class:`BodyError` if there is nothing to read, or too much.

    At most ``max_lines`` events (non-blank lines) per body, so that neither
    the work nor the answer (one result per line) grows past a bound: more is
    a 413, checked before any line is validated.

    A ``json`` body is one event: bytes that are not JSON at all are a 400, a
    JSON value that is not a valid event is one rejected line. In an
    ``ndjson`` body each non-blank line stands alone. Accepted lines keep their
    exact bytes (surrounding whitespace aside), which is what gets published.
    """
    if not body.strip():
        raise BodyError(400, "$", "empty body: send one JSON event, or NDJSON with one event per line")
    if kind == "json":
        data = body.strip()
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BodyError(400, "$", f"invalid JSON: {exc}") from None
        except RecursionError:
            raise BodyError(400, "$", "invalid JSON: too deeply nested") from None
        return [_line(1, data, max_event_bytes)]
    lines = [(number, data) for number, raw in enumerate(body.split(b"\n"), start=1) if (data := raw.strip())]
    if len(lines) > max_lines:
        raise BodyError(413, "$", f"too many events: {len(lines)} lines, at most {max_lines} per request (BORDERFLOW_INGEST_MAX_LINES)")
    return [_line(number, data, max_event_bytes) for number, data in lines]


def report(results: list[LineResult]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON answer for a parsed, deduplicated, published body.

    202 when at least one line was accepted or every line was a duplicate (the
    events are already in), 422 when every line was rejected (the answer names
    the first problem, and every line's).
    """
    counts = {status: sum(1 for r in results if r.status == status) for status in ("accepted", "duplicate", "rejected")}
    body: dict[str, Any] = {**counts, "results": [r.to_json() for r in results]}
    if counts["rejected"] and not counts["accepted"] and not counts["duplicate"]:
        first = next(r.error for r in results if r.error is not None)
        assert first is not None
        single = len(results) == 1
        prefix = "" if single else f"every line was rejected; line {results[0].line}: "
        return 422, {"error": prefix + str(first), "field": first.field, "reason": first.reason, **body}
    return 202, body


class RecentIds:
    """``event_id``s published through ingest, remembered for the dedup horizon.

    The stream's own dedup index is the authority (it makes the counts exact);
    this memory lets ``POST /events`` *report* a repeat that the stream has not
    processed yet instead of publishing it again. Ids leave once they are older
    (in event time) than the horizon behind the newest one, in the order they
    came, and never more than ``capacity`` are held.
    """

    def __init__(self, horizon: float, capacity: int = 1_000_000) -> None:
        self.horizon = horizon
        self.capacity = capacity
        self._ids: dict[str, float] = {}
        self._newest = float("-inf")

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str, event_time: float) -> None:
        self._ids.pop(event_id, None)
        self._ids[event_id] = event_time
        self._newest = max(self._newest, event_time)
        self._expire()

    def discard(self, event_id: str) -> None:
        self._ids.pop(event_id, None)

    def _expire(self) -> None:
        cutoff = self._newest - self.horizon
        while self._ids:
            oldest_id = next(iter(self._ids))
            if len(self._ids) <= self.capacity and self._ids[oldest_id] >= cutoff:
                break
            del self._ids[oldest_id]
