"""Load for fault and overload scenarios, with every request accounted for, and probes that watch the
server while it runs.

Locust counts failures; here the question is stricter — did *each* request get exactly one answer, and
which one — so every request becomes an `Outcome`: the HTTP status and error code it got, or the
transport failure that replaced an answer (`refused`, `disconnected`, `timeout`). The client, the closed
and open loops, the outcomes and their summaries are the measurement core's
(`deploylab.services.measure.http_load`, `.outcomes`), so a p99 here means what it means in the sweep
and the bench; this module adds the probes (readiness, memory, a gateway metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from deploylab.services.measure.http_load import LoadClient, RequestTemplate, Stop, closed_loop, open_loop
from deploylab.services.measure.outcomes import (
    DISCONNECTED,
    LOST_KINDS,
    REFUSED,
    TIMEOUT,
    LoadSummary,
    Outcome,
)
from deploylab.services.measure.percentiles import percentile
from deploylab.services.measure.server_stats import parse_metrics

# What the scenarios take from here: the core's load client and accounting, and the probes below.
__all__ = [
    "DISCONNECTED",
    "LOST_KINDS",
    "REFUSED",
    "TIMEOUT",
    "LoadClient",
    "LoadSummary",
    "Outcome",
    "RequestTemplate",
    "Sample",
    "closed_loop",
    "metric_value",
    "open_loop",
    "percentile",
    "readiness_probe",
    "rss_probe",
    "sample_periodically",
]


# -- watching the server while load runs -----------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    at: float
    value: float


async def sample_periodically(
    client: LoadClient, probe: Callable[[], Awaitable[float]], period_s: float, stop: Stop
) -> list[Sample]:
    """Call `probe()` every `period_s` until `stop()`; a failing probe records NaN."""
    samples: list[Sample] = []
    while not stop():
        try:
            value = await probe()
        except Exception:  # a probe failure is data (the server may be down), never a crash
            value = math.nan
        samples.append(Sample(client.now(), value))
        await asyncio.sleep(period_s)
    return samples


def readiness_probe(client: LoadClient) -> Callable[[], Awaitable[float]]:
    """1.0 when GET /readyz answers 200, 0.0 otherwise (refused included)."""

    async def probe() -> float:
        outcome = await client.send(RequestTemplate("GET", "/readyz"))
        return 1.0 if outcome.status == 200 else 0.0

    return probe


def rss_probe(pid: int) -> Callable[[], Awaitable[float]]:
    """Resident memory of process `pid` (and its children) in MiB."""
    import psutil

    process = psutil.Process(pid)

    async def probe() -> float:
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return float(total) / 2**20

    return probe


async def metric_value(client: LoadClient, name: str, **labels: str) -> float:
    """Sum of one Prometheus series on the gateway's /metrics (samples whose labels include `labels`)."""
    return parse_metrics(await client.get_text("/metrics")).total(name, **labels)
