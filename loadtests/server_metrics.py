"""The servers' side of a measured window: scrape before and after, turn counter deltas into views.

Triton's latency metrics are cumulative counters (`nv_inference_queue_duration_us`, …), so per-request
averages are delta ratios over `nv_inference_request_success`; the average executed batch is
`nv_inference_count / nv_inference_exec_count`. The statistics API adds what the metrics lack: how
many executions ran at each batch size. The gateway's histograms give mean times from `_sum/_count`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from deploylab.services.report.results import BatchBucket, CounterCheck, GatewayView, TritonView
from prometheus_client.parser import text_string_to_metric_families

GATEWAY_REQUESTS = "deploylab_gateway_requests_total"
TRITON_SUCCESS = "nv_inference_request_success"
TRITON_FAILURE = "nv_inference_request_failure"
#: The gateway's `route` label for each API the load test drives.
GATEWAY_ROUTE = {"classify": "classify", "v2": "v2_infer"}


class ScrapeError(RuntimeError):
    """A metrics or statistics endpoint that did not answer."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every sample of one Prometheus exposition, with the moment it was taken."""

    samples: tuple[Sample, ...]
    taken_at: float = field(default_factory=time.monotonic)

    def total(self, name: str, **match: str) -> float:
        """Sum of `name` over the samples whose labels include `match`.

        The parser names every counter sample `<family>_total` (Triton's `nv_inference_count` becomes
        `nv_inference_count_total`), so a counter is found under either spelling.
        """
        names = {name, f"{name}_total"}
        return sum(
            s.value
            for s in self.samples
            if s.name in names and all(s.labels.get(k) == v for k, v in match.items())
        )


def parse_metrics(text: str, taken_at: float | None = None) -> MetricsSnapshot:
    samples = tuple(
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )
    return MetricsSnapshot(samples, taken_at if taken_at is not None else time.monotonic())


def _get(url: str, timeout_s: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URLs
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ScrapeError(f"GET {url} failed: {exc}") from None


def fetch_metrics(url: str, timeout_s: float = 5.0) -> MetricsSnapshot:
    return parse_metrics(_get(url, timeout_s).decode())


@dataclass(frozen=True)
class BatchStats:
    """Cumulative per-batch-size executions and compute time of one Triton model (statistics API)."""

    executions: Mapping[int, int]
    compute_infer_ns: Mapping[int, int]


def parse_batch_stats(payload: Mapping[str, object]) -> BatchStats:
    executions: dict[int, int] = {}
    compute: dict[int, int] = {}
    stats = payload.get("model_stats")
    for model in stats if isinstance(stats, list) else []:
        for bucket in model.get("batch_stats", []):
            size = int(bucket["batch_size"])
            infer = bucket.get("compute_infer", {})
            executions[size] = executions.get(size, 0) + int(infer.get("count", 0))
            compute[size] = compute.get(size, 0) + int(infer.get("ns", 0))
    return BatchStats(executions, compute)


def fetch_batch_stats(triton_url: str, model: str, timeout_s: float = 5.0) -> BatchStats:
    payload = json.loads(_get(f"{triton_url.rstrip('/')}/v2/models/{model}/stats", timeout_s))
    return parse_batch_stats(payload)


@dataclass(frozen=True)
class ServerSnapshot:
    """Both servers at one instant; `gateway` is None when the gateway is not in the path."""

    triton: MetricsSnapshot
    batches: BatchStats
    gateway: MetricsSnapshot | None


def take_snapshot(
    triton_url: str, triton_metrics_url: str, triton_model: str, gateway_metrics_url: str | None
) -> ServerSnapshot:
    gateway = fetch_metrics(gateway_metrics_url) if gateway_metrics_url else None
    triton = fetch_metrics(triton_metrics_url)
    return ServerSnapshot(triton, fetch_batch_stats(triton_url, triton_model), gateway)


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return round(numerator / denominator * scale, 4) if denominator > 0 else None


def triton_view(before: ServerSnapshot, after: ServerSnapshot, model: str, window_s: float) -> TritonView:
    """Triton's account of the window between two snapshots for one Triton model."""

    def delta(name: str) -> float:
        return after.triton.total(name, model=model) - before.triton.total(name, model=model)

    success = delta(TRITON_SUCCESS)
    inferences = delta("nv_inference_count")
    executions = delta("nv_inference_exec_count")
    per_request_ms = {
        key: _ratio(delta(f"nv_inference_{key}_duration_us"), success, 1e-3)
        for key in ("request", "queue", "compute_input", "compute_infer", "compute_output")
    }
    buckets = []
    for size in sorted(after.batches.executions):
        runs = after.batches.executions[size] - before.batches.executions.get(size, 0)
        if runs > 0:
            ns = after.batches.compute_infer_ns.get(size, 0) - before.batches.compute_infer_ns.get(size, 0)
            buckets.append(
                BatchBucket(batch_size=size, executions=runs, compute_infer_ms_mean=_ratio(ns, runs, 1e-6))
            )
    return TritonView(
        model=model,
        requests=round(success),
        failures=round(delta(TRITON_FAILURE)),
        inferences=round(inferences),
        executions=round(executions),
        avg_batch_size=_ratio(inferences, executions),
        request_ms=per_request_ms["request"],
        queue_ms=per_request_ms["queue"],
        compute_input_ms=per_request_ms["compute_input"],
        compute_infer_ms=per_request_ms["compute_infer"],
        compute_output_ms=per_request_ms["compute_output"],
        throughput_rps=_ratio(success, window_s),
        batches=buckets,
    )


def gateway_view(
    before: ServerSnapshot, after: ServerSnapshot, api: str, model: str, variant: str, window_s: float
) -> GatewayView | None:
    """The gateway's account of the window for one route/model/variant; None without a gateway."""
    if before.gateway is None or after.gateway is None:
        return None
    first, last = before.gateway, after.gateway
    route = GATEWAY_ROUTE[api]

    def delta(name: str, **labels: str) -> float:
        return last.total(name, **labels) - first.total(name, **labels)

    by_route = {"route": route, "model": model, "variant": variant}
    by_model = {"model": model, "variant": variant}
    requests = delta(GATEWAY_REQUESTS, **by_route)
    ok = sum(
        last.total(GATEWAY_REQUESTS, **by_route, status=str(code))
        - first.total(GATEWAY_REQUESTS, **by_route, status=str(code))
        for code in (200, 201, 204)
    )

    def mean_ms(metric: str, labels: dict[str, str]) -> float | None:
        return _ratio(delta(f"{metric}_sum", **labels), delta(f"{metric}_count", **labels), 1e3)

    return GatewayView(
        requests=round(requests),
        errors=round(requests - ok),
        request_ms=mean_ms("deploylab_gateway_request_duration_seconds", by_route),
        preprocess_ms=mean_ms("deploylab_gateway_preprocess_duration_seconds", by_model),
        inference_ms=mean_ms("deploylab_gateway_inference_duration_seconds", by_model),
        throughput_rps=_ratio(requests, window_s),
    )


def cross_checks(
    locust_requests: int, locust_successes: int, gateway: GatewayView | None, triton: TritonView, api: str
) -> list[CounterCheck]:
    """Locust against each server: the gateway sees every request, Triton only the ones that succeeded."""
    checks = []
    if gateway is not None:
        counter = f'{GATEWAY_REQUESTS}{{route="{GATEWAY_ROUTE[api]}"}}'
        checks.append(CounterCheck.compare("gateway", counter, locust_requests, gateway.requests))
    counter = f'{TRITON_SUCCESS}{{model="{triton.model}"}}'
    checks.append(CounterCheck.compare("triton", counter, locust_successes, triton.requests))
    return checks


def check_flags(checks: list[CounterCheck]) -> list[str]:
    """One human-readable line per flagged check."""
    return [
        f"{c.source} counted {c.server} requests, Locust {c.locust} ({c.mismatch:.1%} apart, over 5%)"
        for c in checks
        if c.flagged
    ]
