"""Overview: is the gateway healthy right now — traffic, p50/p95/p99, errors, in-flight, by model/variant."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from . import queries as q
from .panels import Panel, Section, label_variable, new_dashboard, stat_panel, timeseries_panel, with_sections

UID = "deploylab-overview"
READY_MAPPING = {"1": ("ready", "green"), "0": ("NOT READY", "red")}
BY_MODEL_VARIANT = "{{model}}/{{variant}}"


def _stats(sel: str) -> list[Panel]:
    return [
        stat_panel("Requests/s", "Inference requests per second (classify + v2 infer).", "reqps",
                   f"sum({q.REQUESTS_RATE}{{{sel}}})"),
        stat_panel("Worst p99", "Highest p99 among the selected models and variants.", "s",
                   f"max({q.quantile(q.LATENCY_QUANTILE, '0.99', sel)})"),
        stat_panel("Error ratio", "5xx and 429 over all inference requests.", "percentunit",
                   q.weighted_error_ratio(sel)),
        stat_panel("In flight", "Requests admitted and waiting on or inside Triton.", "short",
                   f"sum(deploylab_gateway_in_flight_requests{{{q.MODEL}}})"),
        stat_panel("Triton", "The gateway's last Triton readiness probe (worst replica).", "none",
                   "min(deploylab_gateway_triton_up)", mapping=READY_MAPPING),
        stat_panel("Triton models", "Models Triton reports metrics for (loaded).", "short",
                   "count(count by (model) (nv_inference_request_success))"),
    ]


def _latency(sel: str) -> list[Panel]:
    preprocess = q.stage_quantile("deploylab_gateway_preprocess_duration_seconds", 0.95, sel)
    inference = q.stage_quantile("deploylab_gateway_inference_duration_seconds", 0.95, sel)
    return [
        timeseries_panel("p50", "Median latency per model and variant.", "s",
                         (q.quantile(q.LATENCY_QUANTILE, "0.5", sel), BY_MODEL_VARIANT), span=8),
        timeseries_panel("p95", "95th percentile latency per model and variant.", "s",
                         (q.quantile(q.LATENCY_QUANTILE, "0.95", sel), BY_MODEL_VARIANT), span=8),
        timeseries_panel("p99 (dashed: SLO)",
                         "99th percentile latency; the DeploylabP99OverSLO alert fires above the line.", "s",
                         (q.quantile(q.LATENCY_QUANTILE, "0.99", sel), BY_MODEL_VARIANT),
                         span=8, threshold=q.P99_SLO_SECONDS),
        timeseries_panel("Where the time goes (p95)",
                         "Image decode + preprocessing vs the Triton round trip, per model. The rest of "
                         "the request latency is body reading, routing and encoding.", "s",
                         (preprocess, "{{model}} preprocess"), (inference, "{{model}} inference"), span=24),
    ]


def _errors_and_load(sel: str) -> list[Panel]:
    by_status = (f"sum by (status) (rate(deploylab_gateway_requests_total{{{q.INFERENCE_ROUTES}, {sel}}}"
                 f"[{q.RATE_WINDOW}]))")
    by_kind = f"sum by (kind) (rate(deploylab_gateway_errors_total{{{q.MODEL}}}[{q.RATE_WINDOW}]))"
    in_flight = f"sum by (model) (deploylab_gateway_in_flight_requests{{{q.MODEL}}})"
    bound = f"max by (model) (deploylab_gateway_admission_limit{{{q.MODEL}}})"
    goodput = (f"sum(rate(deploylab_gateway_requests_total{{{q.INFERENCE_ROUTES}, status=\"200\", {sel}}}"
               f"[{q.RATE_WINDOW}]))")
    shed = f"sum by (reason) (rate(deploylab_gateway_shed_requests_total{{{q.MODEL}}}[{q.RATE_WINDOW}]))"
    transport = f"sum by (transport) (rate(deploylab_gateway_triton_tensor_transport_total[{q.RATE_WINDOW}]))"
    misses = f"sum(rate(deploylab_gateway_shared_memory_slot_misses_total[{q.RATE_WINDOW}]))"
    return [
        timeseries_panel("Error ratio (5xx + 429)", "Share of failed inference requests; the alert fires "
                         "above 1%.", "percentunit", (f"{q.ERROR_RATIO}{{{sel}}}", BY_MODEL_VARIANT),
                         span=8, threshold=0.01),
        timeseries_panel("Responses by status", "Inference responses per second by HTTP status (4xx "
                         "included).", "reqps", (by_status, "{{status}}"), span=8, stacked=True),
        timeseries_panel("Errors by kind", "Error responses per second by error code "
                         "(services/gateway/errors.py).", "reqps", (by_kind, "{{kind}}"),
                         span=8, stacked=True),
        timeseries_panel("In flight by model", "Admitted requests per model, and the admission bound in "
                         "use (slo admission: between the knee and the ceiling, following the SLO); "
                         "beyond the bound the gateway answers 429.",
                         "short", (in_flight, "{{model}}"), (bound, "{{model}} bound"), span=8),
        timeseries_panel("Goodput and shedding", "Requests per second answered 200 (goodput), and "
                         "requests shed by reason: over_slo (the bound follows the SLO), over_ceiling "
                         "(max_inflight_per_model), triton_down (503 while Triton is not ready). The "
                         "DeploylabSheddingSustained alert fires when over 5% are shed for 10 minutes.",
                         "reqps", (goodput, "goodput"), (shed, "shed {{reason}}"), span=8),
        timeseries_panel("Tensors to Triton", "Inference requests per second by how the tensor reached "
                         "Triton (same host: shared memory; a remote Triton or a forwarded request: HTTP), "
                         "and slot misses: requests that found every shared-memory slot busy and paid "
                         "~0.5 ms more CPU over HTTP (raise DEPLOYLAB_GATEWAY_TRITON_SHARED_MEMORY_SLOTS).",
                         "reqps", (transport, "{{transport}}"), (misses, "slot misses"), span=8),
    ]


def build() -> Dashboard:
    sel = q.MODEL_VARIANT
    board = (
        new_dashboard(UID, "deploylab / Overview",
                      "Gateway traffic, latency, errors and load per model and variant.")
        .with_variable(label_variable("model", "Model", q.REQUESTS_RATE, "model"))
        .with_variable(label_variable("variant", "Variant", q.REQUESTS_RATE, "variant"))
    )
    sections: list[Section] = [
        ("Now", _stats(sel)),
        ("Traffic", [
            timeseries_panel("Requests/s by model and variant", "Inference requests per second, 1 min rate.",
                             "reqps", (f"{q.REQUESTS_RATE}{{{sel}}}", BY_MODEL_VARIANT)),
            timeseries_panel("Images/s by model", "Images (batch rows) classified per second.", "short",
                             (f"{q.IMAGES_RATE}{{{q.MODEL}}}", "{{model}}")),
        ]),
        ("Latency (gateway: request received to response ready)", _latency(sel)),
        ("Errors and load", _errors_and_load(sel)),
    ]
    return with_sections(board, sections)
