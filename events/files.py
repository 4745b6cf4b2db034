"""Reading files of events: NDJSON (one object per line) or CSV (header names the fields)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from events.model import Event
from events.validation import InvalidEvent, validate

#: CSV cells parsed as numbers; every other cell is text, and empty cells are absent
_INTEGER_FIELDS = frozenset({"count", "schema_version"})
_NUMBER_FIELDS = frozenset({"value"})


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: its number, the bytes to publish, and the event or the error."""

    number: int
    data: bytes
    event: Event | None
    error: InvalidEvent | None


def _csv_object(row: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None or cell is None or cell == "":
            continue
        if name in _INTEGER_FIELDS:
            try:
                obj[name] = int(cell)
            except ValueError:
                obj[name] = cell
        elif name in _NUMBER_FIELDS:
            try:
                obj[name] = float(cell) if any(c in cell for c in ".eE") else int(cell)
            except ValueError:
                obj[name] = cell
        else:
            obj[name] = cell
    return obj


def _check(number: int, data: bytes, obj: Any) -> Line:
    try:
        return Line(number, data, validate(obj), None)
    except InvalidEvent as exc:
        return Line(number, data, None, exc)


def read_ndjson(stream: IO[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(stream, start=1):
        data = raw.rstrip(b"\r\n")
        if not data.strip():
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            yield Line(number, data, None, InvalidEvent("$", f"invalid JSON: {exc}"))
            continue
        yield _check(number, data, obj)


def read_csv(stream: IO[bytes]) -> Iterator[Line]:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    try:
        for row in reader:
            obj = _csv_object(row)
            data = orjson.dumps(obj)
            yield _check(reader.line_num, data, obj)
    except UnicodeDecodeError as exc:
        yield Line(reader.line_num + 1, b"", None, InvalidEvent("$", f"invalid UTF-8: {exc}"))


def read_events(stream: IO[bytes], name: str) -> Iterator[Line]:
    """Lines of a file; ``.csv`` files are CSV, everything else NDJSON."""
    return read_csv(stream) if name.lower().endswith(".csv") else read_ndjson(stream)
