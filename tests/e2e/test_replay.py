"""borderflow replay: rebuilt from the topics, verified against live workers while events flow, and promoted."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from events.times import format_utc
from tests.factories import RANDOM_BORDERS, crossing, departure, keyed, prepared, scenario
from tests.support import Model, produce, run_replay, wait_exact

pytestmark = pytest.mark.e2e


def counted_by_a_live_worker(spawn_worker: Any, kafka: str, messages: list[Any]) -> Any:
    """A worker that has counted ``messages`` exactly (checked against the model)."""
    live = spawn_worker("live")
    live.wait_ready()
    asyncio.run(produce(kafka, messages))
    model = Model(partitions=4)
    model.run(messages)
    wait_exact(live, model, RANDOM_BORDERS)
    return live


def test_replay_verifies_identical_while_events_flow_and_promotes(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    messages, _ = prepared(deployment, 6_000, seed=11)
    messages += scenario(prefix)  # departures, statements, late, duplicate and malformed messages too
    live = counted_by_a_live_worker(spawn_worker, kafka, messages)

    more = [
        keyed(prefix + "crossings", crossing(f"more-{i}", 1663718400 + 6_000 * 20 + i * 10, RANDOM_BORDERS[i % 5], "RU", "KZ", 2))
        for i in range(3_000)
    ]
    more += [
        keyed(prefix + "departures", departure(f"more-d-{i}", format_utc(1663718400 + 6_000 * 20 + i * 30), "KZ", "UZ", 1))
        for i in range(300)
    ]

    def trickle() -> None:  # new events arrive during the replay and the verification
        for start in range(0, len(more), 300):
            asyncio.run(produce(kafka, more[start : start + 300]))
            time.sleep(0.4)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    try:
        result = run_replay(deployment, "--verify", "--live", live.url)
    finally:
        feeder.join()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IDENTICAL" in result.stderr
    replay_id = result.stdout.strip().splitlines()[-1]
    assert replay_id.startswith(deployment["BORDERFLOW_APP_ID"] + "-replay-")

    model = Model(partitions=4)
    model.run(messages + more)
    wait_exact(live, model, RANDOM_BORDERS)
    live.stop()
    promoted = spawn_worker("promoted", BORDERFLOW_APP_ID=replay_id)  # the documented promotion: same workers, the replay's app id
    promoted.wait_ready()
    wait_exact(promoted, model, RANDOM_BORDERS)  # the rebuilt state, caught up with everything published since


def test_replay_with_another_grace_shows_the_windows_that_differ(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    messages, _ = prepared(deployment, 1_000, seed=5)
    newest = 1663718400 + 1_000 * 20
    # two hours behind stream time: counted with the live 6 h grace, late with 1 h
    messages.append(keyed(prefix + "crossings", crossing("behind", format_utc(newest - 2 * 3600), "post-3", "RU", "GE", 40)))
    live = counted_by_a_live_worker(spawn_worker, kafka, messages)

    result = run_replay(deployment, "--verify", "--live", live.url, "--grace", "1h")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "DIFFERENT" in result.stderr
    hour = format_utc((newest - 2 * 3600) // 3600 * 3600)
    lines = [line for line in result.stderr.splitlines() if "border post-3" in line and hour in line]
    assert lines and "live" in lines[0] and "replay" in lines[0]


def test_replay_of_empty_topics_finishes_and_says_so(deployment: dict[str, str]) -> None:
    prepared(deployment, 0, seed=1)
    result = run_replay(deployment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replaying 0 messages" in result.stderr
