"""Record batches built off the event loop are the bytes aiokafka's own builder would send."""

from __future__ import annotations

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.engine.codec import Record
from streams.engine.output import build_batches, fill_batches
from streams.engine.seam import BuiltBatch

RECORDS: list[Record] = [(f"k{i}".encode(), b"crossing " * 20 + str(i).encode(), [("origin", b"crossings|3|%d" % i)]) for i in range(500)]
STAMPS: list[int | None] = [1_700_000_000_000 + i for i in range(500)]
ZSTD = DefaultRecordBatch.CODEC_ZSTD


def filled(batch_size: int = 1024 * 1024) -> BatchBuilder:
    [builder] = fill_batches(lambda: BatchBuilder(batch_size, ZSTD), RECORDS, STAMPS, "crossings")
    return builder


@pytest.mark.parametrize("producer_state", [None, (4711, 3, 120)], ids=["plain producer", "idempotent producer"])
def test_a_built_batch_is_what_the_producer_would_have_built(producer_state: tuple[int, int, int] | None) -> None:
    theirs, ours = filled(), BuiltBatch(filled())
    if producer_state is not None:  # what the sender sets when it takes the batch
        theirs._set_producer_state(*producer_state)
        ours._set_producer_state(*producer_state)
    expected = theirs._build()
    assert ours._build() == expected and ours.record_count() == 500 and ours.size() == len(expected)
    batch = DefaultRecordBatch(bytes(ours._build()))
    assert batch.validate_crc() and batch.compression_type == ZSTD
    if producer_state is not None:
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == producer_state
    assert [(r.key, r.value, r.headers, r.timestamp) for r in batch] == [(k, v, h, t) for (k, v, h), t in zip(RECORDS, STAMPS, strict=True)]


def test_records_fill_as_many_batches_as_they_need_in_order() -> None:
    built = build_batches(lambda: BatchBuilder(16 * 1024, ZSTD), BuiltBatch, lambda: (RECORDS, STAMPS), "crossings")
    assert len(built) > 1 and all(batch.closed() and batch.append() is None for batch in built)
    keys = [r.key for batch in built for r in DefaultRecordBatch(bytes(batch._build()))]
    assert keys == [key for key, _, _ in RECORDS]
    assert build_batches(lambda: BatchBuilder(16 * 1024, ZSTD), BuiltBatch, lambda: ([], []), "crossings") == []
