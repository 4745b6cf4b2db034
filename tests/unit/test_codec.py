"""Every record borderflow writes is encoded in one place (streams/engine/codec.py); its shapes are read outside the suite."""

from __future__ import annotations

import orjson

from streams.core.effects import DeadLetter, WindowResult
from streams.core.records import SeriesCode
from streams.engine.codec import (
    FORWARDED_FROM,
    NO_ORIGINAL,
    changelog_records,
    dead_letter_record,
    forwarded_copies,
    window_result_record,
)


def test_a_window_result_is_keyed_by_series_window_and_input_partition() -> None:
    result = WindowResult(SeriesCode.ENTRIES, "FR", "1h", 3_600_000, 7_200_000, 5)
    key, value, headers = window_result_record("entries", 2, result)
    assert key == b"e|FR|1h|3600000|entries|2"
    assert orjson.loads(value or b"") == {
        "series": SeriesCode.ENTRIES.series_name,
        "kind": "e",
        "key": "FR",
        "window": "1h",
        "start": 3_600_000,
        "end": 7_200_000,
        "count": 5,
        "topic": "entries",
        "partition": 2,
    }
    assert headers == []


def test_a_dead_letter_keeps_the_original_key_and_renames_clashing_headers() -> None:
    original = (b"k", b"ignored", [("reason", b"theirs"), ("trace", b"t1")], 123)
    letter = DeadLetter("invalid:schema", "bad field", 41, b"raw")
    key, value, headers = dead_letter_record("border", 3, letter, original)
    assert (key, value) == (b"k", b"raw")
    assert headers == [
        ("original-reason", b"theirs"),
        ("trace", b"t1"),
        ("reason", b"invalid:schema"),
        ("detail", b"bad field"),
        ("topic", b"border"),
        ("partition", b"3"),
        ("offset", b"41"),
    ]
    assert dead_letter_record("border", 3, letter, NO_ORIGINAL)[0] is None


def test_forwarded_copies_keep_their_original_and_name_one_origin() -> None:
    originals = {
        5: (b"a", b"v5", [(FORWARDED_FROM, b"stale"), ("h", b"1")], 1000),
        6: (b"b", b"v6", [], None),
        7: (b"c", b"v7", [], 3000),
    }
    copies = forwarded_copies("border", 0, [(5, 2), (6, 1), (7, 2)], originals)
    assert copies == {
        2: (
            [(b"a", b"v5", [("h", b"1"), (FORWARDED_FROM, b"border|0|5")]), (b"c", b"v7", [(FORWARDED_FROM, b"border|0|7")])],
            [1000, 3000],
        ),
        1: ([(b"b", b"v6", [(FORWARDED_FROM, b"border|0|6")])], [None]),
    }


def test_changelog_records_carry_state_as_written_and_tombstones() -> None:
    assert changelog_records([(b"k1", b"v"), (b"k2", None)]) == [(b"k1", b"v", []), (b"k2", None, [])]
