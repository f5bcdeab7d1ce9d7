"""Admission control: a bounded number of in-flight inference requests per Triton model.

Past the bound the gateway answers 429 with Retry-After at once instead of queueing: a queue in front
of a saturated model only adds latency to every request behind it, and callers (or their load
balancer) can retry elsewhere. Counts live on the event loop, so no lock is needed.

Two modes:
- `static`: a fixed bound (`max_inflight_per_model`). What capacity benchmarks use: it lets Triton's
  dynamic batcher see every request and form the largest batches.
- `adaptive` (default): the bound follows latency, in the spirit of TCP Vegas / Netflix's
  concurrency-limits. Each window of completed requests is compared with the best latency seen
  recently (the no-load baseline): above `tolerance` x baseline the bound shrinks multiplicatively;
  below half that margin, if requests were actually queueing at the bound, it grows by one; in
  between it holds (TCP Vegas' alpha/beta band). Under overload the accepted requests therefore keep
  close to their unloaded latency and the excess is shed as 429.

Defaults (floor 1, tolerance 1.2) were chosen by measurement (docs/reliability.md): on 2 shared
cores, open-loop arrivals at 2x capacity kept the accepted p99 at 2.4-2.8x the unloaded p99 with
floor 2 / tolerance 1.5, 1.9-2.1x with floor 1 / 1.3, and 1.2-1.9x with floor 1 / 1.2 — at the same
accepted throughput, because the excess is queueing, not work.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from .errors import BackendTimeoutError, OverloadedError
from .metrics import ADMISSION_LIMIT, IN_FLIGHT

Mode = Literal["adaptive", "static"]

#: At most this many good windows between growth probes once growing keeps overshooting the knee.
MAX_PROBE_PENALTY = 32


@dataclass
class AdaptiveLimit:
    """Vegas-style bound for one model: shrink when a window's latency exceeds tolerance x baseline.

    The baseline is the best (lowest) window median of the last `baseline_horizon_s` seconds — a
    windowed minimum, like BBR's min-RTT filter. It follows a machine that really got slower once the
    old minimum ages out, but it cannot creep up under sustained overload: every decrease brings the
    bound back near the floor, whose windows re-measure the no-load latency and keep the minimum low.
    (A baseline that drifted up per window — the first design — let latency ratchet up with it.)

    Growing is a probe: when a growth is followed by a slow window, the next growth waits twice as
    many good windows (up to MAX_PROBE_PENALTY), so sustained overload at the knee costs a slow window
    now and then instead of every other one; a growth that holds up halves the wait again.
    """

    floor: int
    ceiling: int
    tolerance: float = 1.2
    window_size: int = 16
    baseline_horizon_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    limit: float = field(init=False)
    _samples: list[float] = field(default_factory=list, init=False)
    _timeouts: int = field(default=0, init=False)
    _saturated: bool = field(default=False, init=False)
    _minima: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _probing: bool = field(default=False, init=False)  # the bound grew after the last window
    _penalty: int = field(default=1, init=False)  # good windows to wait after a failed growth
    _wait: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.limit = float(max(self.floor, min(self.ceiling, 2 * self.floor)))

    @property
    def bound(self) -> int:
        return int(self.limit)

    @property
    def grow_below(self) -> float:
        """Grow only while latency is within half the tolerance band of the baseline."""
        return 1.0 + (self.tolerance - 1.0) / 2

    @property
    def baseline_s(self) -> float | None:
        return self._minima[0][1] if self._minima else None

    def note_saturation(self) -> None:
        """A request arrived while the bound was full: growing the bound could be worth it."""
        self._saturated = True

    def observe(self, latency_s: float, timed_out: bool = False) -> None:
        """One admitted request's duration; every `window_size` of them, adjust the bound."""
        self._samples.append(latency_s)
        self._timeouts += timed_out
        if len(self._samples) < self.window_size:
            return
        typical = sorted(self._samples)[len(self._samples) // 2]
        congested = self._timeouts > 0  # a timeout is congestion, whatever the median says
        self._samples.clear()
        self._timeouts = 0
        if not congested:
            self._remember(typical)
        baseline = self.baseline_s
        probed, self._probing = self._probing, False
        if congested or (baseline is not None and typical > self.tolerance * baseline):
            # At least one whole slot: 2.6 x 0.8 would still be 2, and one more slow window.
            self.limit = max(float(self.floor), min(self.limit * 0.8, self.limit - 1.0))
            if probed:  # the last growth went past the knee: probe half as often
                self._penalty = min(self._penalty * 2, MAX_PROBE_PENALTY)
            self._wait = self._penalty
        elif self._saturated and (baseline is None or typical <= self.grow_below * baseline):
            if probed:
                self._penalty = max(1, self._penalty // 2)
            if self._wait > 0:
                self._wait -= 1
            else:
                self.limit = min(float(self.ceiling), self.limit + 1.0)
                self._probing = True
        # Between grow_below and tolerance: hold (Vegas' alpha/beta band), no probing into the knee.
        self._saturated = False

    def _remember(self, median_s: float) -> None:
        """Windowed minimum: a deque of (time, median) with increasing medians; the front is the min."""
        now = self.clock()
        while self._minima and self._minima[-1][1] >= median_s:
            self._minima.pop()
        self._minima.append((now, median_s))
        while len(self._minima) > 1 and now - self._minima[0][0] > self.baseline_horizon_s:
            self._minima.popleft()


class InFlightLimiter:
    def __init__(
        self,
        limit: int,
        mode: Mode = "adaptive",
        adaptive_floor: int = 1,
        tolerance: float = 1.2,
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
        """Hold one slot for `model` for the duration of the block, or raise OverloadedError.

        The block's duration (decode + inference: everything the slot pays for) feeds the adaptive
        bound when it completes or times out; a block that fails fast on bad input says nothing about
        congestion and would drag the no-load baseline down, so it is not observed.
        """
        self.try_admit(model)
        self._counts[model] += 1
        gauge = IN_FLIGHT.labels(model)
        gauge.inc()
        started = time.perf_counter()
        try:
            yield
        except BackendTimeoutError:
            self.observe_latency(model, time.perf_counter() - started, timed_out=True)
            raise
        else:
            self.observe_latency(model, time.perf_counter() - started)
        finally:
            self._counts[model] -= 1
            gauge.dec()

    def observe_latency(self, model: str, latency_s: float, timed_out: bool = False) -> None:
        """Feed one admitted request's duration into the adaptive bound; publish the bound in use."""
        if self.mode == "adaptive":
            limit = self._limit_for(model)
            limit.observe(latency_s, timed_out)
        ADMISSION_LIMIT.labels(model).set(self.bound(model))
