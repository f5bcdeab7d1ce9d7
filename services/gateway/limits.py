"""Admission control: a bounded number of in-flight inference requests per Triton model.

Past the bound the gateway answers 429 with Retry-After at once instead of queueing: a queue in
front of a saturated model only adds latency to every request behind it, and callers (or their
load balancer) can retry elsewhere. The count lives on the event loop, so no lock is needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import OverloadedError
from .metrics import IN_FLIGHT


class InFlightLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: defaultdict[str, int] = defaultdict(int)

    def in_flight(self, model: str) -> int:
        return self._counts[model]

    def total(self) -> int:
        return sum(self._counts.values())

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold one slot for `model` for the duration of the block, or raise OverloadedError."""
        if self._counts[model] >= self.limit:
            raise OverloadedError(
                f"model {model!r} has {self.limit} requests in flight; retry shortly",
                details={"model": model, "in_flight_limit": self.limit},
            )
        self._counts[model] += 1
        gauge = IN_FLIGHT.labels(model)
        gauge.inc()
        try:
            yield
        finally:
            self._counts[model] -= 1
            gauge.dec()
