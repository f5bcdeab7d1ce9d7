"""PromQL shared by the dashboards: recording-rule names, selectors and the SLO, in one place.

Panels read the recording rules of deploy/prometheus/rules/recording.yml wherever one exists, so a
dashboard and an alert can never disagree about what "p99" or "error ratio" means.
"""

from __future__ import annotations

#: Gateway routes that carry inference traffic (the rest are health, listings and metadata).
INFERENCE_ROUTES = 'route=~"classify|v2_infer"'

#: Grafana template variables; "All" expands to `.*` (see panels.model_variable).
MODEL = 'model=~"$model"'
VARIANT = 'variant=~"$variant"'
MODEL_VARIANT = f"{MODEL}, {VARIANT}"
TRITON_MODEL = 'model=~"$triton_model"'
RATE_WINDOW = "$__rate_interval"

#: Alert DeploylabP99OverSLO fires above this (deploy/prometheus/rules/alerts.yml); drawn as a line.
P99_SLO_SECONDS = 0.5

# --- recording rules (deploy/prometheus/rules/recording.yml) ------------------------------------
REQUESTS_RATE = "model_variant:deploylab_gateway_requests:rate1m"
ERRORS_RATE = "model_variant:deploylab_gateway_request_errors:rate1m"
ERROR_RATIO = "model_variant:deploylab_gateway_request_errors:ratio_rate1m"
IMAGES_RATE = "model:deploylab_gateway_images:rate1m"
LATENCY_QUANTILE = "model_variant:deploylab_gateway_request_duration_seconds:quantile_rate1m"
JOB_REQUESTS_RATE = "job:deploylab_gateway_requests:rate1m"
JOB_LATENCY_QUANTILE = "job:deploylab_gateway_request_duration_seconds:quantile_rate1m"

TRITON_SUCCESS_RATE = "model:nv_inference_request_success:rate1m"
TRITON_FAILURE_RATE = "model:nv_inference_request_failure:rate1m"
TRITON_INFERENCE_RATE = "model:nv_inference_count:rate1m"
TRITON_EXEC_RATE = "model:nv_inference_exec_count:rate1m"
TRITON_BATCH_SIZE = "model:nv_inference_batch_size:mean_rate1m"
TRITON_REQUEST_TIME = "model:nv_inference_request_duration_seconds:per_request_rate1m"
TRITON_QUEUE_TIME = "model:nv_inference_queue_duration_seconds:per_request_rate1m"
TRITON_COMPUTE_INPUT_TIME = "model:nv_inference_compute_input_duration_seconds:per_request_rate1m"
TRITON_COMPUTE_INFER_TIME = "model:nv_inference_compute_infer_duration_seconds:per_request_rate1m"
TRITON_COMPUTE_OUTPUT_TIME = "model:nv_inference_compute_output_duration_seconds:per_request_rate1m"
TRITON_COMPUTE_TIME = "model:nv_inference_compute_duration_seconds:per_request_rate1m"
TRITON_QUEUE_OVER_COMPUTE = "model:nv_inference_queue_over_compute:ratio_rate1m"
TRITON_BUSY_INSTANCES = "model:nv_inference_busy_instances:rate1m"

#: Metrics Triton exports only when it sees a GPU: their panels stay empty on a CPU host.
GPU_METRIC_PREFIX = "nv_gpu_"


def quantile(rule: str, q: str, selector: str = "") -> str:
    """One quantile series of a `…:quantile_rate1m` rule (q as recorded: "0.5", "0.95", "0.99")."""
    labels = f'quantile="{q}"' + (f", {selector}" if selector else "")
    return f"{rule}{{{labels}}}"


def weighted_error_ratio(selector: str) -> str:
    """Errors over requests across every matching model: 0 (not empty) while nothing fails.

    Sums of the rates, not a mean of per-model ratios: an idle model has no ratio, and a busy one
    weighs by its traffic."""
    return f"sum({ERRORS_RATE}{{{selector}}}) / sum({REQUESTS_RATE}{{{selector}}})"


def stage_quantile(histogram: str, q: float, selector: str) -> str:
    """A percentile of one gateway stage histogram per model (preprocess, inference)."""
    return (
        f"histogram_quantile({q}, sum by (le, model) "
        f"(rate({histogram}_bucket{{{selector}}}[{RATE_WINDOW}])))"
    )


def triton_counter_per_request(counter_us: str, selector: str = "") -> str:
    """Seconds per successful request across all matching Triton models (rate ratio of counters)."""
    inner = f"{{{selector}}}" if selector else ""
    return (
        f"sum(rate({counter_us}{inner}[{RATE_WINDOW}])) / 1e6"
        f" / sum(rate(nv_inference_request_success{inner}[{RATE_WINDOW}]))"
    )
