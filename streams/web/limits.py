"""How much of a worker one anonymous client may take: a request rate, requests at once, and a bounded memory of clients.

Each client (by address) has a token bucket, ``rate`` requests a second
with bursts of ``burst``, and at most ``concurrent`` requests in progress;
all anonymous clients together at most ``total_concurrent``, and a share
of the worker's time (:class:`TimeBudget`), however many they are.
A request over either is refused at once with 429 and the seconds until it
would be taken (``Retry-After``): it costs the worker almost nothing, so no
number of callers can slow the stream. The clients remembered are bounded
(the least recently seen are forgotten first; a forgotten client starts
again with a full bucket, which is what an idle one has anyway).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(slots=True)
class _Client:
    tokens: float
    at: float
    in_progress: int = 0


class ClientLimits:
    def __init__(
        self,
        rate: float,
        burst: int,
        concurrent: int,
        total_concurrent: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or concurrent < 1 or total_concurrent < 1:
            raise ValueError("rate, burst and the concurrency limits must be positive")
        self.rate, self.burst, self.concurrent, self.max_clients = rate, burst, concurrent, max_clients
        self.total_concurrent = total_concurrent
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._in_progress = 0

    def admit(self, client: str) -> float | None:
        """None if ``client`` may make a request now (call :meth:`done` after it), else the seconds to wait."""
        now = self._clock()
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client(tokens=float(self.burst), at=now)
            if len(self._clients) > self.max_clients:
                self._forget_one(client)
        else:
            self._clients.move_to_end(client)
            state.tokens = min(float(self.burst), state.tokens + (now - state.at) * self.rate)
            state.at = now
        if state.in_progress >= self.concurrent or self._in_progress >= self.total_concurrent:
            return 1.0
        if state.tokens < 1.0:
            return (1.0 - state.tokens) / self.rate
        state.tokens -= 1.0
        state.in_progress += 1
        self._in_progress += 1
        return None

    def done(self, client: str) -> None:
        state = self._clients.get(client)
        if state is not None and state.in_progress > 0:
            state.in_progress -= 1
            self._in_progress -= 1

    def _forget_one(self, keep: str) -> None:
        """The least recently seen client with nothing in progress (a busy one keeps its count)."""
        for name, state in self._clients.items():
            if name != keep and state.in_progress == 0:
                del self._clients[name]
                return

    def __len__(self) -> int:
        return len(self._clients)


#: what the web server takes to read a small request and write its answer, beyond the handler (docs/benchmarks.md)
REQUEST_OVERHEAD_SECONDS: Final = 0.001


class TimeBudget:
    """A token bucket of seconds: what requests took, refilled at ``share`` seconds a second, up to ``burst_seconds``.

    A request's cost is its handler's time from start to answer, plus
    :data:`REQUEST_OVERHEAD_SECONDS` for reading it and writing the answer,
    which happen outside the handler. Waiting on a peer counts too, and so
    does waiting for the loop while it applies a batch: under load the same
    requests cost more, so fewer are taken, which is what keeps the stream's
    pace.
    """

    def __init__(self, share: float, burst_seconds: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1 or burst_seconds <= 0:
            raise ValueError("the share must be in (0, 1] and the burst positive")
        self.share, self.burst_seconds, self._clock = share, burst_seconds, clock
        self._seconds = burst_seconds
        self._at = clock()

    def admit(self) -> float | None:
        """None if a request may start now, else the seconds until the budget has time again."""
        now = self._clock()
        self._seconds = min(self.burst_seconds, self._seconds + (now - self._at) * self.share)
        self._at = now
        return None if self._seconds > 0 else -self._seconds / self.share + 0.001

    def spend(self, handler_seconds: float) -> None:
        self._seconds -= handler_seconds + REQUEST_OVERHEAD_SECONDS


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
