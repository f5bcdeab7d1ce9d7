"""The servers' own counters, parsed once: Prometheus expositions (Triton's and the gateway's /metrics)
and Triton's statistics API (`GET /v2/models/<model>/stats`).

Both are cumulative, so every view of a window is the difference of two readings: `MetricsSnapshot`
sums a series at one instant, `ModelStats` subtracts. The statistics API adds what the metrics lack:
how many executions ran at each batch size, the proof that dynamic batching formed batches.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ScrapeError(RuntimeError):
    """A metrics or statistics endpoint that did not answer."""


# -- Prometheus expositions ------------------------------------------------------------------------
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
    # Imported here: the statistics half runs on bare GPU hosts (benchmarks/gpu_check.py) with stdlib only.
    from prometheus_client.parser import text_string_to_metric_families

    samples = tuple(
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )
    return MetricsSnapshot(samples, taken_at if taken_at is not None else time.monotonic())


def http_get(url: str, timeout_s: float = 5.0) -> bytes:
    """The body of `GET url`; ScrapeError when the server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URLs
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ScrapeError(f"GET {url} failed: {exc}") from None


def fetch_metrics(url: str, timeout_s: float = 5.0) -> MetricsSnapshot:
    return parse_metrics(http_get(url, timeout_s).decode())


# -- Triton's statistics API -----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model (its loaded versions summed) since load; `b - a` is a window."""

    inference_count: int = 0  # images (batch elements) inferred
    execution_count: int = 0  # model executions (one per executed batch)
    success_count: int = 0  # requests
    queue_ns: int = 0
    compute_infer_ns: int = 0
    executed_batches: dict[int, int] = field(default_factory=dict)  # executed batch size -> executions
    batch_compute_ns: dict[int, int] = field(default_factory=dict)  # executed batch size -> compute ns

    def __sub__(self, earlier: ModelStats) -> ModelStats:
        sizes = sorted(set(self.executed_batches) | set(earlier.executed_batches))
        runs = {s: self.executed_batches.get(s, 0) - earlier.executed_batches.get(s, 0) for s in sizes}
        return ModelStats(
            inference_count=self.inference_count - earlier.inference_count,
            execution_count=self.execution_count - earlier.execution_count,
            success_count=self.success_count - earlier.success_count,
            queue_ns=self.queue_ns - earlier.queue_ns,
            compute_infer_ns=self.compute_infer_ns - earlier.compute_infer_ns,
            executed_batches={s: n for s, n in runs.items() if n > 0},
            batch_compute_ns={
                s: self.batch_compute_ns.get(s, 0) - earlier.batch_compute_ns.get(s, 0)
                for s, n in runs.items()
                if n > 0
            },
        )

    @property
    def mean_executed_batch(self) -> float:
        """Images per model execution; 1.0 means dynamic batching formed no batches."""
        return self.inference_count / self.execution_count if self.execution_count else 0.0

    @property
    def mean_queue_ms(self) -> float:
        return self.queue_ns / self.success_count / 1e6 if self.success_count else 0.0

    @property
    def mean_compute_ms(self) -> float:
        """Engine time per execution (the Python backend's whole `execute()` for our models)."""
        return self.compute_infer_ns / self.execution_count / 1e6 if self.execution_count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "request_count": self.success_count,
            "mean_executed_batch": round(self.mean_executed_batch, 3),
            "mean_queue_ms": round(self.mean_queue_ms, 3),
            "mean_compute_ms": round(self.mean_compute_ms, 3),
            "executed_batches": {str(k): v for k, v in self.executed_batches.items()},
        }


def parse_model_stats(payload: Mapping[str, Any]) -> ModelStats:
    """The counters of a statistics answer, summed over the versions it lists."""
    totals = {
        "inference_count": 0,
        "execution_count": 0,
        "success_count": 0,
        "queue_ns": 0,
        "compute_infer_ns": 0,
    }
    executions: dict[int, int] = {}
    compute: dict[int, int] = {}
    entries = payload.get("model_stats")
    for entry in entries if isinstance(entries, list) else []:
        stats = entry.get("inference_stats", {})
        totals["inference_count"] += int(entry.get("inference_count", 0))
        totals["execution_count"] += int(entry.get("execution_count", 0))
        totals["success_count"] += int(stats.get("success", {}).get("count", 0))
        totals["queue_ns"] += int(stats.get("queue", {}).get("ns", 0))
        totals["compute_infer_ns"] += int(stats.get("compute_infer", {}).get("ns", 0))
        for bucket in entry.get("batch_stats", []):
            size = int(bucket["batch_size"])
            infer = bucket.get("compute_infer", {})
            executions[size] = executions.get(size, 0) + int(infer.get("count", 0))
            compute[size] = compute.get(size, 0) + int(infer.get("ns", 0))
    return ModelStats(**totals, executed_batches=executions, batch_compute_ns=compute)


def stats_url(triton_url: str, model: str) -> str:
    return f"{triton_url.rstrip('/')}/v2/models/{model}/stats"


def fetch_model_stats(triton_url: str, model: str, timeout_s: float = 5.0) -> ModelStats:
    """A model's statistics now; ScrapeError when Triton does not answer."""
    return parse_model_stats(json.loads(http_get(stats_url(triton_url, model), timeout_s)))
