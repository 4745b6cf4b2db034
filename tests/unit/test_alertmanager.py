"""alertmanager/: the configuration loads (amtool check-config), routes every alert by severity, and its template
puts the summary, the figures and the runbook link into a notification."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring import binary

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
RECEIVER_OF_SEVERITY = {"critical": "on-call", "warning": "operations"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = binary("amtool", "prometheus-alertmanager")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "2 receivers" in result.stdout and "1 inhibit rules" in result.stdout


def test_every_alert_goes_to_the_receiver_of_its_severity() -> None:
    for rule in alerts():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *(f"{k}={v}" for k, v in labels.items()))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [RECEIVER_OF_SEVERITY[rule["labels"]["severity"]]], (rule["alert"], result.stdout)


def test_notifications_are_grouped_by_alert_and_checkpoint_or_country_and_every_receiver_reports_resolution() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["route"]["group_by"] == ["alertname", "border", "country"]
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['alertname="BorderflowWorkerDown"'] and inhibit["equal"] == ["instance"]
    assert {r["name"] for r in config["receivers"]} == set(RECEIVER_OF_SEVERITY.values())
    for receiver in config["receivers"]:
        for slack in receiver["slack_configs"]:
            assert slack["send_resolved"] is True
            assert slack["api_url_file"].startswith("/etc/alertmanager/secrets/"), "a webhook URL is a secret: never in the repository"
            assert "borderflow.text" in slack["text"] and "borderflow.title" in slack["title"]


def render(tmp_path: Path, data: dict[str, Any]) -> str:
    (tmp_path / "data.json").write_text(json.dumps(data))
    result = amtool(
        "template",
        "render",
        f"--template.glob={ROOT / 'alertmanager' / 'templates' / '*.tmpl'}",
        f"--template.data={tmp_path / 'data.json'}",
        '--template.text={{ template "borderflow.title" . }}\n{{ template "borderflow.text" . }}',
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_template_shows_each_alert_s_figures_and_runbook_link(tmp_path: Path) -> None:
    rule = next(r for r in alerts() if r["alert"] == "BorderflowCheckpointSurge")
    labels = {"alertname": rule["alert"], "border": "upper-lars", **rule["labels"]}
    surge = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": "Surge at checkpoint upper-lars",
            "description": "109 people crossed at upper-lars in the current hour of event time, against an hourly average of 35",
            "runbook_url": rule["annotations"]["runbook_url"],
        },
        "startsAt": "2026-12-02T12:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.test/graph?g0.expr=x",
    }
    data = {"status": "firing", "alerts": [surge], "commonLabels": labels, "groupLabels": {}, "commonAnnotations": {}}
    text = render(tmp_path, data)
    assert text.splitlines()[0] == "[FIRING:1] BorderflowCheckpointSurge at upper-lars"
    assert "*Surge at checkpoint upper-lars*" in text
    assert "109 people crossed at upper-lars" in text and "average of 35" in text
    assert "Runbook: docs/runbook.md#borderflowcheckpointsurge" in text
    assert "Severity warning, team operations; since 2026-12-02 12:00:00 UTC" in text

    resolved = dict(surge, status="resolved", endsAt="2026-12-02T12:40:00Z")
    text = render(tmp_path, dict(data, status="resolved", alerts=[resolved]))
    assert text.splitlines()[0] == "[RESOLVED] BorderflowCheckpointSurge at upper-lars"
    assert "*Resolved:* *Surge at checkpoint upper-lars*" in text and "resolved 2026-12-02 12:40:00 UTC" in text
