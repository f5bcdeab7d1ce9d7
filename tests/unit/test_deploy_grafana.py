"""Grafana: committed dashboards equal what the generator produces, every query parses (promtool),
names only metrics that exist, and reads the provisioned datasource."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from deploylab.services.dashboards.inventory import dashboard_queries
from deploylab.services.dashboards.queries import P99_SLO_SECONDS
from deploylab.services.dashboards.render import DASHBOARD_DIR, DASHBOARDS, render_all
from deploylab.services.gateway import metrics as gateway_metrics
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

#: Triton's metrics the dashboards may use (docs/contracts.md, plus host/GPU gauges Triton exports).
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us", "nv_inference_pending_request_count",
    "nv_cpu_utilization", "nv_cpu_memory_used_bytes",
    "nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage",
}  # fmt: skip


def boards() -> dict[str, dict]:  # type: ignore[type-arg]
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def gateway_series_names() -> set[str]:
    """Exposition names of every metric in services/gateway/metrics.py (counters get `_total`, …)."""
    names = set()
    for value in vars(gateway_metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
                for suffix in suffixes.get(family.type, [""]):
                    names.add(family.name + suffix)
    return names


def recorded_names() -> set[str]:
    return {rule["record"] for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]
            for rule in g["rules"] if "record" in rule}  # fmt: skip


def test_committed_dashboards_equal_the_generated_json() -> None:
    generated = render_all()
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert set(committed) == set(DASHBOARDS), "dashboard files and generator disagree"
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"stale dashboards {stale}: run `python -m deploylab.services.dashboards`"


def test_the_four_dashboards_exist_with_unique_uids_and_panel_ids() -> None:
    uids = {board["uid"] for board in boards().values()}
    assert uids == {"deploylab-overview", "deploylab-triton", "deploylab-comparison", "deploylab-loadtest"}
    for name, board in boards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name


def test_every_panel_reads_the_provisioned_prometheus_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    datasource = provisioned["datasources"][0]
    for name, board in boards().items():
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": datasource["type"], "uid": datasource["uid"]}, name


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    """Each query (variables filled as Grafana would) becomes a recording rule promtool must accept."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run `make system-deps` (Debian package prometheus)"
    queries = list(dashboard_queries())
    rules = [{"record": f"dashboard_query_{i}", "expr": q.concrete()} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_queries_name_only_metrics_the_gateway_triton_or_the_rules_produce() -> None:
    known = gateway_series_names() | TRITON_METRICS | recorded_names() | {"ALERTS"}
    assert "deploylab_gateway_request_duration_seconds_bucket" in known  # the helper sees metrics.py
    for query in dashboard_queries():
        expr = re.sub(r'"[^"]*"', '""', query.expr)  # label values are not metric names
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
            if token.startswith(("deploylab_", "nv_")) or ":" in token:
                assert token in known, f"{query.dashboard} / {query.title}: unknown metric {token}"


@pytest.mark.parametrize(
    ("dashboard", "must_mention"),
    [
        ("overview.json", ['quantile="0.5"', 'quantile="0.95"', 'quantile="0.99"', "errors", "in_flight"]),
        ("triton.json", ["queue_duration", "compute_infer", "batch_size", "busy_instances", "nv_gpu_"]),
        ("comparison.json", ["repvgg.*_train", "repvgg.*_deploy", "shadow_requests_total"]),
        ("loadtest.json", ["pending_request_count", "in_flight"]),
    ],
)
def test_each_dashboard_shows_what_the_issue_asks_for(dashboard: str, must_mention: list[str]) -> None:
    board = json.loads((DASHBOARD_DIR / dashboard).read_text())
    text = "\n".join(q.expr for q in dashboard_queries() if q.dashboard == board["uid"])
    for needle in must_mention:
        assert needle in text, f"{dashboard} lacks {needle}"


def test_load_test_dashboard_annotates_phases_traffic_and_alerts() -> None:
    annotations = boards()["loadtest.json"]["annotations"]["list"]
    tags = [a for a in annotations if a.get("target", {}).get("type") == "tags"]
    assert tags and set(tags[0]["target"]["tags"]) == {"deploylab", "loadtest"}
    assert {a["name"] for a in annotations if "expr" in a} == {"Traffic", "Alerts firing"}


def test_p99_slo_line_matches_the_alert_threshold() -> None:
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/rules/alerts.yml").read_text())["groups"][0]["rules"]
    slo = next(rule for rule in alerts if rule["alert"] == "DeploylabP99OverSLO")
    assert float(slo["expr"].rsplit(">", 1)[1]) == P99_SLO_SECONDS


def test_dashboard_provider_is_file_based_and_read_only() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "deploylab.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
