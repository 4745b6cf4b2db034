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
