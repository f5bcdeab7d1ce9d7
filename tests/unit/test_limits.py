"""Admission control: static bounds, and an adaptive bound that follows latency."""

from __future__ import annotations

import pytest

from services.gateway.errors import OverloadedError
from services.gateway.limits import AdaptiveLimit, InFlightLimiter


def test_static_bound_rejects_past_the_limit_and_frees_slots() -> None:
    limiter = InFlightLimiter(2, "static")
    with limiter.admit("m"), limiter.admit("m"):
        with pytest.raises(OverloadedError) as info:
            limiter.try_admit("m")
        assert info.value.details["in_flight_limit"] == 2
        with limiter.admit("other"):  # bounds are per model
            pass
    assert limiter.in_flight("m") == 0
    with limiter.admit("m"):
        assert limiter.total() == 1


def feed(limit: AdaptiveLimit, latency_s: float, windows: int, saturated: bool = True) -> None:
    for _ in range(windows):
        for _ in range(limit.window_size):
            if saturated:
                limit.note_saturation()
            limit.observe(latency_s)


def test_adaptive_bound_grows_while_latency_stays_near_baseline() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64)
    start = limit.bound
    feed(limit, 0.010, windows=10)
    assert limit.bound == start + 10
    assert limit.baseline_s == pytest.approx(0.010, rel=0.2)


def test_adaptive_bound_does_not_grow_without_saturation() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64)
    start = limit.bound
    feed(limit, 0.010, windows=10, saturated=False)
    assert limit.bound == start


def test_adaptive_bound_shrinks_when_latency_doubles_and_respects_floor_and_ceiling() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=12)
    feed(limit, 0.010, windows=30)
    assert limit.bound == 12  # ceiling
    feed(limit, 0.030, windows=3)  # 3x the baseline: shed
    assert limit.bound < 12
    feed(limit, 0.030, windows=30)
    assert limit.bound == 2  # floor


def test_baseline_drifts_up_so_a_slower_machine_is_not_shed_forever() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64)
    feed(limit, 0.010, windows=2)
    feed(limit, 0.014, windows=60)  # persistently 1.4x: under tolerance 1.5 → keeps growing
    assert limit.bound > 10
    assert limit.baseline_s is not None and limit.baseline_s > 0.010


def test_limiter_in_adaptive_mode_uses_the_adaptive_bound() -> None:
    limiter = InFlightLimiter(64, "adaptive", adaptive_floor=2)
    assert limiter.bound("m") == 4
    for _ in range(16):
        limiter.observe_latency("m", 0.01)
    for _ in range(16):
        limiter.observe_latency("m", 0.05)
    assert limiter.bound("m") == 3
