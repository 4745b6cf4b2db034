"""JSON Schema (draft 2020-12) of every message type, generated from the validator's own rules.

``events/schema/*.json`` are this module's output, committed for upstream
systems; ``python -m events.schema`` rewrites them and a test keeps them
current and in agreement with :func:`events.validation.validate`. Two rules
that JSON Schema cannot state are written in the descriptions instead: a
crossing's countries differ (as do a departure's), and a statement's
``since`` is not after its ``issued_at``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

import orjson

from events.model import MESSAGE_TYPES, METRICS, MODES, SCHEMA_VERSION
from events.validation import COUNTRIES, MAX_COUNT, MAX_NAME, MAX_TEXT

SCHEMA_DIR: Final = Path(__file__).parent / "schema"
BASE_URI: Final = "https://borderflow.example/schema/"
RFC3339: Final = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
SLUG: Final = r"^[a-z0-9]+(-[a-z0-9]+)*$"


def _text(description: str, *, optional: bool = False) -> dict[str, Any]:
    kind: Any = ["string", "null"] if optional else "string"
    return {"type": kind, "minLength": 1, "maxLength": MAX_TEXT, "description": description}


def _time(description: str, *, optional: bool = False) -> dict[str, Any]:
    return _text(description, optional=optional) | {"pattern": RFC3339, "examples": ["2022-09-21T10:00:00+03:00"]}


def _country(description: str) -> dict[str, Any]:
    return {"type": "string", "enum": sorted(COUNTRIES), "description": description + " (ISO 3166-1 alpha-2)"}


def _slug(description: str, *, optional: bool = False) -> dict[str, Any]:
    return _text(description, optional=optional) | {"maxLength": 64, "pattern": SLUG, "examples": ["upper-lars"]}


def _count() -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "description": "people"}


_COMMON: Final[dict[str, Any]] = {
    "event_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$",
        "description": "unique per event, printable: the deduplication key",
    },
    "schema_version": {
        "type": "integer",
        "minimum": 1,
        "maximum": SCHEMA_VERSION,
        "default": 1,
        "description": "older versions are upcast when read; a newer one is rejected",
    },
}


def _schema(event_type: str, title: str, description: str, required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}{event_type}.json",
        "title": title,
        "description": description + " Unknown extra fields are kept but ignored.",
        "type": "object",
        "required": ["type", "event_id", *required],
        "properties": {"type": {"const": event_type}, **_COMMON, **properties},
        "additionalProperties": True,
    }


def schemas() -> dict[str, dict[str, Any]]:
    """The schema of each event type, by type."""
    out = {
        "crossing": _schema(
            "crossing",
            "Border crossing",
            "People observed crossing one checkpoint from one country into another; topic `crossings`, keyed by border. "
            "from_country and to_country must differ.",
            ["occurred_at", "border", "from_country", "to_country", "count"],
            {
                "occurred_at": _time("event time, RFC 3339 with an explicit offset"),
                "border": _slug("checkpoint, a lowercase slug"),
                "from_country": _country("country left"),
                "to_country": _country("country entered"),
                "count": _count(),
                "mode": {"type": ["string", "null"], "enum": [*sorted(MODES), None], "description": "how they crossed"},
                "source": _text("who observed it", optional=True),
            },
        ),
        "departure": _schema(
            "departure",
            "Onward departure",
            "People moving on out of a host country; topic `departures`, keyed by country. country and destination must differ.",
            ["occurred_at", "country", "destination", "count"],
            {
                "occurred_at": _time("event time, RFC 3339 with an explicit offset"),
                "country": _country("the host country being left"),
                "destination": _country("where they went"),
                "count": _count(),
                "border": _slug("checkpoint, if known", optional=True),
                "source": _text("who observed it", optional=True),
            },
        ),
        "statement": _schema(
            "statement",
            "Official statement",
            "A figure someone published; topic `statements`, keyed by country. since, if given, is not after issued_at.",
            ["issued_at", "source", "country", "metric", "value"],
            {
                "issued_at": _time("when it was published, RFC 3339 with an explicit offset"),
                "source": _text("who said it"),
                "country": _country("the country the figure is about"),
                "metric": {"type": "string", "enum": sorted(METRICS), "description": "what was counted"},
                "value": {"type": "number", "minimum": 0, "maximum": 1e15, "description": "the figure"},
                "since": _time("start of the period the figure covers", optional=True),
                "border": _slug("checkpoint, if the figure is about one", optional=True),
                "url": _text("where it was published", optional=True),
                "quote": _text("the words", optional=True),
            },
        ),
        "checkpoint": _schema(
            "checkpoint",
            "Checkpoint registration",
            "A checkpoint registered, or its countries or name changed; topic `crossings`, keyed by border, so that each "
            "partition applies it in its input order. The two countries differ. Of two registrations of one checkpoint, "
            "the one with the later registered_at holds, whatever order they arrive in.",
            ["registered_at", "border", "countries", "name"],
            {
                "registered_at": _time("when the registration was made, RFC 3339 with an explicit offset"),
                "border": _slug("checkpoint, a lowercase slug"),
                "countries": {
                    "type": "array",
                    "items": _country("a country the checkpoint joins"),
                    "minItems": 2,
                    "maxItems": 2,
                    "uniqueItems": True,
                    "description": "the two countries the checkpoint joins",
                },
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME,
                    "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$",
                    "description": "display name, printable",
                },
                "source": _text("who registered it", optional=True),
            },
        ),
    }
    assert tuple(out) == MESSAGE_TYPES
    return out


def rendered() -> dict[Path, bytes]:
    return {SCHEMA_DIR / f"{name}.json": orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n" for name, schema in schemas().items()}


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path, data in rendered().items():
        path.write_bytes(data)
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
