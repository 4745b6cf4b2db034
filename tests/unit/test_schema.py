"""events/schema/*.json are current, and they agree with the validator."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.model import Crossing, Departure, Event, Registration, Statement
from events.schema import rendered, schemas
from events.validation import COUNTRIES, InvalidEvent, check_field_by_field, validate
from tests.factories import CROSSING, DEPARTURE, STATEMENT

EXAMPLES = {"crossing": CROSSING, "departure": DEPARTURE, "statement": STATEMENT}
VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in schemas().items()}


def schema_accepts(obj: dict[str, Any]) -> bool:
    return VALIDATORS[obj["type"]].is_valid(obj)


def validator_accepts(obj: dict[str, Any]) -> bool:
    try:
        validate(obj)
    except InvalidEvent:
        return False
    assert check_field_by_field(obj) == validate(obj)
    return True


def reference_accepts(obj: dict[str, Any]) -> bool:
    try:
        check_field_by_field(obj)
    except InvalidEvent:
        return False
    return True


def test_committed_schema_files_are_current() -> None:
    for path, data in rendered().items():
        assert path.read_bytes() == data, f"{path} is stale: run python -m events.schema"


def test_schemas_are_valid_json_schema() -> None:
    for schema in schemas().values():
        jsonschema.Draft202012Validator.check_schema(schema)


# Mutations each side must judge the same way: (type, change, accepted?)
MUTATIONS: list[tuple[str, dict[str, Any], bool]] = [
    ("crossing", {}, True),
    ("crossing", {"weather": "rain"}, True),
    ("crossing", {"mode": None, "source": None}, True),
    ("crossing", {"count": 12.0}, True),
    ("crossing", {"count": 1_000_000}, True),
    ("crossing", {"schema_version": 1}, True),
    ("crossing", {"occurred_at": "2022-09-21T10:00:00.123456789Z"}, True),
    ("crossing", {"count": 0}, False),
    ("crossing", {"count": 1_000_001}, False),
    ("crossing", {"count": 2.5}, False),
    ("crossing", {"count": True}, False),
    ("crossing", {"count": "5"}, False),
    ("crossing", {"count": None}, False),
    ("crossing", {"border": "Upper Lars"}, False),
    ("crossing", {"border": "upper--lars"}, False),
    ("crossing", {"border": "a" * 65}, False),
    ("crossing", {"border": ""}, False),
    ("crossing", {"to_country": "XX"}, False),
    ("crossing", {"to_country": "ge"}, False),
    ("crossing", {"mode": "horse"}, False),
    ("crossing", {"occurred_at": "2022-09-21T10:00:00"}, False),
    ("crossing", {"occurred_at": "21 Sep 2022"}, False),
    ("crossing", {"occurred_at": 1663743600}, False),
    ("crossing", {"event_id": ""}, False),
    ("crossing", {"event_id": "a" * 129}, False),
    ("crossing", {"event_id": "a\nb"}, False),
    ("crossing", {"event_id": 7}, False),
    ("crossing", {"schema_version": 2}, False),
    ("crossing", {"schema_version": 0}, False),
    ("crossing", {"source": ""}, False),
    ("crossing", {"source": "x" * 4097}, False),
    ("departure", {}, True),
    ("departure", {"border": None}, True),
    ("departure", {"destination": "ZZ"}, False),
    ("departure", {"border": "Kazakh"}, False),
    ("statement", {}, True),
    ("statement", {"value": 0}, True),
    ("statement", {"value": 12.5}, True),
    ("statement", {"since": None, "url": "https://example.org", "quote": "..."}, True),
    ("statement", {"value": -1}, False),
    ("statement", {"value": 2e15}, False),
    ("statement", {"value": "98000"}, False),
    ("statement", {"value": False}, False),
    ("statement", {"metric": "arrivals"}, False),
    ("statement", {"since": "yesterday"}, False),
]
# Rules the schema states only in its descriptions: the validator rejects, the schema cannot.
CROSS_FIELD: list[tuple[str, dict[str, Any]]] = [
    ("crossing", {"to_country": "RU"}),
    ("departure", {"destination": "KZ"}),
    ("statement", {"since": "2022-10-01T00:00:00Z"}),
]


@pytest.mark.parametrize(("kind", "change", "accepted"), MUTATIONS)
def test_schema_and_validator_agree(kind: str, change: dict[str, Any], accepted: bool) -> None:
    obj = EXAMPLES[kind] | change
    assert validator_accepts(obj) is accepted
    assert reference_accepts(obj) is accepted
    assert schema_accepts(obj) is accepted


@pytest.mark.parametrize("kind", ["crossing", "departure", "statement"])
def test_every_required_field_is_required_by_both(kind: str) -> None:
    for field in schemas()[kind]["required"]:
        obj = {k: v for k, v in EXAMPLES[kind].items() if k != field}
        assert not validator_accepts(obj), field
        if field != "type":
            assert not schema_accepts(obj), field


@pytest.mark.parametrize(("kind", "change"), CROSS_FIELD)
def test_cross_field_rules_are_the_validators_and_are_documented(kind: str, change: dict[str, Any]) -> None:
    obj = EXAMPLES[kind] | change
    assert not validator_accepts(obj) and schema_accepts(obj)
    assert "differ" in schemas()[kind]["description"] or "not after" in schemas()[kind]["description"]


@given(
    st.sampled_from(sorted(COUNTRIES)),
    st.sampled_from(sorted(COUNTRIES)),
    st.integers(1, 1_000_000),
    st.from_regex(r"\A[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}\Z"),
    st.from_regex(r"\A[A-Za-z0-9:._-]{1,40}\Z"),
)
def test_generated_crossings_are_judged_alike(origin: str, destination: str, count: int, border: str, event_id: str) -> None:
    obj = CROSSING | {"from_country": origin, "to_country": destination, "count": count, "border": border, "event_id": event_id}
    assert schema_accepts(obj)
    assert validator_accepts(obj) is (origin != destination)


@pytest.mark.parametrize("kind", [Crossing, Departure, Statement, Registration])
def test_the_json_schema_names_the_fields_the_records_read(kind: type[Event]) -> None:
    schema = schemas()[kind.type]
    assert set(schema["properties"]) == {"type", *kind.__struct_fields__}
    defaults = len(kind.__struct_defaults__)
    assert set(schema["required"]) == {"type", *kind.__struct_fields__[: len(kind.__struct_fields__) - defaults]}
