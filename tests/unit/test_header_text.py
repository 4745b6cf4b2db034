"""Dead-letter headers are valid UTF-8 however long the detail (streams/engine/codec.py: header_text)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.engine.codec import DETAIL_BYTES, header_text


def test_a_detail_cut_inside_a_character_stays_valid_utf8() -> None:
    """Regression: the detail was cut at 1024 bytes, which split a character of a Cyrillic or emoji quote."""
    detail = "а" * 600  # two bytes each: byte 1024 falls inside none, 1023 inside one
    cut = header_text("x" + detail)
    assert len(cut) <= DETAIL_BYTES
    assert cut.decode() == ("x" + detail)[: len(cut.decode())]


@given(st.text(), st.integers(min_value=0, max_value=64))
def test_any_text_is_cut_to_a_valid_prefix(text: str, limit: int) -> None:
    cut = header_text(text, limit)
    assert len(cut) <= limit
    assert text.startswith(cut.decode())
