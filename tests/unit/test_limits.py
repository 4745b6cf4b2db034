"""What one anonymous client may take of a worker: a rate with bursts, requests at once, and a bounded memory of clients."""

from __future__ import annotations

import pytest

from streams.web.limits import REQUEST_OVERHEAD_SECONDS, ClientLimits, TimeBudget, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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


def test_all_clients_together_take_at_most_their_share_of_the_time() -> None:
    now = [0.0]
    budget = TimeBudget(share=0.05, burst_seconds=0.5, clock=lambda: now[0])
    taken = 0.0
    for _ in range(10_000):  # requests of 20 ms each, back to back for 100 s, from any number of clients
        now[0] += 0.001
        if budget.admit() is None:
            budget.spend(0.02)
            taken += 0.02 + REQUEST_OVERHEAD_SECONDS
            now[0] += 0.02
    assert taken <= 0.5 + 0.05 * now[0] + 0.021, taken  # the burst, then the share (one request may overrun it)
    assert taken >= 0.05 * now[0] * 0.8


def test_a_spent_budget_says_when_it_has_time_again() -> None:
    now = [0.0]
    budget = TimeBudget(share=0.1, burst_seconds=1.0, clock=lambda: now[0])
    assert budget.admit() is None
    budget.spend(3.0 - REQUEST_OVERHEAD_SECONDS)  # a slow request overran the budget by 2 s: 20 s of refill at a share of 0.1
    wait = budget.admit()
    assert wait is not None and 20.0 <= wait < 20.1
    now[0] += wait
    assert budget.admit() is None
    with pytest.raises(ValueError, match="share"):
        TimeBudget(share=0.0)
