"""Graceful shutdown, in two phases, so that no request is dropped without an answer.

uvicorn's own SIGTERM handling closes the listening socket and every idle keep-alive connection at
once: a client that sends on such a connection at that moment gets the connection closed under it —
no answer, and no way to know whether the request was seen. So SIGTERM first starts a *drain*:
- `/readyz` answers 503 `draining`, so load balancers stop sending;
- requests already in flight finish normally, and their responses carry `Connection: close`;
- new requests are refused explicitly: 503 `shutting_down` with Retry-After and `Connection: close`
  (the client knows the request was not processed and may retry elsewhere);
- once nothing has been in flight for a moment (and at least `linger_s` has passed, for load balancers
  that need time to notice), or after `timeout_s`, uvicorn's own graceful shutdown runs and finds
  nothing left to cut off. The process then exits 0: a requested, clean stop.

The state is per process (one per uvicorn worker), set from the signal handler and read by the
middleware and the readiness endpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Paths that keep answering during the drain: probes and scrapes must see the draining state.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

#: How long nothing must be in flight before the drain counts as done (requests racing the end).
QUIET_S = 0.2


@dataclass
class Drain:
    started_at: float | None = None
    active: int = 0
    _idle_since: float = field(default_factory=time.monotonic)

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        """Start draining (idempotent; safe to call from a signal handler: it only sets fields)."""
        if self.started_at is None:
            self.started_at = time.monotonic()

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle_since = time.monotonic()

    def finished(self, linger_s: float, timeout_s: float) -> bool:
        """True once in-flight work is done (quietly, past the linger) or the drain timed out."""
        if self.started_at is None:
            return False
        now = time.monotonic()
        if now - self.started_at >= timeout_s:
            return True
        idle = self.active == 0 and now - self._idle_since >= QUIET_S
        return idle and now - self.started_at >= linger_s

    def remaining_s(self, timeout_s: float) -> float:
        if self.started_at is None:
            return timeout_s
        return max(0.0, timeout_s - (time.monotonic() - self.started_at))


#: This process's drain state.
DRAIN = Drain()
