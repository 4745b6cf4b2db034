"""A peer that let a query time out is asked with a short timeout for a while, then with the full one again."""

from __future__ import annotations

from streams.web.cluster import SILENT_PEER_MEMORY, SILENT_PEER_TIMEOUT, SilentPeers
from tests.support import Clock

PEER, OTHER = "http://10.0.0.2:6066", "http://10.0.0.3:6066"


def test_a_peer_that_timed_out_gets_the_short_timeout_until_it_answers() -> None:
    clock = Clock()
    silent = SilentPeers(clock)
    assert silent.timeout(PEER, 10) == 10
    silent.timed_out(PEER)
    assert PEER in silent and OTHER not in silent
    assert silent.timeout(PEER, 10) == SILENT_PEER_TIMEOUT
    assert silent.timeout(OTHER, 10) == 10
    assert silent.timeout(PEER, 0.5) == 0.5  # never longer than the caller's own timeout
    silent.answered(PEER)
    assert silent.timeout(PEER, 10) == 10


def test_the_memory_lapses_and_is_not_extended_by_short_timeouts() -> None:
    clock = Clock()
    silent = SilentPeers(clock)
    silent.timed_out(PEER)
    clock.now += SILENT_PEER_MEMORY / 2
    silent.timed_out(PEER)  # a short timeout missed too: a slow peer must get the full timeout again on time
    clock.now += SILENT_PEER_MEMORY / 2
    assert silent.timeout(PEER, 10) == 10 and PEER not in silent
    silent.timed_out(PEER)  # the full timeout missed again: short ones for another while
    assert silent.timeout(PEER, 10) == SILENT_PEER_TIMEOUT


def test_lapsed_peers_are_forgotten() -> None:
    clock = Clock()
    silent = SilentPeers(clock)
    for n in range(100):
        silent.timed_out(f"http://10.0.1.{n}:6066")
    clock.now += SILENT_PEER_MEMORY + 1
    silent.timed_out(PEER)
    assert len(silent) == 1
