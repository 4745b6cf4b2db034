"""A retry of an event whose first publication is still in flight is refused (409), never answered "duplicate"."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.broker.apache_kafka import KafkaCluster
from streams.broker.embedded import free_port
from tests.factories import WorkerProcess, create_topics, crossing, ndjson
from tests.support import INGEST_TOKEN, post_events, unique

pytestmark = pytest.mark.e2e
AT = "2022-09-21T10:15:00Z"


def test_a_retry_while_the_first_attempt_is_in_flight_is_409(tmp_path: Path) -> None:
    cluster = KafkaCluster(nodes=1, base_dir=tmp_path / "kafka").start()
    broker = cluster.node(1)
    worker = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")} | {
            "BORDERFLOW_KAFKA": cluster.bootstrap,
            "BORDERFLOW_APP_ID": unique("in-flight"),
            "BORDERFLOW_TOPIC_PREFIX": unique("t") + ".",
            "BORDERFLOW_INGEST_TOKEN": INGEST_TOKEN,
            "BORDERFLOW_DATA_DIR": str(tmp_path / "w"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        create_topics(env)
        port = free_port()
        worker = WorkerProcess(env=env | {"BORDERFLOW_WEB_PORT": str(port)}, port=port, log=tmp_path / "w.log").start()
        worker.wait_ready()
        assert post_events(worker.url, ndjson(crossing("warm-up", AT)))[0] == 202  # the publisher is connected

        broker.signal(signal.SIGSTOP)  # the broker freezes: the next publication waits for its acknowledgement
        first: dict[str, Any] = {}
        attempt = threading.Thread(target=lambda: first.update(answer=post_events(worker.url, ndjson(crossing("in-flight-1", AT)))))
        attempt.start()
        time.sleep(1.5)
        assert attempt.is_alive()
        status, answer, _ = post_events(worker.url, ndjson(crossing("in-flight-1", AT), crossing("other-1", AT)))
        assert status == 409 and answer["field"] == "event_id" and "in-flight-1" in answer["reason"]
        broker.signal(signal.SIGCONT)
        attempt.join(60)
        assert first["answer"][0] == 202 and first["answer"][1]["accepted"] == 1
        status, answer, _ = post_events(worker.url, ndjson(crossing("in-flight-1", AT), crossing("other-1", AT)))
        assert status == 202 and (answer["duplicate"], answer["accepted"]) == (1, 1)  # now it is in, and the other was never sent
    finally:
        broker.signal(signal.SIGCONT)
        if worker is not None:
            worker.stop()
        cluster.stop()
