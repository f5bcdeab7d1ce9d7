"""Outcome accounting: what became of each request, and what a table counts from it.

Two grains, for two kinds of front-end:
- `Outcome`, one per request (chaos's aiohttp load): the HTTP status and error code it got, or the
  transport failure that replaced an answer — `refused` (the connection was never accepted, so the
  request was never seen), `disconnected` or `timeout` (sent, and no answer came: a lost request);
  `LoadSummary` counts them by class.
- `Tally`, one per client of a closed loop (the bench's threads and epoll multiplexer): the latency of
  every success, the errors, and when its last answer came.

Latency percentiles always come from `percentiles` (nearest rank), whatever the grain.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .percentiles import summarize_ms

#: Transport failure kinds; `refused` is a clean refusal, the other two lose the request.
REFUSED, DISCONNECTED, TIMEOUT = "refused", "disconnected", "timeout"
LOST_KINDS = (DISCONNECTED, TIMEOUT)
#: How much of an error message a tally keeps.
ERROR_CHARS = 300


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
    def of(cls, outcomes: Iterable[Outcome]) -> LoadSummary:
        every = list(outcomes)
        ok = summarize_ms(o.latency_s * 1e3 for o in every if o.status == 200)
        return cls(
            sent=len(every),
            answered=sum(o.answered for o in every),
            refused=sum(o.transport_error == REFUSED for o in every),
            lost=sum(o.transport_error in LOST_KINDS for o in every),
            by_kind=dict(Counter(o.kind for o in every).most_common()),
            ok_p50_ms=round(ok.p50, 2),
            ok_p99_ms=round(ok.p99, 2),
            max_latency_ms=round(max((o.latency_s for o in every), default=0.0) * 1e3, 2),
        )

    def as_dict(self) -> dict[str, Any]:
        """Every field, for JSON: a percentile of no successes (NaN) is null."""
        values = asdict(self)
        for name in ("ok_p50_ms", "ok_p99_ms"):
            if not math.isfinite(values[name]):
                values[name] = None
        return values


@dataclass
class Tally:
    """One closed-loop client's account: latencies of its successes (seconds), its errors, its last answer."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    finished_at: float = 0.0  # time.time() of its last answer

    def fail(self, message: str) -> None:
        """Count one error; the first one's message is kept (a client stops at its first error)."""
        self.errors += 1
        if self.first_error is None:
            self.first_error = message[:ERROR_CHARS]


def error_text(exc: BaseException) -> str:
    """`Type: message`, cut to what a tally keeps."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


class LatencyLog:
    """Every request's latency in milliseconds, per request name, in the order they were recorded.

    A front-end that keeps only histograms (Locust) records here too, so its percentiles come from the
    raw samples like everyone else's. A mark is a count: the samples between two marks are a window's.
    """

    def __init__(self) -> None:
        self._samples: dict[str, list[float]] = {}

    def add(self, name: str, latency_ms: float) -> None:
        self._samples.setdefault(name, []).append(float(latency_ms))

    def extend(self, name: str, latencies_ms: Iterable[float]) -> None:
        self._samples.setdefault(name, []).extend(float(x) for x in latencies_ms)

    def count(self, name: str) -> int:
        return len(self._samples.get(name, ()))

    def between(self, name: str, start: int, end: int | None = None) -> list[float]:
        """The samples of `name` recorded after mark `start` and up to mark `end` (now when None)."""
        return self._samples.get(name, [])[start:end]

    def drain(self) -> dict[str, list[float]]:
        """Every sample so far, by name, leaving the log empty (what a worker ships to its master)."""
        drained, self._samples = self._samples, {}
        return drained

    def reset(self) -> None:
        self._samples = {}
