"""A worker whose local store runs out of disk stops, and recovers exactly once there is room again (a real tmpfs)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from events.times import format_utc
from tests.factories import RANDOM_BORDERS, create_topics, random_crossings
from tests.support import H, Model, http_get, produce

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True)
    options = f"size={size_mb}m,mode=700"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 4096)
    return filler


def border_windows(url: str) -> dict[str, Any]:
    return {b: http_get(f"{url}/counts/borders/{b}?window=1h")[1]["windows"] for b in RANDOM_BORDERS}


def test_disk_full_stops_the_worker_and_a_restart_counts_exactly(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, tmp_path: Path
) -> None:
    create_topics(deployment)
    messages = random_crossings(deployment["BORDERFLOW_TOPIC_PREFIX"], 6000, seed=8)
    model = Model(partitions=4)
    model.run(messages)
    expected = {
        b: [{"start": format_utc(h), "end": format_utc(h + H), "count": c} for h, c in sorted(model.hourly("border", b).items())]
        for b in RANDOM_BORDERS
    }
    with small_disk(tmp_path / "disk", 96) as disk:
        worker = spawn_worker("w1", BORDERFLOW_DATA_DIR=str(disk / "state"))
        worker.wait_ready()
        asyncio.run(produce(kafka, messages[:2000]))
        deadline = time.monotonic() + 60
        while worker.metric("borderflow_events_total") < 2000 and time.monotonic() < deadline:
            time.sleep(0.3)
        filler = fill(disk)
        asyncio.run(produce(kafka, messages[2000:]))
        assert worker.process is not None
        try:
            code = worker.process.wait(90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker kept running with a full disk:\n{worker.tail(60)}")
        assert code != 0
        assert "could not be applied and written" in worker.log.read_text(errors="replace"), worker.tail(60)

        filler.unlink()  # room again: the restarted worker rebuilds its store from the changelog
        worker = spawn_worker("w1", port=worker.port, BORDERFLOW_DATA_DIR=str(disk / "state"))
        worker.wait_ready(timeout=120)
        deadline = time.monotonic() + 120
        while border_windows(worker.url) != expected and time.monotonic() < deadline:
            time.sleep(1)
        assert border_windows(worker.url) == expected
        assert "did not stop cleanly" in worker.log.read_text(errors="replace")
        worker.stop()
