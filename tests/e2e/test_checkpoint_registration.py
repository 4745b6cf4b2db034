"""Checkpoints registered while a worker runs: counted from their place in the input on, named in /overview, replayed exactly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from tests.factories import T0, create_topics, crossing, keyed, registration
from tests.support import Model, http_get, produce, run_replay, wait_exact

pytestmark = pytest.mark.e2e
SLUGS = [f"zz-{i}" for i in range(20)]


def register(env: dict[str, str], slug: str, countries: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "checkpoint", slug, "--countries", countries, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_checkpoint_registered_at_run_time_counts_from_then_on_and_replays_exactly(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    env = deployment | {"BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS": "8"}  # two per partition of 4
    crossings = env["BORDERFLOW_TOPIC_PREFIX"] + "crossings"
    create_topics(env)
    worker = spawn_worker("w1", BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS="8")
    worker.wait_ready()
    model = Model(partitions=4, unregistered_per_partition=2)

    before = [keyed(crossings, crossing(f"a-{slug}", T0, slug, "RU", "KZ", 3)) for slug in SLUGS]
    before.append(keyed(crossings, crossing("a-lars", T0, "upper-lars", count=5)))
    asyncio.run(produce(kafka, before))
    model.run(before)
    refused = [slug for slug in SLUGS if not model.hourly("border", slug)]
    assert len(refused) == len(SLUGS) - 8
    wait_exact(worker, model, SLUGS)
    assert worker.metric("borderflow_dead_letters_total", reason="too-many-checkpoints") == len(refused)

    late_comer = refused[0]
    done = register(env, late_comer, "RU,KZ", "Late Comer")
    assert done.returncode == 0, done.stderr
    assert f"registered {late_comer} (Late Comer) between KZ and RU" in done.stdout
    renamed = register(env, "upper-lars", "GE,RU", "Verkhny Lars")
    assert renamed.returncode == 0, renamed.stderr
    wrong = register(env, "zz-x", "RU,XX", "Nowhere")
    assert wrong.returncode == 2 and "--countries" in wrong.stderr and "'XX'" in wrong.stderr

    after = [
        keyed(crossings, crossing("b-counted", T0 + 60, late_comer, "KZ", "RU", 7)),
        keyed(crossings, crossing("b-wrong", T0 + 61, late_comer, "RU", "GE", 11)),  # not between its registered countries
        keyed(crossings, crossing("b-lars", T0 + 62, "upper-lars", "GE", "RU", 2)),
    ]
    asyncio.run(produce(kafka, after))
    # the model judges the same input; the registrations' own bytes differ only in id and time
    model = Model(partitions=4, unregistered_per_partition=2)
    model.run(
        [
            *before,
            keyed(crossings, registration("r-1", T0, late_comer, ("RU", "KZ"), "Late Comer")),
            keyed(crossings, registration("r-2", T0, "upper-lars", ("GE", "RU"), "Verkhny Lars")),
            *after,
        ]
    )
    assert model.hourly("border", late_comer) == {T0: 7}
    wait_exact(worker, model, [*SLUGS, "upper-lars"])
    invalid = worker.metric("borderflow_dead_letters_total", reason="invalid")  # the label is the reason before its field
    assert invalid == model.outcomes["invalid"] - len(refused) == 1

    status, overview = http_get(worker.url + "/overview")
    assert status == 200
    assert overview["checkpoints"][late_comer] == {"name": "Late Comer", "registered": True}
    assert overview["checkpoints"]["upper-lars"] == {"name": "Verkhny Lars", "registered": True}
    assert refused[1] not in overview["checkpoints"], "a checkpoint whose every crossing was refused has no counts"
    assert all(part.keys().isdisjoint({"registered"}) for part in overview["workers"])
    # and the dashboards: each counted checkpoint's name and registration, joined to the gauges on `border`
    info = worker.metric_lines("borderflow_checkpoint_info")
    assert f'borderflow_checkpoint_info{{border="{late_comer}",name="Late Comer",registered="true"}} 1.0' in info
    assert 'borderflow_checkpoint_info{border="upper-lars",name="Verkhny Lars",registered="true"} 1.0' in info
    counted = next(slug for slug in SLUGS if model.hourly("border", slug) and slug != late_comer)
    assert f'borderflow_checkpoint_info{{border="{counted}",name="{counted}",registered="false"}} 1.0' in info
    assert len(info) == len([slug for slug in SLUGS if model.hourly("border", slug)]) + 1

    # the registrations are state: a restarted worker knows them, and a replay applies them at the same places
    worker.kill()
    worker = spawn_worker("w1", port=worker.port, BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS="8")
    worker.wait_ready(timeout=120)
    wait_exact(worker, model, [*SLUGS, "upper-lars"])
    assert http_get(worker.url + "/overview")[1]["checkpoints"][late_comer]["name"] == "Late Comer"
    result = run_replay(env, "--verify", "--live", worker.url)
    assert result.returncode == 0 and "IDENTICAL" in result.stderr, result.stderr[-2000:]
