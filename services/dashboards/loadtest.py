"""Load test: the whole system under a load test, with the test's phases as annotations.

Three annotation sources, so phases show up whatever drives the load:
- Grafana annotations tagged `deploylab` + `loadtest` (posted by load-test tooling to /api/annotations),
- "Traffic" regions: wherever the gateway served inference requests,
- firing deploylab alerts.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from . import queries as q
from .panels import (
    TAG,
    Panel,
    Section,
    new_dashboard,
    query_annotation,
    tag_annotation,
    timeseries_panel,
    with_sections,
)

UID = "deploylab-loadtest"
ALL_MODELS = 'model=~".+"'
FIRING = 'ALERTS{alertstate="firing", alertname=~"Deploylab.*"}'


def _saturation() -> list[Panel]:
    by_status = (f"sum by (status) (rate(deploylab_gateway_requests_total{{{q.INFERENCE_ROUTES}}}"
                 f"[{q.RATE_WINDOW}]))")
    return [
        timeseries_panel("Error ratio (5xx + 429)", "Failed share of all inference requests; 429s mean the "
                         "gateway shed load.", "percentunit",
                         (q.weighted_error_ratio(ALL_MODELS), "all models"), span=8, threshold=0.01),
        timeseries_panel("Triton queue vs compute", "Seconds per request across all models: queue growing "
                         "while compute stays flat is the saturation point.", "s",
                         (q.triton_counter_per_request("nv_inference_queue_duration_us"), "queue"),
                         (q.triton_counter_per_request("nv_inference_compute_infer_duration_us"), "compute"),
                         span=8),
        timeseries_panel("Executed batch size and CPU", "Images per execution across models, and host CPU "
                         "utilisation in percent.", "short",
                         (f"sum({q.TRITON_INFERENCE_RATE}) / sum({q.TRITON_EXEC_RATE})", "batch size"),
                         ("avg(nv_cpu_utilization) * 100", "CPU %"), span=8),
        timeseries_panel("Responses by status", "Every inference response per second by HTTP status.",
                         "reqps", (by_status, "{{status}}"), span=24, stacked=True),
    ]


def build() -> Dashboard:
    board = (
        new_dashboard(UID, "deploylab / Load test", "Throughput, concurrency and latency of the whole "
                      "system during a load test, annotated with the test's phases.")
        .time("now-15m", "now")
        .refresh("5s")
        .annotation(tag_annotation("Load-test phases", [TAG, "loadtest"], "purple"))
        .annotation(query_annotation("Traffic", f"{q.JOB_REQUESTS_RATE} > 0", "blue"))
        .annotation(query_annotation("Alerts firing", FIRING, "red"))
    )
    sections: list[Section] = [
        ("Load", [
            timeseries_panel("Throughput", "Requests and images served per second across all models.",
                             "short", (f"sum({q.JOB_REQUESTS_RATE})", "requests/s"),
                             (f"sum({q.IMAGES_RATE})", "images/s")),
            timeseries_panel("Concurrency", "Requests inside the gateway vs requests waiting in Triton's "
                             "queues.", "short",
                             ("sum(deploylab_gateway_in_flight_requests)", "in flight (gateway)"),
                             ("sum(nv_inference_pending_request_count)", "pending (Triton)")),
        ]),
        ("Latency", [
            timeseries_panel("Latency, all models", "Gateway p50/p95/p99 over every inference request.", "s",
                             (q.quantile(q.JOB_LATENCY_QUANTILE, "0.5"), "p50"),
                             (q.quantile(q.JOB_LATENCY_QUANTILE, "0.95"), "p95"),
                             (q.quantile(q.JOB_LATENCY_QUANTILE, "0.99"), "p99"),
                             threshold=q.P99_SLO_SECONDS),
            timeseries_panel("p99 by model and variant", "Which model hits the wall first.", "s",
                             (q.quantile(q.LATENCY_QUANTILE, "0.99"), "{{model}}/{{variant}}"),
                             threshold=q.P99_SLO_SECONDS),
        ]),
        ("Saturation", _saturation()),
    ]
    return with_sections(board, sections)
