"""What tests are made of, built in one place: events, scenarios, topics, prepared deployments and worker processes.

HTTP, waits and the reference model are in ``tests/support.py``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from events.codec import decode
from events.partitioning import home_key
from events.times import format_utc
from streams.tools import launch
from tests.support import Model, http_get

#: 2022-09-21T07:00:00Z
T0 = 1663743600
SEED_STATEMENTS = Path(__file__).resolve().parent / "data" / "seed-statements.ndjson"
Message = tuple[str, bytes | None, bytes | None]
#: checkpoint -> (from, to) of the crossings a test makes there unless it says otherwise
BORDER_COUNTRIES = {
    "upper-lars": ("RU", "GE"),
    "vaalimaa": ("RU", "FI"),
    "zhaisan": ("RU", "KZ"),
    "altanbulag": ("RU", "MN"),
    "syrym": ("RU", "KZ"),
    "kairak": ("RU", "KZ"),
}
#: the checkpoints of the random streams (:func:`random_crossings`)
RANDOM_BORDERS = [f"post-{i}" for i in range(12)]

CROSSING: dict[str, Any] = {
    "type": "crossing",
    "event_id": "c-1",
    "occurred_at": "2022-09-21T10:00:00+03:00",
    "border": "upper-lars",
    "from_country": "RU",
    "to_country": "GE",
    "count": 12,
    "mode": "car",
}
DEPARTURE: dict[str, Any] = {
    "type": "departure",
    "event_id": "d-1",
    "occurred_at": "2022-09-22T10:00:00+06:00",
    "country": "KZ",
    "destination": "UZ",
    "count": 40,
}
STATEMENT: dict[str, Any] = {
    "type": "statement",
    "event_id": "s-1",
    "issued_at": "2022-09-27T12:00:00+06:00",
    "source": "MVD",
    "country": "KZ",
    "metric": "entries",
    "value": 98000,
    "since": "2022-09-21T00:00:00+06:00",
}


def crossing(
    event_id: str, at: float | str, border: str = "upper-lars", frm: str | None = None, to: str | None = None, count: int = 1
) -> dict[str, Any]:
    """A crossing at ``at`` (Unix seconds, or RFC 3339 text kept as given), from and to the border's countries unless given."""
    known = BORDER_COUNTRIES.get(border, ("RU", "GE"))
    return {
        "type": "crossing",
        "event_id": event_id,
        "occurred_at": at if isinstance(at, str) else format_utc(at),
        "border": border,
        "from_country": frm or known[0],
        "to_country": to or known[1],
        "count": count,
    }


def registration(event_id: str, at: float, border: str, countries: tuple[str, str] = ("RU", "GE"), name: str = "") -> dict[str, Any]:
    """A checkpoint registered (or changed) at ``at``, joining ``countries``, named ``name`` or after its slug."""
    return {
        "type": "checkpoint",
        "event_id": event_id,
        "registered_at": format_utc(at),
        "border": border,
        "countries": list(countries),
        "name": name or border.replace("-", " ").title(),
    }


def departure(event_id: str, at: float | str, country: str = "KZ", destination: str = "UZ", count: int = 1) -> dict[str, Any]:
    return {
        "type": "departure",
        "event_id": event_id,
        "occurred_at": at if isinstance(at, str) else format_utc(at),
        "country": country,
        "destination": destination,
        "count": count,
    }


def crossing_bytes(event_id: str, at: float | str, border: str = "upper-lars", count: int = 1) -> bytes:
    return orjson.dumps(crossing(event_id, at, border, count=count))


def statement(
    event_id: str, at: float | str, country: str, value: float, source: str = "ministry", since: str = "2022-09-21T00:00:00Z"
) -> dict[str, Any]:
    return {
        "type": "statement",
        "event_id": event_id,
        "issued_at": at if isinstance(at, str) else format_utc(at),
        "source": source,
        "country": country,
        "metric": "entries",
        "value": value,
        "since": since,
    }


def ndjson(*objs: object) -> bytes:
    return b"\n".join(orjson.dumps(o) for o in objs) + b"\n"


def keyed(topic: str, obj: dict[str, Any]) -> Message:
    """``obj`` as a message to ``topic``, keyed as borderflow's publisher keys it (its home key)."""
    data = orjson.dumps(obj)
    return topic, home_key(decode(data)), data


def scenario(prefix: str) -> list[Message]:
    """Every rule of DESIGN.md at least once: offsets, duplicates, a straggler, late and invalid events, statements."""
    c, d, s = prefix + "crossings", prefix + "departures", prefix + "statements"
    msgs = [
        keyed(c, crossing("c-on-hour", "2022-09-21T10:00:00Z", "upper-lars", "RU", "GE", 10)),
        keyed(c, crossing("c-before-hour", "2022-09-21T09:59:59.999Z", "upper-lars", "RU", "GE", 3)),
        keyed(c, crossing("c-nepal-offset", "2022-09-21T16:44:59+05:45", "upper-lars", "RU", "GE", 4)),  # 10:59:59Z
        keyed(c, crossing("c-newfoundland", "2022-09-21T08:30:00-02:30", "upper-lars", "RU", "GE", 6)),  # 11:00Z
        keyed(c, crossing("c-kiribati", "2022-09-22T00:00:00+14:00", "vaalimaa", "RU", "FI", 8)),  # 10:00Z on 21st
        keyed(c, crossing("c-kz-1", "2022-09-22T03:00:00+06:00", "zhaisan", "RU", "KZ", 120)),
        keyed(c, crossing("c-kz-2", "2022-09-23T03:00:00+06:00", "zhaisan", "RU", "KZ", 200)),
        keyed(c, crossing("c-mn", "2022-09-23T12:00:00+08:00", "altanbulag", "RU", "MN", 30)),
        keyed(c, crossing("c-back", "2022-09-23T12:00:00+04:00", "upper-lars", "GE", "RU", 2)),
        # the same event again, once right after and once much later
        keyed(c, crossing("c-on-hour", "2022-09-21T10:00:00Z", "upper-lars", "RU", "GE", 10)),
        keyed(c, crossing("c-gl-1", "2022-09-25T12:00:00Z", "upper-lars", "RU", "GE", 50)),
        # a straggler within grace (stream time 2022-09-25T12Z, 5h59m older): counted
        keyed(c, crossing("c-straggler", "2022-09-25T06:01:00Z", "upper-lars", "RU", "GE", 7)),
        # late: older than stream time - 6h in its partition
        keyed(c, crossing("c-late", "2022-09-21T12:00:00Z", "upper-lars", "RU", "GE", 1000)),
        keyed(c, crossing("c-on-hour", "2022-09-21T10:00:00Z", "upper-lars", "RU", "GE", 10)),
        keyed(d, departure("d-1", "2022-09-22T10:00:00+06:00", "KZ", "UZ", 40)),
        keyed(d, departure("d-2", "2022-09-23T10:00:00+06:00", "KZ", "KG", 25)),
        keyed(d, departure("d-ge", "2022-09-21T12:00:00+04:00", "GE", "TR", 9)),
        keyed(d, departure("d-2", "2022-09-23T10:00:00+06:00", "KZ", "KG", 25)),
    ]
    bad = [
        (c, b"upper-lars", b"{not json"),
        (c, b"upper-lars", b"\xff\xfe\x00 invalid utf-8"),
        (c, b"upper-lars", orjson.dumps(crossing("c-zero", "2022-09-21T10:00:00Z", "upper-lars", "RU", "GE", 0))),
        (c, b"upper-lars", orjson.dumps(crossing("c-no-offset", "2022-09-21T10:00:00", "upper-lars", "RU", "GE", 1))),
        (c, b"upper-lars", orjson.dumps(crossing("c-bad-country", "2022-09-21T10:00:00Z", "upper-lars", "RU", "XX", 1))),
        (c, b"upper-lars", orjson.dumps(departure("d-wrong-topic", "2022-09-21T10:00:00Z", "KZ", "UZ", 1))),
        (c, b"upper-lars", orjson.dumps({"type": "teleport", "event_id": "t-1"})),
        (
            d,
            b"KZ",
            orjson.dumps(
                {"type": "departure", "event_id": "d-missing", "occurred_at": "2022-09-21T10:00:00Z", "country": "KZ", "count": 1}
            ),
        ),
        (d, b"KZ", b"[1, 2, 3]"),
        # valid, but from the future: it must not become its partition's stream time (every later event would be late)
        keyed(c, crossing("c-9999", "9999-12-31T23:59:59Z", "upper-lars", "RU", "GE", 5)),
        keyed(c, crossing("c-after-9999", "2022-09-25T13:00:00Z", "upper-lars", "RU", "GE", 11)),
    ]
    statements = [keyed(s, orjson.loads(line)) for line in SEED_STATEMENTS.read_bytes().splitlines() if line.strip()]
    statements.append(statements[0])  # duplicate statement
    return msgs[:5] + bad[:4] + msgs[5:] + bad[4:] + statements


def random_crossings(prefix: str, n: int, seed: int) -> list[Message]:
    """``n`` crossings at :data:`RANDOM_BORDERS`, mostly in time order, with about one in twenty resent."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = 1663718400 + i * 20 + rng.randint(-1800, 0)  # mostly increasing, a little out of order
        event = crossing(f"e-{i}", format_utc(t), rng.choice(RANDOM_BORDERS), "RU", rng.choice(["GE", "KZ", "FI", "MN"]), rng.randint(1, 9))
        out.append(keyed(prefix + "crossings", event))
        if rng.random() < 0.05:
            out.append(out[-1])  # a feed resending
    return out


def create_topics(env: dict[str, str]) -> None:
    """The deployment's topics, made by ``borderflow topics``."""
    subprocess.run([sys.executable, "-m", "cli", "topics"], env=env, check=True, capture_output=True)


def prepared(deployment: dict[str, str], n: int, seed: int) -> tuple[list[Message], Model]:
    """Topics created, ``n`` random crossings made for them, and the model's reading of those crossings."""
    create_topics(deployment)
    messages = random_crossings(deployment["BORDERFLOW_TOPIC_PREFIX"], n, seed)
    model = Model(partitions=4)
    model.run(messages)
    return messages, model


class WorkerProcess(launch.WorkerProcess):
    """The launcher's worker, with what tests ask of it: readiness, metrics, and a stop that must be clean."""

    def wait_ready(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            try:
                status, _ = http_get(self.url + "/health", timeout=2)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait; a worker that needs a SIGKILL fails the test."""
        code = super().stop(timeout)
        if code is None:
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s:\n{self.tail()}")
        return code

    def metric_lines(self, name: str, **labels: str) -> list[str]:
        """Exposition lines of one metric whose labels include ``labels``."""
        status, text = http_get(self.url + "/metrics")
        assert status == 200
        return [
            line
            for line in str(text).splitlines()
            if (line.startswith(name + "{") or line.startswith(name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items())
        ]

    def metric(self, name: str, **labels: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.metric_lines(name, **labels))
