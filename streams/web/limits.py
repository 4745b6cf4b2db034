"""How much of a worker one anonymous client may take: a request rate, requests at once, and a bounded memory of clients.

Each client (by address) has a token bucket, ``rate`` requests a second
with bursts of ``burst``, and at most ``concurrent`` requests in progress;
all anonymous clients together at most ``total_concurrent``, and
``total_rate`` requests a second with bursts of ``total_burst``, however
many addresses they come from.
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
        total_rate: float = math.inf,
        total_burst: int = 1_000_000,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or concurrent < 1 or total_concurrent < 1 or total_rate <= 0 or total_burst < 1:
            raise ValueError("the rates, bursts and concurrency limits must be positive")
        self.rate, self.burst, self.concurrent, self.max_clients = rate, burst, concurrent, max_clients
        self.total_concurrent = total_concurrent
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._in_progress = 0
        self.total_rate, self.total_burst = total_rate, total_burst
        #: the bucket all clients share
        self._everyone = _Client(tokens=float(total_burst), at=clock())

    def admit(self, client: str, shared: bool = True) -> float | None:
        """None if ``client`` may make a request now (call :meth:`done` after it), else the seconds to wait.

        ``shared=False``: the request does not draw on the rate all clients share.
        """
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
        everyone = self._everyone
        refill = math.inf if math.isinf(self.total_rate) else (now - everyone.at) * self.total_rate
        everyone.tokens = min(float(self.total_burst), everyone.tokens + refill)
        everyone.at = now
        if state.in_progress >= self.concurrent or self._in_progress >= self.total_concurrent:
            return 1.0
        if state.tokens < 1.0:
            return (1.0 - state.tokens) / self.rate
        if shared and everyone.tokens < 1.0:
            return (1.0 - everyone.tokens) / self.total_rate
        state.tokens -= 1.0
        if shared:
            everyone.tokens -= 1.0
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


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
