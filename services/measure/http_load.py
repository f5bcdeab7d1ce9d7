"""Async HTTP load with every request accounted for: an aiohttp client that turns each request into an
`Outcome`, and the two arrival models.

- closed loop (`closed_loop`): N workers, each sends its next request when the previous one is
  answered, and, like a well-behaved client, waits Retry-After after a 429/503 and drops a connection
  the server marked `Connection: close`;
- open loop (`open_loop`): requests start at a fixed rate whatever happens to earlier ones — how
  independent users behave, and the only way to push a server past its capacity.

Chaos scenarios and the admission bench drive the gateway with it; `LoadSummary` counts the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from .outcomes import DISCONNECTED, REFUSED, TIMEOUT, Outcome


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
