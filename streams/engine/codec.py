"""The key, value and headers of every record borderflow writes.

State records go to the changelog as the core wrote them; a forwarded copy
keeps its original's key, value and headers and names its origin in
:data:`FORWARDED_FROM`; a dead letter keeps the original's key and headers
(renaming those that clash with its own) and names its reason and origin;
a window result is keyed by its series, key, window, start and input
partition, and its value is JSON. :mod:`streams.engine.output` only
sends what this module encodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import orjson

from streams.core.effects import DeadLetter, WindowResult
from streams.core.records import SeriesCode

#: (key, value, headers) of a record to write
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
#: (key, value, headers, timestamp in ms or None) of an input message whose key and headers go out again
Original = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]
NO_ORIGINAL: Original = (None, None, [], None)

#: the header a forwarded copy names its origin in: ``topic|partition|offset``
FORWARDED_FROM = "borderflow-forwarded-from"
#: the headers a dead letter names its reason and origin in; an original header of the same name is kept as ``original-<name>``
DEAD_LETTER_HEADERS = frozenset({"reason", "detail", "topic", "partition", "offset"})
#: longest dead-letter ``detail`` header, in bytes
DETAIL_BYTES = 1024


def header_text(text: str, limit: int = DETAIL_BYTES) -> bytes:
    """``text`` as UTF-8 in at most ``limit`` bytes, cut at a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


def changelog_records(writes: Iterable[tuple[bytes, bytes | None]]) -> list[Record]:
    """The state records of a flush, a ``None`` value being a tombstone."""
    return [(key, value, []) for key, value in writes]


def forwarded_copies(
    topic: str, partition: int, forwards: Iterable[tuple[int, int]], originals: Mapping[int, Original]
) -> dict[int, tuple[list[Record], list[int | None]]]:
    """Home partition -> the copies to send there and their originals' timestamps, in offset order."""
    by_home: dict[int, tuple[list[Record], list[int | None]]] = defaultdict(lambda: ([], []))
    for offset, home in forwards:
        key, value, headers, timestamp = originals[offset]
        origin = (FORWARDED_FROM, f"{topic}|{partition}|{offset}".encode())
        records, stamps = by_home[home]
        records.append((key, value, [h for h in headers if h[0] != FORWARDED_FROM] + [origin]))
        stamps.append(timestamp)
    return by_home


def dead_letter_record(topic: str, partition: int, letter: DeadLetter, original: Original) -> Record:
    key, _, original_headers, _ = original
    headers = [(f"original-{name}" if name in DEAD_LETTER_HEADERS else name, value) for name, value in original_headers]
    headers += [
        ("reason", letter.reason.encode()),
        ("detail", header_text(letter.detail)),
        ("topic", topic.encode()),
        ("partition", str(partition).encode()),
        ("offset", str(letter.offset).encode()),
    ]
    return key, letter.value, headers


def window_result_key(result: WindowResult, topic: str, partition: int) -> bytes:
    return f"{result.series_code}|{result.key}|{result.window}|{result.start}|{topic}|{partition}".encode()


def window_result_record(topic: str, partition: int, result: WindowResult) -> Record:
    value = orjson.dumps(
        {
            "series": SeriesCode(result.series_code).series_name,
            "kind": result.series_code,
            "key": result.key,
            "window": result.window,
            "start": result.start,
            "end": result.end,
            "count": result.count,
            "topic": topic,
            "partition": partition,
        }
    )
    return window_result_key(result, topic, partition), value, []
