"""The Grafana dashboards, as code (grafana-foundation-sdk). ``make dashboards`` writes grafana/dashboards/*.json.

Two boards: **Operations** (what the numbers say: checkpoints, countries, net
inflow, queues, statements against observed figures) and **Pipeline health**
(whether to trust them: outcomes, dead letters, stream time and consumer lag
per partition, state size, rebalances, workers). Every border or country
gauge is summed across workers, since only the owner of a key's partition
exports it. ``tests/unit/test_dashboards.py`` keeps the JSON current;
``tests/e2e/test_observability.py`` runs every query against a Prometheus
that scraped two real workers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row, ThresholdsConfig
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode, VariableOption, VariableRefresh
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).parent / "dashboards"
DATASOURCE_UID = "borderflow-prometheus"  # fixed in grafana/provisioning/datasources/prometheus.yml
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
Panel = timeseries.Panel | stat.Panel | table.Panel | bargauge.Panel


def query(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> Dataquery:
    q = Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def levels(base: str = "green", *steps: tuple[float, str]) -> ThresholdsConfig:
    """Absolute thresholds: ``base`` below the first step, then each step's colour from its value up."""
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(None, base), *(Threshold(v, c) for v, c in steps)])


#: a backlog beyond this is what BorderflowFallingBehind watches (prometheus/alerts.yml)
BACKLOG = levels("green", (10_000, "orange"))
#: 1 is a worker that is ready; 0 one that recovers or is gone
READY = levels("red", (1, "green"))


def series(
    title: str, description: str, *targets: Dataquery, unit: str = "short", width: int = 12, thresholds: ThresholdsConfig | None = None
) -> timeseries.Panel:
    """A time series; thresholds given are drawn as lines, and all panels have some (a base colour at least)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds or levels())
        .span(width)
        .height(8)
    )
    if thresholds is not None:
        panel = panel.thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    for target in targets:
        panel = panel.with_target(target)
    return panel


#: joins each checkpoint's display name onto a series by ``border`` (one info series per checkpoint, even mid-rebalance)
NAMED: Final = "* on(border) group_left(name) topk by (border) (1, borderflow_checkpoint_info)"


def variable(name: str, label: str, metric: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def operations() -> Dashboard:
    b, c = 'border=~"$border"', 'country=~"$country"'
    return (
        Dashboard("borderflow / Operations")
        .uid("borderflow-operations")
        .description("Crossings per checkpoint and country, net inflow, queues, and official statements against observed events.")
        .tags(["borderflow"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(variable("border", "Checkpoint", "borderflow_crossings"))
        .with_variable(variable("country", "Country", "borderflow_country_entries"))
        .with_row(Row("Checkpoints"))
        .with_panel(
            series(
                "Crossings per checkpoint, current hour",
                "People in the 1 h event-time bucket that holds stream time.",
                query(f'sum by (border, name) (borderflow_crossings{{window="1h", {b}}} {NAMED})', "{{name}}"),
            )
        )
        .with_panel(
            series(
                "Crossings per checkpoint, rolling 24 h",
                "People in the 24 h of event time ending with the current hour.",
                query(f'sum by (border, name) (borderflow_crossings{{window="24h", {b}}} {NAMED})', "{{name}}"),
            )
        )
        .with_panel(
            bargauge.Panel()
            .title("Top checkpoints, 24 h")
            .description("The ten busiest checkpoints over the rolling day.")
            .datasource(DATASOURCE)
            .unit("short")
            .thresholds(levels())
            .span(12)
            .height(8)
            .with_target(query(f'topk(10, sum by (border, name) (borderflow_crossings{{window="24h"}} {NAMED}))', "{{name}}", instant=True))
        )
        .with_panel(
            stat.Panel()
            .title("Queue length from statements")
            .description("The latest queue lengths (km) published in statements, per country and source.")
            .datasource(DATASOURCE)
            .unit("lengthkm")
            .thresholds(levels())
            .span(12)
            .height(8)
            .with_target(
                query(f'max by (country, source) (borderflow_statement_value{{metric="queue_km", {c}}})', "{{country}} {{source}}")
            )
        )
        .with_row(Row("Countries"))
        .with_panel(
            series(
                "Entries per destination country, 24 h",
                "Crossings into each country over the rolling day.",
                query(f'sum by (country) (borderflow_country_entries{{window="24h", {c}}})', "{{country}}"),
                width=8,
            )
        )
        .with_panel(
            series(
                "Onward departures per host country, 24 h",
                "Departures out of each host country over the rolling day.",
                query(f'sum by (country) (borderflow_country_departures{{window="24h", {c}}})', "{{country}}"),
                width=8,
            )
        )
        .with_panel(
            series(
                "Net inflow per country, 24 h",
                "Entries minus onward departures over the rolling day.",
                query(f'sum by (country) (borderflow_net_inflow{{window="24h", {c}}})', "{{country}}"),
                width=8,
            )
        )
        .with_row(Row("Statements"))
        .with_panel(
            table.Panel()
            .title("Statements against observed events")
            .description("Each published figure, the figure borderflow observed over the same period, and their ratio.")
            .datasource(DATASOURCE)
            .unit("short")
            .thresholds(levels())
            .span(24)
            .height(9)
            .with_target(query(f"sum by (country, metric, source) (borderflow_statement_value{{{c}}})", "value", instant=True))
            .with_target(
                query(f"sum by (country, metric, source) (borderflow_statement_observed{{{c}}})", "observed", instant=True, ref="B")
            )
            .with_target(query(f"sum by (country, metric, source) (borderflow_statement_ratio{{{c}}})", "ratio", instant=True, ref="C"))
        )
        .with_panel(
            series(
                "Statement / observed ratio",
                "1 means the statement matches what the feeds show; the alert fires beyond 1.5 either way.",
                query(f"max by (country, metric, source) (borderflow_statement_ratio{{{c}}})", "{{country}} {{metric}} {{source}}"),
                unit="none",
                width=24,
                # BorderflowStatementDivergence's bounds
                thresholds=levels("red", (0.67, "green"), (1.5, "red")),
            )
        )
    )


def pipeline() -> Dashboard:
    return (
        Dashboard("borderflow / Pipeline health")
        .uid("borderflow-pipeline")
        .description("Whether the numbers can be trusted: outcomes, dead letters, stream time, lag, state, rebalances, workers.")
        .tags(["borderflow"])
        .refresh("30s")
        .time("now-1h", "now")
        .with_row(Row("Events"))
        .with_panel(
            series(
                "Events by outcome",
                "Per second, by type and outcome (accepted, duplicate, late, invalid).",
                query("sum by (type, outcome) (rate(borderflow_events_total[$__rate_interval]))", "{{type}} {{outcome}}"),
                unit="ops",
            )
        )
        .with_panel(
            series(
                "Dead letters by reason",
                "Messages sent to borderflow-dlq per second; invalid:<field> names the field.",
                query("sum by (reason) (rate(borderflow_dead_letters_total[$__rate_interval]))", "{{reason}}"),
                unit="ops",
            )
        )
        .with_panel(
            series(
                "Uncommitted messages per partition",
                "End offset minus committed offset, from Faust's consumer (input and changelog partitions).",
                query(
                    "max by (topic, partition) (faust_topic_partition_end_offset)"
                    " - on (topic, partition) max by (topic, partition) (faust_topic_partition_offset_commited)",
                    "{{topic}}/{{partition}}",
                ),
                thresholds=BACKLOG,
            )
        )
        .with_panel(
            series(
                "Ingest requests by status",
                "POST /events answers per second by HTTP status code.",
                query("sum by (code) (rate(borderflow_ingest_requests_total[$__rate_interval]))", "{{code}}"),
                unit="reqps",
            )
        )
        .with_row(Row("Stream time and lag"))
        .with_panel(
            series(
                "Stream time per partition",
                "The largest event time seen in each input partition.",
                query("max by (topic, partition) (borderflow_stream_time_seconds) * 1000", "{{topic}}/{{partition}}"),
                unit="dateTimeAsIso",
            )
        )
        .with_panel(
            series(
                "Stream time lag per partition",
                "How far each partition's stream time is behind the newest partition of its topic.",
                query(
                    "max by (topic) (borderflow_stream_time_seconds)"
                    " - on (topic) group_right () max by (topic, partition) (borderflow_stream_time_seconds)",
                    "{{topic}}/{{partition}}",
                ),
                unit="s",
            )
        )
        .with_panel(
            series(
                "Consumer lag per partition",
                "Messages published but not yet applied.",
                query("sum by (topic, partition) (borderflow_consumer_lag)", "{{topic}}/{{partition}}"),
                thresholds=BACKLOG,
            )
        )
        .with_panel(
            series(
                "Batch processing time, p95",
                "Time to apply one batch of one partition and queue its state writes.",
                query("histogram_quantile(0.95, sum by (le) (rate(borderflow_batch_seconds_bucket[$__rate_interval])))", "p95"),
                unit="s",
            )
        )
        .with_row(Row("State and workers"))
        .with_panel(
            series(
                "State size",
                "Keys per table on all workers (state records and remembered event ids).",
                query("sum by (table) (borderflow_state_keys)", "{{table}}"),
                width=8,
            )
        )
        .with_panel(
            series(
                "Rebalances",
                "Partition assignments received, all workers.",
                query("sum(increase(borderflow_rebalances_total[$__rate_interval]))", "assignments"),
                width=8,
            )
        )
        .with_panel(
            stat.Panel()
            .title("Workers up / ready")
            .description("Scraped workers, and those that have recovered their state (ready to answer).")
            .datasource(DATASOURCE)
            .unit("none")
            .thresholds(READY)
            .span(8)
            .height(8)
            .with_target(query('sum(up{job="borderflow"})', "up"))
            .with_target(query("sum(borderflow_ready)", "ready", ref="B"))
        )
        .with_panel(
            series(
                "Ready per worker",
                "1 when the worker has recovered its state and answers; 0 while it recovers after a start or rebalance.",
                query("max by (instance) (borderflow_ready)", "{{instance}}"),
                unit="none",
                width=8,
                thresholds=READY,
            )
        )
        .with_panel(
            series(
                "Resident memory per worker",
                "process_resident_memory_bytes.",
                query('process_resident_memory_bytes{job="borderflow"}', "{{instance}}"),
                unit="bytes",
                width=8,
            )
        )
        .with_panel(
            series(
                "CPU per worker",
                "Cores used.",
                query('rate(process_cpu_seconds_total{job="borderflow"}[$__rate_interval])', "{{instance}}"),
                unit="percentunit",
                width=8,
            )
        )
    )


BOARDS = {"operations": operations, "pipeline-health": pipeline}


def rendered() -> dict[Path, str]:
    encoder = JSONEncoder(sort_keys=True, indent=2)
    out = {}
    for name, build in BOARDS.items():
        board: Any = json.loads(encoder.encode(build().build()))
        out[OUT / f"{name}.json"] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
