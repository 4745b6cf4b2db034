"""prometheus/: the config and rules load, every alert is tested by promtool and documented in the runbook."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring import binary

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = binary("promtool", "prometheus")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_and_rules_are_valid() -> None:
    for args in (("check", "config", "prometheus/prometheus.yml"), ("check", "rules", "prometheus/alerts.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass() -> None:
    result = promtool("test", "rules", "prometheus/tests/alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("# ").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    names = [rule["alert"] for rule in alerts()]
    assert {
        "BorderflowCheckpointSurge",
        "BorderflowStatementDivergence",
        "BorderflowFallingBehind",
        "BorderflowPartitionStuck",
        "BorderflowDeadLetterRate",
        "BorderflowWorkerDown",
        "BorderflowNoEvents",
    } <= set(names)
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, (rule["alert"], anchor)


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests" / "alerts.test.yml").read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for group in tests:
        for case in group["alert_rule_test"]:
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    for name in (rule["alert"] for rule in alerts()):
        assert name in fired, f"{name} is never shown to fire"
    assert len(silent) >= 5
