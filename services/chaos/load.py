"""Async HTTP load for fault and overload scenarios, with every request accounted for.

Locust counts failures; here the question is stricter — did *each* request get exactly one answer, and
which one — so every request becomes an `Outcome`: the HTTP status and error code it got, or the
transport failure that replaced an answer (`refused`: the connection was never accepted, so the
request was never seen; `disconnected` or `timeout`: sent, and no answer came — a lost request).

Two arrival models:
- closed loop (`closed_loop`): N workers, each sends its next request when the previous one is
  answered, and, like a well-behaved client, waits Retry-After after a 429/503 and drops a connection
  the server marked `Connection: close`;
- open loop (`open_loop`): requests start at a fixed rate whatever happens to earlier ones — how
  independent users behave, and the only way to push a server past its capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

#: Transport failure kinds; `refused` is a clean refusal, the other two lose the request.
REFUSED, DISCONNECTED, TIMEOUT = "refused", "disconnected", "timeout"
LOST_KINDS = (DISCONNECTED, TIMEOUT)


@dataclass(frozen=True)
class RequestTemplate:
    """One HTTP request, sent again and again."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def classify(cls, model: str, image: bytes, media_type: str = "image/jpeg") -> RequestTemplate:
        return cls("POST", f"/v1/models/{model}/classify", image, {"Content-Type": media_type})


@dataclass(frozen=True)
class Outcome:
    """What became of one request; times are seconds since the load run started."""

    sent_at: float
    latency_s: float
    status: int | None = None
    code: str | None = None
    transport_error: str | None = None
    retry_after: str | None = None
    connection_close: bool = False

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def finished_at(self) -> float:
        return self.sent_at + self.latency_s

    @property
    def kind(self) -> str:
        """`200`, `503 backend_unavailable`, `refused`, … — the error class a table counts."""
        if self.status is None:
            return str(self.transport_error)
        return f"{self.status} {self.code}" if self.code else str(self.status)


class LoadClient:
    """A pooled aiohttp session that turns every request into an Outcome, never an exception."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, connections: int = 512) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.connections = connections
        self.origin = time.monotonic()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            skip_auto_headers=("User-Agent",),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def now(self) -> float:
        return time.monotonic() - self.origin

    async def send(self, request: RequestTemplate) -> Outcome:
        assert self._session is not None, "use LoadClient as an async context manager"
        sent = self.now()
        started = time.perf_counter()
        try:
            async with self._session.request(
                request.method, self.base_url + request.path, data=request.body, headers=request.headers
            ) as response:
                payload = await response.read()
                return Outcome(
                    sent_at=sent,
                    latency_s=time.perf_counter() - started,
                    status=response.status,
                    code=_error_code(payload) if response.status >= 400 else None,
                    retry_after=response.headers.get("Retry-After"),
                    connection_close=response.headers.get("Connection", "").lower() == "close",
                )
        except aiohttp.ClientConnectorError:
            kind = REFUSED
        except TimeoutError:
            kind = TIMEOUT
        except (aiohttp.ClientError, OSError):
            kind = DISCONNECTED
        return Outcome(sent_at=sent, latency_s=time.perf_counter() - started, transport_error=kind)


    async def get_text(self, path: str) -> str:
        """GET `path` and return the body as text (raises on transport errors: for probes)."""
        assert self._session is not None, "use LoadClient as an async context manager"
        async with self._session.get(self.base_url + path) as response:
            return await response.text()


def _error_code(payload: bytes) -> str | None:
    """The gateway error code from either spelling of its error body."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("code")) if error.get("code") else None
    return str(body["code"]) if body.get("code") else None


Stop = Callable[[], bool]


async def closed_loop(
    client: LoadClient,
    request: RequestTemplate,
    *,
    concurrency: int,
    stop: Stop,
    honour_retry_after: bool = True,
    max_backoff_s: float = 1.0,
) -> list[Outcome]:
    """`concurrency` workers sending back to back until `stop()` is true; every outcome, in order."""
    outcomes: list[Outcome] = []

    async def worker() -> None:
        while not stop():
            outcome = await client.send(request)
            outcomes.append(outcome)
            if outcome.transport_error == REFUSED:
                await asyncio.sleep(0.05)  # nobody listening: don't spin
            elif honour_retry_after and outcome.retry_after and outcome.status in (429, 503):
                await asyncio.sleep(min(_seconds(outcome.retry_after), max_backoff_s))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(outcomes, key=lambda o: o.sent_at)


async def open_loop(
    client: LoadClient, request: RequestTemplate, *, rate_per_s: float, duration_s: float
) -> list[Outcome]:
    """Start requests at a constant rate for `duration_s`, never waiting for answers; then collect."""
    tasks: list[asyncio.Task[Outcome]] = []
    start = time.monotonic()
    total = int(rate_per_s * duration_s)
    for i in range(total):
        delay = start + i / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(client.send(request)))
    return sorted(await asyncio.gather(*tasks), key=lambda o: o.sent_at)


def _seconds(retry_after: str) -> float:
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return 1.0


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
    from prometheus_client.parser import text_string_to_metric_families

    text = await client.get_text("/metrics")
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


# -- summaries --------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


@dataclass(frozen=True)
class LoadSummary:
    """Requests sent vs answered, by class, with latency percentiles of the successful ones."""

    sent: int
    answered: int
    refused: int
    lost: int
    by_kind: dict[str, int]
    ok_p50_ms: float
    ok_p99_ms: float
    max_latency_ms: float

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> LoadSummary:
        ok = [o.latency_s * 1e3 for o in outcomes if o.status == 200]
        return cls(
            sent=len(outcomes),
            answered=sum(o.answered for o in outcomes),
            refused=sum(o.transport_error == REFUSED for o in outcomes),
            lost=sum(o.transport_error in LOST_KINDS for o in outcomes),
            by_kind=dict(Counter(o.kind for o in outcomes).most_common()),
            ok_p50_ms=round(percentile(ok, 50), 2),
            ok_p99_ms=round(percentile(ok, 99), 2),
            max_latency_ms=round(max((o.latency_s for o in outcomes), default=0.0) * 1e3, 2),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "answered": self.answered,
            "refused": self.refused,
            "lost": self.lost,
            "by_kind": self.by_kind,
            "ok_p50_ms": self.ok_p50_ms if math.isfinite(self.ok_p50_ms) else None,
            "ok_p99_ms": self.ok_p99_ms if math.isfinite(self.ok_p99_ms) else None,
            "max_latency_ms": self.max_latency_ms,
        }
