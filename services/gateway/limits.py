"""Admission control: a bounded number of in-flight inference requests per Triton model.

Past the bound the gateway answers 429 with Retry-After at once instead of queueing: a queue in front
of a saturated model only adds latency to every request behind it, and callers (or their load
balancer) can retry elsewhere. Counts live on the event loop, so no lock is needed.

Two modes:
- `static`: a fixed bound (`max_inflight_per_model`). What capacity benchmarks use: it lets Triton's
  dynamic batcher see every request and form the largest batches.
- `adaptive` (default): the bound follows latency, in the spirit of TCP Vegas / Netflix's
  concurrency-limits. Each window of completed requests is compared with the best latency seen
  recently (the no-load baseline): above `tolerance` x baseline the bound shrinks multiplicatively,
  otherwise, if requests were actually queueing at the bound, it grows by one. Under overload the
  accepted requests therefore keep close to their unloaded latency and the excess is shed as 429.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from .errors import OverloadedError
from .metrics import ADMISSION_LIMIT, IN_FLIGHT

Mode = Literal["adaptive", "static"]


@dataclass
class AdaptiveLimit:
    """Vegas-style bound for one model: shrink when a window's latency exceeds tolerance x baseline."""

    floor: int
    ceiling: int
    tolerance: float = 1.5
    window_size: int = 16
    limit: float = field(init=False)
    baseline_s: float | None = field(default=None, init=False)
    _samples: list[float] = field(default_factory=list, init=False)
    _saturated: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.limit = float(max(self.floor, min(self.ceiling, 2 * self.floor)))

    @property
    def bound(self) -> int:
        return int(self.limit)

    def note_saturation(self) -> None:
        """A request arrived while the bound was full: growing the bound could be worth it."""
        self._saturated = True

    def observe(self, latency_s: float) -> None:
        self._samples.append(latency_s)
        if len(self._samples) < self.window_size:
            return
        samples = sorted(self._samples)
        self._samples.clear()
        typical = samples[len(samples) // 2]
        # The baseline is the best window seen, allowed to drift up 1 % per window so it follows a
        # machine that got slower (another tenant, a frequency step) instead of shedding forever.
        if self.baseline_s is None or typical < self.baseline_s:
            self.baseline_s = typical
        else:
            self.baseline_s *= 1.01
        if typical > self.tolerance * self.baseline_s:
            self.limit = max(float(self.floor), self.limit * 0.8)
        elif self._saturated:
            self.limit = min(float(self.ceiling), self.limit + 1.0)
        self._saturated = False


class InFlightLimiter:
    def __init__(
        self,
        limit: int,
        mode: Mode = "adaptive",
        adaptive_floor: int = 2,
        tolerance: float = 1.5,
    ) -> None:
        self.limit = limit
        self.mode = mode
        self.adaptive_floor = min(adaptive_floor, limit)
        self.tolerance = tolerance
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._adaptive: dict[str, AdaptiveLimit] = {}

    def in_flight(self, model: str) -> int:
        return self._counts[model]

    def total(self) -> int:
        return sum(self._counts.values())

    def bound(self, model: str) -> int:
        if self.mode == "static":
            return self.limit
        return self._limit_for(model).bound

    def _limit_for(self, model: str) -> AdaptiveLimit:
        if model not in self._adaptive:
            self._adaptive[model] = AdaptiveLimit(self.adaptive_floor, self.limit, self.tolerance)
        return self._adaptive[model]

    def try_admit(self, model: str) -> None:
        """Raise OverloadedError now if `model` is at its bound (call before reading the body)."""
        bound = self.bound(model)
        if self._counts[model] >= bound:
            if self.mode == "adaptive":
                self._limit_for(model).note_saturation()
            raise OverloadedError(
                f"model {model!r} has {bound} requests in flight; retry shortly",
                details={"model": model, "in_flight_limit": bound, "admission": self.mode},
            )

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold one slot for `model` for the duration of the block, or raise OverloadedError."""
        self.try_admit(model)
        self._counts[model] += 1
        gauge = IN_FLIGHT.labels(model)
        gauge.inc()
        try:
            yield
        finally:
            self._counts[model] -= 1
            gauge.dec()

    def observe_latency(self, model: str, latency_s: float) -> None:
        """Feed a completed Triton round trip into the adaptive bound."""
        if self.mode == "adaptive":
            limit = self._limit_for(model)
            limit.observe(latency_s)
            ADMISSION_LIMIT.labels(model).set(limit.bound)
