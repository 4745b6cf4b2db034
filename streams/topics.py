"""Topic names and configs, defined once."""

from __future__ import annotations

from typing import Final

CROSSINGS: Final = "crossings"
DEPARTURES: Final = "departures"
STATEMENTS: Final = "statements"
INPUT_TOPICS: Final = (CROSSINGS, DEPARTURES, STATEMENTS)
DEAD_LETTERS: Final = "borderflow-dlq"
WINDOW_RESULTS: Final = "window-results"
OUTPUT_TOPICS: Final = (DEAD_LETTERS, WINDOW_RESULTS)

STATE_TABLE: Final = "state"
DEDUP_TABLE: Final = "dedup"

#: window results are upserts by key: compaction keeps the latest value
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    WINDOW_RESULTS: {"cleanup.policy": "compact"},
}


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's changelog naming: ``<app id>-<table>-changelog``."""
    return f"{app_id}-{table}-changelog"
