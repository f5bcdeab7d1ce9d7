"""The servers' side of a measured window: scrape before and after, turn counter deltas into views.

Triton's latency metrics are cumulative counters (`nv_inference_queue_duration_us`, …), so per-request
averages are delta ratios over `nv_inference_request_success`; the average executed batch is
`nv_inference_count / nv_inference_exec_count`. The statistics API adds what the metrics lack: how
many executions ran at each batch size. The gateway's histograms give mean times from `_sum/_count`.
Both are read and parsed by the measurement core (`deploylab.services.measure.server_stats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deploylab.services.measure.gpu_memory import MIB, GpuMemory, read_gpu_memory
from deploylab.services.measure.process_tree import TreeSample, sample_trees
from deploylab.services.measure.results import (
    BatchBucket,
    CounterCheck,
    GatewayView,
    ProcessCost,
    ServingCost,
    TritonView,
)
from deploylab.services.measure.server_stats import (
    MetricsSnapshot,
    ModelStats,
    fetch_metrics,
    fetch_model_stats,
)

GATEWAY_REQUESTS = "deploylab_gateway_requests_total"
TRITON_SUCCESS = "nv_inference_request_success"
TRITON_FAILURE = "nv_inference_request_failure"
#: The gateway's `route` label for each API the load test drives.
GATEWAY_ROUTE = {"classify": "classify", "v2": "v2_infer"}


@dataclass(frozen=True)
class ServerSnapshot:
    """Both servers at one instant; `gateway` is None when the gateway is not in the path."""

    triton: MetricsSnapshot
    batches: ModelStats
    gateway: MetricsSnapshot | None
    processes: dict[str, TreeSample] | None = None  # the serving process trees, when the sweep started them
    gpu: GpuMemory | None = None  # the GPUs' memory with the process trees (None: no NVIDIA driver)


def take_snapshot(
    triton_url: str,
    triton_metrics_url: str,
    triton_model: str,
    gateway_metrics_url: str | None,
    serving_pids: Mapping[str, int] | None = None,
) -> ServerSnapshot:
    gpu = read_gpu_memory() if serving_pids else None
    processes = sample_trees(serving_pids, triton_model, gpu) if serving_pids else None
    gateway = fetch_metrics(gateway_metrics_url) if gateway_metrics_url else None
    triton = fetch_metrics(triton_metrics_url)
    return ServerSnapshot(triton, fetch_model_stats(triton_url, triton_model), gateway, processes, gpu)


def serving_cost(before: ServerSnapshot, after: ServerSnapshot, successes: int) -> ServingCost | None:
    """CPU and memory the serving processes spent between two snapshots (None: not sampled)."""
    if before.processes is None or after.processes is None:
        return None
    elapsed = after.triton.taken_at - before.triton.taken_at
    parts = {}
    for role, end in after.processes.items():
        start = before.processes.get(role)
        cpu_s = max(0.0, end.cpu_s - start.cpu_s) if start else 0.0
        parts[role] = ProcessCost(
            cpu_s=round(cpu_s, 3),
            cores=round(cpu_s / elapsed, 3) if elapsed > 0 else 0.0,
            memory_mib=round(end.memory_mib, 1),
            processes=end.processes,
            gpu_memory_mib=_round(end.gpu_memory_mib),
        )
    cpu_s = sum(part.cpu_s for part in parts.values())
    return ServingCost(
        cpu_s=round(cpu_s, 3),
        cores=round(cpu_s / elapsed, 3) if elapsed > 0 else 0.0,
        cpu_s_per_1k=round(cpu_s / successes * 1000, 3) if successes > 0 else None,
        memory_mib=round(sum(part.memory_mib for part in parts.values()), 1),
        by_process=parts,
        **gpu_cost(parts, after.gpu),
    )


def gpu_cost(parts: Mapping[str, ProcessCost], gpu: GpuMemory | None) -> dict[str, object]:
    """ServingCost's GPU fields: the processes' own memory where NVML lists them; the GPUs' use where
    NVML lists PIDs of another namespace (a container); none where the serving processes use no GPU."""
    if gpu is None or gpu.device_total == 0:
        return {}
    held = [part.gpu_memory_mib for part in parts.values() if part.gpu_memory_mib is not None]
    if held:
        memory, scope = sum(held), "processes"
    elif gpu.foreign_pids():
        memory, scope = gpu.device_used / MIB, "devices"
    else:
        return {}
    return {
        "gpu_memory_mib": _round(memory),
        "gpu_memory_scope": scope,
        "gpu_total_mib": _round(gpu.device_total / MIB),
    }


def _round(mib: float | None) -> float | None:
    return round(mib, 1) if mib is not None else None


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
    window = after.batches - before.batches
    buckets = [
        BatchBucket(
            batch_size=size,
            executions=runs,
            compute_infer_ms_mean=_ratio(window.batch_compute_ns.get(size, 0), runs, 1e-6),
        )
        for size, runs in window.executed_batches.items()
    ]
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
