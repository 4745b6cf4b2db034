"""GapGuard: a partition's state never skips input records it has not applied."""

from __future__ import annotations

import asyncio

from faust.types import TP

from streams.engine.fastpath import Admission, GapGuard

P = TP("crossings", 1)


def test_contiguous_and_overlapping_batches_are_applied() -> None:
    guard = GapGuard()
    assert guard.admit(P, next_offset=100, first_offset=100, batch_epoch=0, current_epoch=0) is Admission.APPLY
    # redelivered records: the core skips them
    assert guard.admit(P, next_offset=100, first_offset=40, batch_epoch=0, current_epoch=0) is Admission.APPLY


def test_a_batch_after_a_hole_makes_the_partition_read_again_and_stale_batches_are_dropped() -> None:
    guard = GapGuard()
    assert guard.admit(P, next_offset=100, first_offset=250, batch_epoch=0, current_epoch=0) is Admission.REREAD
    # the consumer was sent back (epoch 1); what it had fetched before is dropped
    assert guard.admit(P, next_offset=100, first_offset=400, batch_epoch=0, current_epoch=1) is Admission.DROP
    assert guard.admit(P, next_offset=100, first_offset=100, batch_epoch=1, current_epoch=1) is Admission.APPLY
    assert P not in guard.rereads


def test_a_hole_is_never_skipped_but_read_again_and_counted() -> None:
    """Something else sent the consumer forward again (a rebalance's seek to the committed offset)."""
    guard = GapGuard()
    assert guard.admit(P, next_offset=100, first_offset=300, batch_epoch=0, current_epoch=0) is Admission.REREAD
    assert guard.admit(P, next_offset=100, first_offset=300, batch_epoch=1, current_epoch=1) is Admission.REREAD
    assert guard.rereads[P] == 2


def test_partitions_are_independent_and_forgotten_when_revoked() -> None:
    guard = GapGuard()
    other = TP("crossings", 2)
    assert guard.admit(P, next_offset=10, first_offset=20, batch_epoch=0, current_epoch=0) is Admission.REREAD
    assert guard.admit(other, next_offset=10, first_offset=10, batch_epoch=0, current_epoch=0) is Admission.APPLY
    guard.forget([P])
    assert P not in guard.rereads


def test_records_deleted_by_retention_are_not_waited_for() -> None:
    guard = GapGuard()
    assert guard.admit(P, next_offset=0, first_offset=5000, batch_epoch=0, current_epoch=0) is Admission.REREAD
    guard.log_starts_at(P, 5000)  # the log now starts at 5000: what came before is gone
    assert guard.admit(P, next_offset=0, first_offset=5000, batch_epoch=1, current_epoch=1) is Admission.APPLY


def test_a_batch_given_back_is_owed_even_below_the_state_offset() -> None:
    """Two batches sent back while recovering: the later seek must not skip the earlier batch's records.

    They are below the state's offset (not counted again) but their forwarded
    copies may not have reached Kafka before a crash: they must pass through
    the core again to be forwarded again.
    """
    guard = GapGuard()
    guard.given_back(P, 1000)
    guard.given_back(P, 1250)  # the second seek, to 1250, landed last
    assert guard.next_needed(P, next_offset=5000) == 1000
    assert guard.admit(P, next_offset=5000, first_offset=1250, batch_epoch=0, current_epoch=0) is Admission.REREAD
    assert guard.admit(P, next_offset=5000, first_offset=1500, batch_epoch=0, current_epoch=1) is Admission.DROP
    assert guard.admit(P, next_offset=5000, first_offset=1000, batch_epoch=1, current_epoch=1) is Admission.APPLY
    # applied from there on: nothing is owed any more
    assert guard.next_needed(P, next_offset=5000) == 5000
    assert guard.admit(P, next_offset=5000, first_offset=1250, batch_epoch=1, current_epoch=1) is Admission.APPLY


def test_what_is_owed_is_forgotten_when_revoked_and_never_waits_for_deleted_records() -> None:
    guard = GapGuard()
    guard.given_back(P, 10)
    guard.forget([P])
    assert guard.next_needed(P, next_offset=500) == 500
    guard.given_back(P, 10)
    guard.log_starts_at(P, 400)  # retention deleted what was owed
    assert guard.admit(P, next_offset=500, first_offset=400, batch_epoch=0, current_epoch=0) is Admission.APPLY


class _Log:
    """A partition whose records below ``start`` retention has deleted; it records where it is asked to read from."""

    def __init__(self, start: int | None) -> None:
        self.start = start
        self.reads: list[int] = []

    async def log_start(self, tp: TP) -> int:
        if self.start is None:
            raise ConnectionError("the broker is away")
        return self.start

    async def reread(self, tp: TP, offset: int) -> None:
        self.reads.append(offset)


def test_a_hole_read_again_twice_is_read_from_where_the_log_starts() -> None:
    async def scenario() -> None:
        guard, log = GapGuard(), _Log(start=300)
        guard.admit(P, next_offset=100, first_offset=300, batch_epoch=0, current_epoch=0)
        await guard.read_again(log, P, 100)  # first time: the state's next offset, the broker is not asked
        guard.admit(P, next_offset=100, first_offset=300, batch_epoch=1, current_epoch=1)
        await guard.read_again(log, P, 100)
        assert log.reads == [100, 300]
        assert guard.admit(P, next_offset=100, first_offset=300, batch_epoch=2, current_epoch=2) is Admission.APPLY

    asyncio.run(scenario())


def test_a_log_start_that_cannot_be_asked_reads_again_from_the_state() -> None:
    async def scenario() -> None:
        guard, log = GapGuard(), _Log(start=None)
        for epoch in range(3):
            guard.admit(P, next_offset=100, first_offset=300, batch_epoch=epoch, current_epoch=epoch)
            await guard.read_again(log, P, 100)
        assert log.reads == [100, 100, 100]

    asyncio.run(scenario())
