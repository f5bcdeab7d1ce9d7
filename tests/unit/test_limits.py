"""Admission control: static bounds, and an adaptive bound that follows latency."""

from __future__ import annotations

import pytest

from services.gateway.errors import BackendTimeoutError, InvalidImageError, OverloadedError
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_baseline_follows_a_slower_machine_once_the_old_minimum_ages_out() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(floor=2, ceiling=64, baseline_horizon_s=10.0, clock=clock)
    feed(limit, 0.010, windows=2)
    for _ in range(60):  # persistently 1.4x slower, one window a second
        clock.now += 1.0
        feed(limit, 0.014, windows=1)
    assert limit.baseline_s == pytest.approx(0.014)
    assert limit.bound > 10  # shed for ~10 s, then growing again


def test_sustained_overload_does_not_ratchet_the_baseline_up() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(floor=1, ceiling=64, baseline_horizon_s=10.0, clock=clock)
    feed(limit, 0.010, windows=1)
    for step in range(40):  # latency creeping up window after window, within the horizon
        clock.now += 0.2
        feed(limit, 0.012 + 0.001 * step, windows=1)
    assert limit.baseline_s == pytest.approx(0.010)
    assert limit.bound == 1


def test_growth_that_overshoots_the_knee_is_probed_ever_more_rarely() -> None:
    """Knee at 1: latency doubles whenever two are in flight. Growing is a probe that costs one slow
    window; after each failed probe the next one waits twice as long."""
    limit = AdaptiveLimit(floor=1, ceiling=64)
    feed(limit, 0.010, windows=1)
    slow_windows = 0
    for _ in range(200):
        slow = limit.bound >= 2
        slow_windows += slow
        feed(limit, 0.020 if slow else 0.010, windows=1)
    assert slow_windows <= 12, f"{slow_windows} of 200 windows past the knee"
    assert limit.bound == 1 or slow_windows > 0


def test_growth_that_holds_up_keeps_growing_every_window() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=64)
    feed(limit, 0.010, windows=1)
    start = limit.bound
    feed(limit, 0.010, windows=20)
    assert limit.bound == start + 20


def test_timeouts_shrink_the_bound_even_when_every_request_is_equally_slow() -> None:
    limit = AdaptiveLimit(floor=1, ceiling=64)
    feed(limit, 0.010, windows=8)
    grown = limit.bound
    for _ in range(3):
        for _ in range(limit.window_size):
            limit.observe(1.0, timed_out=True)
    assert limit.bound < grown
    assert limit.baseline_s == pytest.approx(0.010)  # timed-out windows never become the baseline


def test_admit_feeds_completed_and_timed_out_blocks_but_not_fast_failures() -> None:
    limiter = InFlightLimiter(64, "adaptive", adaptive_floor=1)
    observed: list[tuple[float, bool]] = []
    limiter.observe_latency = lambda model, latency, timed_out=False: observed.append(  # type: ignore[method-assign]
        (latency, timed_out)
    )
    with limiter.admit("m"):
        pass
    with pytest.raises(InvalidImageError), limiter.admit("m"):
        raise InvalidImageError("corrupt")
    with pytest.raises(BackendTimeoutError), limiter.admit("m"):
        raise BackendTimeoutError("slow")
    assert [timed_out for _, timed_out in observed] == [False, True]
    assert limiter.in_flight("m") == 0


def test_limiter_in_adaptive_mode_uses_the_adaptive_bound() -> None:
    limiter = InFlightLimiter(64, "adaptive", adaptive_floor=2)
    assert limiter.bound("m") == 4
    for _ in range(16):
        limiter.observe_latency("m", 0.01)
    for _ in range(16):
        limiter.observe_latency("m", 0.05)
    assert limiter.bound("m") == 3
