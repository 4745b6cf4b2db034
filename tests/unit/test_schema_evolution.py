"""Schema versions: old events are upcast when read, events from the future are dead-lettered, never misread."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from events import validation
from events.model import SCHEMA_VERSION
from events.validation import InvalidEvent, validate
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.records import SeriesCode
from streams.core.state import PartitionState
from tests.factories import CROSSING


def add_source_in_v2(obj: dict[str, Any]) -> dict[str, Any]:
    """A hypothetical version 2 in which every crossing names its source; v1 feeds did not."""
    return {**obj, "schema_version": 2, "source": obj.get("source") or "unattributed (schema v1)"}


@pytest.fixture
def version_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(validation.UPCASTERS, 1, add_source_in_v2)


def test_this_build_reads_version_1() -> None:
    assert SCHEMA_VERSION == 1
    assert validate(CROSSING | {"schema_version": 1}) == validate(CROSSING)


@pytest.mark.usefixtures("version_2")
def test_a_v1_event_published_before_the_v2_field_existed_is_upcast() -> None:
    old = validate(CROSSING)  # no schema_version: version 1
    assert old.source == "unattributed (schema v1)"
    new = validate(CROSSING | {"schema_version": 2, "source": "GE MIA"})
    assert new.source == "GE MIA"
    assert (old.count, old.border, old.occurred_at) == (new.count, new.border, new.occurred_at)


@pytest.mark.usefixtures("version_2")
def test_an_event_from_a_newer_version_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate(CROSSING | {"schema_version": 3})
    assert info.value.field == "schema_version"
    assert "newer than this worker understands (at most 2)" in info.value.reason


def test_the_stream_dead_letters_a_future_version_and_counts_the_rest() -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig())
    effects = Effects()
    future = orjson.dumps(CROSSING | {"event_id": "from-the-future", "schema_version": SCHEMA_VERSION + 1, "count": 1000})
    state.process(0, future, effects)
    state.process(1, orjson.dumps(CROSSING), effects)
    assert effects.outcomes == {"invalid": 1, "accepted": 1}
    (letter,) = effects.dead_letters
    assert letter.reason == "invalid:schema_version" and "unsupported" in letter.detail and letter.value == future
    assert state.series[(SeriesCode.BORDER, "upper-lars")].total == CROSSING["count"]
