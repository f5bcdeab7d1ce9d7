"""Admission control: the most goodput a model gives while its accepted requests stay within a latency SLO.

Each Triton model has a bound on the inference requests the gateway lets in at once; past it the
gateway answers 429 before reading the body. Counts live on the event loop, so no lock is needed.

Two modes:
- `slo` (default). The bound never goes below the model's *knee*: the requests in flight that keep
  every Triton instance running a full batch with the next one forming (2 x batch slots x
  max_batch_size; an instance is one slot, a pipelined one two). Below the knee more requests in
  flight buy throughput; a dynamically batching server needs that queue, or its batcher never forms a
  full batch. Above the knee more in flight only adds latency, and the bound follows the latency
  objective with a gradient step, as Envoy's adaptive concurrency filter and Netflix's gradient2 do,
  but against an absolute objective rather than a multiple of the lone-request latency (which a
  batching server exceeds by design at 2-8 in flight): a window whose p99 is over the SLO scales the
  bound by SLO/p99 (at most halving it); a window under 0.8 x SLO that found the bound full grows it
  by sqrt(bound), gradient2's headroom.
  The SLO is `slo_p99_ms` when set, else measured: `slo_full_batch_multiple` x the model's
  full-batch compute time from Triton's statistics (x 2 for a pipelined instance, whose two slots a
  request waits behind). At the knee a request waits for one batch per slot and runs in the next,
  about two full-batch times on a plain instance, so the default multiple 4 leaves as much again for
  bursts. Until Triton has executed a batch no SLO is known, and the bound is the ceiling.
- `static`: a fixed bound (`max_inflight_per_model`), for capacity measurements that must not depend
  on a controller.

The ceiling (`max_inflight_per_model`) bounds both: it caps the gateway's memory and Triton's queue.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from .errors import BackendTimeoutError, OverloadedError
from .metrics import ADMISSION_LIMIT, ADMISSION_SLO, IN_FLIGHT, SHED

Mode = Literal["slo", "static"]
ShedReason = Literal["over_slo", "over_ceiling"]

#: A window under this share of the SLO may grow the bound (between it and the SLO: hold).
GROW_BELOW_SLO = 0.8
#: The most one window may shrink the bound by (gradient2 and Envoy clamp their gradient alike).
MIN_GRADIENT = 0.5
#: Completed requests per controller window at least (a p99 needs enough of them to mean something).
MIN_WINDOW = 64


def nearest_rank(sorted_values: list[float], quantile: float) -> float:
    """The nearest-rank percentile of an ascending list: always a value that was observed."""
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class SloBound:
    """The in-flight bound of one model under `slo` admission, and the completion rate it measures."""

    ceiling: int
    knee: int = 1
    slo_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    limit: float = field(init=False)
    rate_per_s: float | None = field(default=None, init=False)
    _samples: list[float] = field(default_factory=list, init=False)
    _saturated: bool = field(default=False, init=False)
    _window_started: float = field(init=False)

    def __post_init__(self) -> None:
        self.limit = float(self.ceiling)
        self._window_started = self.clock()

    @property
    def bound(self) -> int:
        return int(self.limit)

    def set_profile(self, knee: int, slo_s: float | None) -> None:
        """The model's knee and SLO (from its Triton config and statistics, or the settings)."""
        self.knee = max(1, min(knee, self.ceiling))
        self.slo_s = slo_s
        if slo_s is None:
            self.limit = float(self.ceiling)
        self.limit = max(self.limit, float(self.knee))

    def note_saturation(self) -> None:
        """A request found the bound full: growing it could be worth it."""
        self._saturated = True

    def observe(self, latency_s: float) -> None:
        """One admitted request's duration; once per window, move the bound."""
        self._samples.append(latency_s)
        if len(self._samples) < max(MIN_WINDOW, self.bound):
            return
        now = self.clock()
        elapsed = now - self._window_started
        if elapsed > 0:
            self.rate_per_s = len(self._samples) / elapsed
        p99 = nearest_rank(sorted(self._samples), 0.99)
        self._samples.clear()
        self._window_started = now
        saturated, self._saturated = self._saturated, False
        if self.slo_s is None:
            return
        if p99 > self.slo_s:
            gradient = max(MIN_GRADIENT, self.slo_s / p99)
            self.limit = max(float(self.knee), math.floor(self.limit * gradient))
        elif saturated and p99 < GROW_BELOW_SLO * self.slo_s:
            self.limit = min(float(self.ceiling), self.limit + max(1.0, math.sqrt(self.limit)))


class InFlightLimiter:
    """Per-model in-flight counts and bounds; the decision to admit or shed one request."""

    def __init__(
        self,
        ceiling: int,
        mode: Mode = "slo",
        slo_s: float | None = None,
        slo_s_by_model: dict[str, float] | None = None,
        slo_full_batch_multiple: float = 4.0,
    ) -> None:
        self.ceiling = ceiling
        self.mode = mode
        self.slo_full_batch_multiple = slo_full_batch_multiple
        self._slo_s = slo_s
        self._slo_s_by_model = slo_s_by_model or {}
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._bounds: dict[str, SloBound] = {}

    def models(self) -> list[str]:
        """Models that have asked for admission since start."""
        return list(self._bounds)

    def in_flight(self, model: str) -> int:
        return self._counts[model]

    def total(self) -> int:
        return sum(self._counts.values())

    def bound(self, model: str) -> int:
        if self.mode == "static":
            return self.ceiling
        return self._bound_for(model).bound

    def slo_s(self, model: str) -> float | None:
        """The model's latency objective in use (configured or measured); None until known."""
        return self._bound_for(model).slo_s

    def _bound_for(self, model: str) -> SloBound:
        bound = self._bounds.get(model)
        if bound is None:
            bound = self._bounds[model] = SloBound(self.ceiling, slo_s=self._configured_slo(model))
        return bound

    def _configured_slo(self, model: str) -> float | None:
        return self._slo_s_by_model.get(model, self._slo_s)

    def set_profile(
        self,
        model: str,
        *,
        instances: int,
        batch_slots: int,
        max_batch_size: int,
        full_batch_s: float | None,
    ) -> None:
        """What Triton says about `model`: its knee and, unless configured, its measured SLO.

        A request at the knee waits behind `batch_slots / instances` batches per instance (two on a
        pipelined one), so the measured SLO scales with that share as the knee does.
        """
        knee = 2 * max(1, batch_slots) * max(1, max_batch_size)
        slo = self._configured_slo(model)
        if slo is None and full_batch_s is not None:
            slo = self.slo_full_batch_multiple * full_batch_s * max(1, batch_slots) / max(1, instances)
        bound = self._bound_for(model)
        bound.set_profile(knee, slo)
        if slo is not None:
            ADMISSION_SLO.labels(model).set(slo)
        ADMISSION_LIMIT.labels(model).set(self.bound(model))

    def at_bound(self, model: str) -> bool:
        slo_bound = self._bound_for(model)  # registers the model for its profile
        return self._counts[model] >= (self.ceiling if self.mode == "static" else slo_bound.bound)

    def shed_reason(self, model: str) -> ShedReason:
        return "over_ceiling" if self.bound(model) >= self.ceiling else "over_slo"

    def retry_after_s(self, model: str) -> int:
        """Whole seconds until the requests in flight have drained, by the measured completion rate."""
        rate = self._bounds[model].rate_per_s if model in self._bounds else None
        if not rate:
            return 1
        return max(1, math.ceil(self._counts[model] / rate))

    def refuse(self, model: str) -> OverloadedError:
        """Count one shed request and describe it; the caller answers 429 with it."""
        reason = self.shed_reason(model)
        SHED.labels(model, reason).inc()
        if self.mode == "slo":
            self._bound_for(model).note_saturation()
        bound = self.bound(model)
        retry_after = self.retry_after_s(model)
        return OverloadedError(
            f"model {model!r} has {bound} requests in flight; retry in {retry_after}s",
            details={"model": model, "in_flight_limit": bound, "admission": self.mode, "reason": reason},
            headers={"Retry-After": str(retry_after)},
        )

    def try_admit(self, model: str) -> None:
        """Raise OverloadedError now if `model` is at its bound (call before reading the body)."""
        if self.at_bound(model):
            raise self.refuse(model)

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold one slot for `model` for the duration of the block, or raise OverloadedError.

        The block's duration (decode + inference: everything the slot pays for) feeds the bound when
        it completes or times out; a block that fails fast on bad input or a backend error says
        nothing about latency and would drag the window's percentile down, so it is not observed.
        """
        self.try_admit(model)
        self._counts[model] += 1
        gauge = IN_FLIGHT.labels(model)
        gauge.inc()
        started = time.perf_counter()
        try:
            yield
        except BackendTimeoutError:
            self.observe_latency(model, time.perf_counter() - started)
            raise
        else:
            self.observe_latency(model, time.perf_counter() - started)
        finally:
            self._counts[model] -= 1
            gauge.dec()

    def observe_latency(self, model: str, latency_s: float) -> None:
        """Feed one admitted request's duration into the model's bound; publish the bound in use."""
        self._bound_for(model).observe(latency_s)  # static too: the completion rate sets Retry-After
        ADMISSION_LIMIT.labels(model).set(self.bound(model))
