"""Every gateway metric, defined here and nowhere else (Prometheus naming, low-cardinality labels).

Labels are drawn from closed sets: `route` is the API endpoint kind (below), `model`/`variant` are
catalog names (anything unknown is recorded as `unknown`), `status` is the HTTP status code, `kind`
is an error code from `errors.py`. Never an image id, a user string or a request id.

Several uvicorn workers: set `PROMETHEUS_MULTIPROC_DIR` (the `serve` command does it for you) and
`/metrics` aggregates all workers; gauges then sum live processes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "deploylab_gateway"

#: Endpoint kinds used as the `route` label.
ROUTES = (
    "classify",
    "v2_infer",
    "v2_model",
    "v2_model_ready",
    "v2_server",
    "models",
    "health",
    "admin",
    "other",
)

#: 1 ms … 10 s, dense where CPU inference latencies live (5–200 ms) so p99 interpolates well.
LATENCY_BUCKETS = (
    0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05,
    0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
IMAGES_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

REQUESTS = Counter(
    "requests",
    "Requests answered, by endpoint kind, model, variant and HTTP status.",
    ["route", "model", "variant", "status"],
    namespace=NAMESPACE,
)
REQUEST_DURATION = Histogram(
    "request_duration_seconds",
    "Time from request received to response ready (body read, preprocess, inference, encode).",
    ["route", "model", "variant"],
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
PREPROCESS_DURATION = Histogram(
    "preprocess_duration_seconds",
    "Image decode + resize/crop/normalize time per request (all images of the request).",
    ["model", "variant"],
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
INFERENCE_DURATION = Histogram(
    "inference_duration_seconds",
    "Triton round trip per request, as seen by the gateway (queue + compute + transfer).",
    ["model", "variant"],
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "in_flight_requests",
    "Inference requests currently admitted for a model (waiting on or inside Triton).",
    ["model"],
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
ADMISSION_LIMIT = Gauge(
    "admission_limit",
    "Current in-flight bound per model (slo admission: between knee and ceiling; static: the ceiling).",
    ["model"],
    namespace=NAMESPACE,
    multiprocess_mode="max",
)
ADMISSION_SLO = Gauge(
    "admission_slo_seconds",
    "The p99 latency objective slo admission holds per model (configured, or measured from Triton).",
    ["model"],
    namespace=NAMESPACE,
    multiprocess_mode="max",
)
SHED = Counter(
    "shed_requests",
    "Requests refused to protect goodput, by model and reason: over_slo (the bound follows the SLO), "
    "over_ceiling (max_inflight_per_model), triton_down (503 while Triton or the model is not ready).",
    ["model", "reason"],
    namespace=NAMESPACE,
)
IMAGES_PER_REQUEST = Histogram(
    "images_per_request",
    "Images (batch rows) per inference request.",
    ["route", "model"],
    namespace=NAMESPACE,
    buckets=IMAGES_BUCKETS,
)
ERRORS = Counter(
    "errors",
    "Error responses by endpoint kind, model and error code (see errors.py).",
    ["route", "model", "kind"],
    namespace=NAMESPACE,
)
SHADOW_REQUESTS = Counter(
    "shadow_requests",
    "Shadow requests by primary and shadow model and outcome (agree, disagree, error, dropped).",
    ["model", "shadow_model", "outcome"],
    namespace=NAMESPACE,
)
ROUTING_RELOADS = Counter(
    "routing_reloads",
    "Routing table reload attempts by outcome (applied, rejected).",
    ["outcome"],
    namespace=NAMESPACE,
)
TRITON_UP = Gauge(
    "triton_up",
    "1 when the gateway's last Triton health probe succeeded, else 0.",
    namespace=NAMESPACE,
    multiprocess_mode="max",
)
TENSOR_TRANSPORT = Counter(
    "triton_tensor_transport",
    "Inference requests sent to Triton by how the input tensor travelled: shared_memory, or http "
    "(a remote Triton, slots off, every slot busy, or a request forwarded byte for byte).",
    ["triton_model", "transport"],
    namespace=NAMESPACE,
)
SHARED_MEMORY_SLOT_MISSES = Counter(
    "shared_memory_slot_misses",
    "Requests that wanted a shared-memory slot and found none (all in use, or /dev/shm full): they "
    "went over HTTP at ~0.5 ms more CPU each; raise DEPLOYLAB_GATEWAY_TRITON_SHARED_MEMORY_SLOTS.",
    namespace=NAMESPACE,
)
