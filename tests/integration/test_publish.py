"""``borderflow publish`` as an operator runs it: files, stdin, dry runs and the report of rejected lines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.factories import CROSSING, DEPARTURE
from tests.support import consume_all

pytestmark = pytest.mark.integration


def run(env: dict[str, str], *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "publish", "--quiet", *args],
        env=env,
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def topic_values(deployment: dict[str, str], name: str, expected: int) -> list[dict[str, object]]:
    records = asyncio.run(consume_all(deployment["BORDERFLOW_KAFKA"], deployment["BORDERFLOW_TOPIC_PREFIX"] + name, expected, timeout=5))
    return [orjson.loads(r.value) for r in records]


def test_files_and_stdin_are_published_and_every_rejected_line_is_reported(deployment: dict[str, str], tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "cli", "topics"], env=deployment, check=True, capture_output=True, timeout=60)
    good = tmp_path / "good.ndjson"
    good.write_bytes(b"\n".join(orjson.dumps(CROSSING | {"event_id": f"n{i}"}) for i in range(3)) + b"\n")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "type,event_id,occurred_at,country,destination,count\n"
        f"departure,d1,{DEPARTURE['occurred_at']},KZ,UZ,40\n"
        f"departure,d2,{DEPARTURE['occurred_at']},KZ,KZ,5\n"
        f"departure,d3,{DEPARTURE['occurred_at']},KZ,KG,zero\n"
    )

    dry = run(deployment, "--dry-run", str(good), str(mixed))
    assert dry.returncode == 1
    assert f"{mixed}:3: rejected: destination: same as country" in dry.stderr
    assert f"{mixed}:4: rejected: count: wrong type" in dry.stderr
    assert dry.stdout.strip().startswith("4 valid, 2 rejected")

    stdin = orjson.dumps(CROSSING | {"event_id": "s1"}) + b"\n{broken\n"
    done = run(deployment, str(good), str(mixed), "-", stdin=stdin)
    assert done.returncode == 1
    assert "-:2: rejected: $: invalid JSON" in done.stderr
    assert done.stdout.strip().startswith("5 published, 3 rejected")
    crossings = topic_values(deployment, "crossings", 4)
    assert sorted(str(v["event_id"]) for v in crossings) == ["n0", "n1", "n2", "s1"]  # the dry run published nothing
    assert [v["event_id"] for v in topic_values(deployment, "departures", 1)] == ["d1"]

    clean = run(deployment, str(good))
    assert clean.returncode == 0 and clean.stdout.strip() == "3 published, 0 rejected"


def test_a_missing_file_is_a_usage_error_before_anything_is_published(deployment: dict[str, str], tmp_path: Path) -> None:
    result = run(deployment, str(tmp_path / "nope.ndjson"))
    assert result.returncode == 2 and "no such file" in result.stderr
