"""grafana/: the committed dashboards are what the code generates, and they point at the provisioned datasource."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_dashboards", ROOT / "grafana" / "dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}


def test_committed_dashboards_are_current() -> None:
    rendered = generator().rendered()
    assert {p.name for p in rendered} == {f"{name}.json" for name in boards()}
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path} is stale: run make dashboards"


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    provisioned = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]["uid"]
    for name, board in boards().items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 8, name
        for panel in panels:
            assert panel["datasource"]["uid"] == provisioned, (name, panel["title"])
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs) and all(refs), (name, panel["title"])


def test_operations_board_has_border_and_country_variables_used_by_its_queries() -> None:
    board = boards()["operations"]
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"border", "country"} <= names
    exprs = " ".join(t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"])
    assert 'border=~"$border"' in exprs and 'country=~"$country"' in exprs


def test_dashboards_use_only_metrics_the_workers_export_or_prometheus_adds() -> None:
    exported = set(re.findall(r'"(borderflow_[a-z_]+)"', (ROOT / "streams" / "engine" / "metrics.py").read_text()))
    for board in boards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                for name in re.findall(r"\b(borderflow_[a-z_]+)", target["expr"]):
                    base = re.sub(r"_(total|bucket|sum|count)$", "", name)
                    assert base in exported, (panel["title"], name)


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, board in boards().items() for panel in board["panels"] if panel["type"] != "row"]


def test_every_panel_has_a_datasource_a_unit_and_absolute_thresholds_from_a_base_colour() -> None:
    for name, panel in panels():
        where = (name, panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "borderflow-prometheus"}, where
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), where
        thresholds = defaults.get("thresholds")
        assert thresholds and thresholds["mode"] == "absolute", where
        base, *steps = thresholds["steps"]
        assert base["value"] is None and base["color"], where
        values = [step["value"] for step in steps]
        assert values == sorted(values) and all(step["color"] for step in steps), where


def test_thresholds_drawn_on_a_panel_are_the_alert_rules_own_numbers() -> None:
    groups = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())["groups"]
    rules = {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}
    alert_of_panel = {
        "Statement / observed ratio": "BorderflowStatementDivergence",
        "Consumer lag per partition": "BorderflowFallingBehind",
        "Uncommitted messages per partition": "BorderflowFallingBehind",
    }
    drawn = {panel["title"]: panel for _, panel in panels() if panel["fieldConfig"]["defaults"].get("custom", {}).get("thresholdsStyle")}
    assert set(alert_of_panel) <= set(drawn)
    for title, alert in alert_of_panel.items():
        steps = drawn[title]["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]
        numbers = {float(n.replace("_", "")) for n in re.findall(r"[<>]=? *([\d.]+)", rules[alert])}
        assert {step["value"] for step in steps} <= numbers, (title, alert, numbers)


def test_the_sdk_build_targets_the_grafana_that_docker_compose_runs() -> None:
    """grafana-foundation-sdk publishes one build per Grafana release; the newest epoch is not the newest Grafana."""
    from importlib.metadata import version

    targeted = version("grafana-foundation-sdk").partition("!")[2]
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]["image"]
    assert targeted.split(".")[:2] == image.rpartition(":")[2].split(".")[:2], (targeted, image)
