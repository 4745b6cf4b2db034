"""What one anonymous client may take of a worker: a rate with bursts, requests at once, and a bounded memory of clients."""

from __future__ import annotations

import pytest

from streams.web.limits import ClientLimits, retry_after
from tests.support import Clock


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limits = ClientLimits(rate=10, burst=5, concurrent=100, total_concurrent=100, clock=clock)
    for _ in range(5):
        assert limits.admit("a") is None
        limits.done("a")
    wait = limits.admit("a")
    assert wait == pytest.approx(0.1)
    assert retry_after(wait) == "1"
    clock.now += 0.1
    assert limits.admit("a") is None


def test_clients_have_buckets_of_their_own() -> None:
    limits = ClientLimits(rate=1, burst=1, concurrent=10, total_concurrent=10, clock=Clock())
    assert limits.admit("a") is None
    assert limits.admit("a") is not None
    assert limits.admit("b") is None


def test_requests_in_progress_per_client_and_for_everyone() -> None:
    limits = ClientLimits(rate=1000, burst=1000, concurrent=2, total_concurrent=3, clock=Clock())
    assert limits.admit("a") is None and limits.admit("a") is None
    assert limits.admit("a") == 1.0  # its two are still in progress
    assert limits.admit("b") is None
    assert limits.admit("c") == 1.0  # three in progress in all
    limits.done("a")
    assert limits.admit("c") is None


def test_the_clients_remembered_are_bounded() -> None:
    limits = ClientLimits(rate=1, burst=1, concurrent=1, total_concurrent=10, max_clients=100, clock=Clock())
    for i in range(10_000):
        if limits.admit(f"10.0.{i // 256}.{i % 256}") is None:
            limits.done(f"10.0.{i // 256}.{i % 256}")
    assert len(limits) <= 101


def test_a_client_with_requests_in_progress_is_not_forgotten() -> None:
    limits = ClientLimits(rate=1, burst=5, concurrent=1, total_concurrent=10, max_clients=2, clock=Clock())
    assert limits.admit("busy") is None
    for i in range(5):
        limits.admit(f"other-{i}")
        limits.done(f"other-{i}")
    assert limits.admit("busy") == 1.0  # still remembered: its request is still in progress


def test_all_clients_together_share_a_rate_however_many_they_are() -> None:
    clock = Clock()
    limits = ClientLimits(rate=100, burst=100, concurrent=100, total_concurrent=1000, total_rate=10, total_burst=20, clock=clock)
    admitted = 0
    for second in range(10):
        for client in range(50):  # fifty addresses, each far within its own rate
            if limits.admit(f"10.0.0.{client}") is None:
                limits.done(f"10.0.0.{client}")
                admitted += 1
        clock.now += 1
        assert admitted <= 20 + 10 * (second + 1), admitted
    assert admitted >= 20 + 10 * 9
    wait = limits.admit("10.0.0.99")
    assert wait is None or 0 < wait <= 0.1


def test_a_scrape_does_not_draw_on_the_rate_all_clients_share() -> None:
    limits = ClientLimits(rate=100, burst=100, concurrent=100, total_concurrent=1000, total_rate=1, total_burst=2, clock=Clock())
    assert limits.admit("10.0.0.1") is None and limits.admit("10.0.0.2") is None
    assert limits.admit("10.0.0.3") is not None  # the shared bucket is empty
    assert limits.admit("10.0.0.4", shared=False) is None  # Prometheus still scrapes
