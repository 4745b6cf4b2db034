"""``borderflow bench`` runs end to end on a small N and prints well-formed figures (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from events.partitioning import partition_for_key
from streams.broker.apache_kafka import kafka_version
from streams.tools.bench import INPUT_SHAPES, bench_events

pytestmark = pytest.mark.e2e


def test_bench_on_a_small_topic_reports_every_contestant() -> None:
    """With no --kafka the bench starts its own Apache Kafka node (BORDERFLOW_KAFKA points it at a cluster)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_") or k == "BORDERFLOW_KAFKA"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "bench",
            "--events",
            "3000",
            "--cells",
            "300",
            "--baseline-events",
            "500",
            "--workers",
            "2",
            "--misrouted",
            "50",  # half the events away from home: the workers finish only once every forwarded copy is read
            "--timeout",
            "180",
            "--json",
        ],
        env=env,
        capture_output=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    figures = orjson.loads(done.stdout)
    assert figures["misrouted_percent"] == 50
    names = [r["name"] for r in figures["results"]]
    assert names == [
        "bare aiokafka consumer",
        "idiomatic Faust agent (table update per event)",
        "borderflow worker",
        "borderflow, 2 workers",
        "pure core in process, no Kafka",
    ]
    bare, baseline, worker, two, core = figures["results"]
    assert core["events"] == 3000 and core["peak_rss_mb"] is None
    assert bare["events"] == worker["events"] == two["events"] == 3000
    assert baseline["events"] == 500
    for row in figures["results"]:
        assert row["seconds"] > 0 and row["events_per_s"] > 0 and row["ratio_to_bare"] > 0
    for row in (bare, baseline, worker, two):  # the in-process core may well outrun a small consumer run
        assert row["ratio_to_bare"] <= 1.5
    assert worker["peak_rss_mb"] > 10
    assert worker["first_result_s"] is not None and worker["first_result_s"] <= worker["seconds"]
    assert worker["speedup_over_baseline"] > 0
    assert worker["dead_letters"] == two["dead_letters"] == 0
    # the rate after the first result leaves out the process start, so it is never below the whole run's
    assert worker["drain_events_per_s"] is None or worker["drain_events_per_s"] >= worker["events_per_s"]
    assert figures["compression"] == "zstd"
    given = os.environ.get("BORDERFLOW_KAFKA")
    assert figures["broker"] == (f"the cluster at {given}" if given else f"Apache Kafka {kafka_version()}, one KRaft node")


def test_bench_with_default_producer_input_reports_its_shape(kafka: str) -> None:
    """Input as an upstream producer with aiokafka's defaults sends it: uncompressed, 12 checkpoints, one of 4 partitions empty."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "bench",
            "--kafka",
            kafka,
            "--input-shape",
            "default-producer",
            "--fetch-max-wait-ms",
            "200",
            "--events",
            "2000",
            "--baseline-events",
            "0",
            "--timeout",
            "120",
            "--json",
        ],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    figures = orjson.loads(done.stdout)
    assert (figures["input_shape"], figures["checkpoints"], figures["compression"]) == ("default-producer", 12, "none")
    assert figures["fetch_max_wait_ms"] == 200
    names = [r["name"] for r in figures["results"]]
    assert names == ["bare aiokafka consumer", "borderflow worker", "pure core in process, no Kafka"]
    for row in figures["results"]:
        assert row["events"] == 2000 and row["events_per_s"] > 0
    worker = figures["results"][1]
    assert worker["dead_letters"] == 0, "the bench measured the dead-letter path, not counting"


def test_default_producer_events_leave_one_partition_empty_and_the_others_uneven() -> None:
    shape = INPUT_SHAPES["default-producer"]
    assert shape.checkpoints is not None
    events = bench_events(12_000, cells=1, checkpoints=shape.checkpoints)
    per_partition = Counter(partition_for_key(key, 4) for key, _, _ in events)
    assert len({key for key, _, _ in events}) == 12
    assert sorted(per_partition) == [0, 1, 3]  # partition 2 gets nothing
    assert max(per_partition.values()) > 2 * min(per_partition.values())
