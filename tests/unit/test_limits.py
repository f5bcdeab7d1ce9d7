"""Admission control: the knee floor, the SLO-following bound, drain-time Retry-After, paced refusals."""

from __future__ import annotations

import pytest
from deploylab.services.gateway.errors import BackendTimeoutError, InvalidImageError, OverloadedError
from deploylab.services.gateway.limits import MIN_WINDOW, InFlightLimiter, SloBound, nearest_rank
from deploylab.services.gateway.model_profile import batch_slots, full_batch_seconds, instance_count
from deploylab.services.gateway.shedding import RefusalPacer, inference_name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def window(bound: SloBound, latency_s: float, clock: Clock | None = None, saturated: bool = True) -> None:
    """One controller window of identical latencies, completed over one second."""
    for _ in range(max(MIN_WINDOW, bound.bound)):
        if saturated:
            bound.note_saturation()
        if clock is not None:
            clock.now += 1.0 / max(MIN_WINDOW, bound.bound)
        bound.observe(latency_s)


def test_static_bound_rejects_past_the_limit_and_frees_slots() -> None:
    limiter = InFlightLimiter(2, "static")
    with limiter.admit("m"), limiter.admit("m"):
        with pytest.raises(OverloadedError) as info:
            limiter.try_admit("m")
        assert info.value.details["in_flight_limit"] == 2
        assert info.value.details["reason"] == "over_ceiling"
        with limiter.admit("other"):  # bounds are per model
            pass
    assert limiter.in_flight("m") == 0
    with limiter.admit("m"):
        assert limiter.total() == 1


def test_without_a_known_slo_the_bound_is_the_ceiling() -> None:
    bound = SloBound(ceiling=64)
    window(bound, 5.0)  # however slow: nothing to hold it against
    assert bound.bound == 64


def test_a_window_over_the_slo_scales_the_bound_by_slo_over_p99_but_never_below_the_knee() -> None:
    bound = SloBound(ceiling=64)
    bound.set_profile(knee=32, slo_s=0.200)
    window(bound, 0.150)
    assert bound.bound == 64  # within the SLO: nothing to shed
    window(bound, 0.250)
    assert bound.bound == int(64 * 0.200 / 0.250)  # the gradient step: 51
    window(bound, 10.0)
    assert bound.bound == 32  # at most halved per window, and the knee is the floor
    window(bound, 10.0)
    assert bound.bound == 32


def test_the_bound_grows_back_only_when_saturated_and_well_within_the_slo() -> None:
    bound = SloBound(ceiling=64)
    bound.set_profile(knee=16, slo_s=0.200)
    window(bound, 1.0)
    window(bound, 1.0)
    assert bound.bound == 16
    window(bound, 0.190)  # under the SLO but above 0.8 x SLO: hold
    assert bound.bound == 16
    window(bound, 0.100, saturated=False)  # nobody was refused: no reason to grow
    assert bound.bound == 16
    window(bound, 0.100)
    assert bound.bound == 20  # + sqrt(16)
    for _ in range(20):
        window(bound, 0.100)
    assert bound.bound == 64  # the ceiling caps it


def test_the_knee_is_two_full_batches_per_instance_and_the_slo_a_multiple_of_a_full_batch() -> None:
    limiter = InFlightLimiter(64, "slo", slo_full_batch_multiple=4.0)
    limiter.set_profile("m", instances=2, batch_slots=2, max_batch_size=8, full_batch_s=0.060)
    assert limiter.slo_s("m") == pytest.approx(0.240)
    assert limiter.bound("m") == 64
    for _ in range(3):
        for _ in range(MIN_WINDOW):
            limiter.observe_latency("m", 5.0)
    assert limiter.bound("m") == 32  # 2 instances x 2 batches of 8


def test_a_configured_slo_wins_over_the_measured_one() -> None:
    limiter = InFlightLimiter(64, "slo", slo_s=0.5, slo_s_by_model={"fast": 0.05})
    limiter.set_profile("fast", instances=1, batch_slots=1, max_batch_size=4, full_batch_s=1.0)
    limiter.set_profile("slow", instances=1, batch_slots=1, max_batch_size=4, full_batch_s=1.0)
    assert limiter.slo_s("fast") == 0.05
    assert limiter.slo_s("slow") == 0.5


def test_a_knee_above_the_ceiling_is_capped_at_the_ceiling() -> None:
    bound = SloBound(ceiling=8)
    bound.set_profile(knee=64, slo_s=0.1)
    window(bound, 1.0)
    assert bound.bound == 8


def test_retry_after_is_the_measured_drain_time_in_whole_seconds() -> None:
    clock = Clock()
    limiter = InFlightLimiter(4, "static")
    assert limiter.retry_after_s("m") == 1  # nothing measured yet
    limiter._bounds["m"] = SloBound(4, clock=clock)
    window(limiter._bounds["m"], 0.01, clock)  # MIN_WINDOW completions in one second
    with limiter.admit("m"), limiter.admit("m"), limiter.admit("m"), limiter.admit("m"):
        assert limiter.retry_after_s("m") == 1  # 4 in flight at 64/s drain in well under a second
        refusal = limiter.refuse("m")
        assert refusal.headers["Retry-After"] == "1"
    slow = SloBound(4, clock=clock)
    limiter._bounds["slow"] = slow
    for _ in range(MIN_WINDOW):
        clock.now += 1.0  # one completion a second
        slow.observe(0.5)
    with limiter.admit("slow"), limiter.admit("slow"), limiter.admit("slow"):
        assert limiter.retry_after_s("slow") == 3


def test_admit_feeds_completed_and_timed_out_blocks_but_not_fast_failures() -> None:
    limiter = InFlightLimiter(64, "slo", slo_s=0.001)
    limiter.set_profile("m", instances=1, batch_slots=1, max_batch_size=1, full_batch_s=None)
    for _ in range(MIN_WINDOW):
        with pytest.raises(InvalidImageError), limiter.admit("m"):
            raise InvalidImageError("bad")
    assert limiter.bound("m") == 64  # fast failures say nothing about latency
    for _ in range(MIN_WINDOW):
        with pytest.raises(BackendTimeoutError), limiter.admit("m"):
            raise BackendTimeoutError("slow")
    # timeouts are observed: had they taken longer than the 1 ms SLO the bound would have shrunk;
    # they return at once here, so the window sits under the SLO and the bound holds
    assert limiter.bound("m") == 64
    assert limiter.in_flight("m") == 0


def test_refusals_are_counted_by_reason_and_mark_the_model_saturated() -> None:
    limiter = InFlightLimiter(1, "slo", slo_s=10.0)
    with limiter.admit("m"):
        refusal = limiter.refuse("m")
    assert refusal.status == 429 and refusal.code == "overloaded"
    assert refusal.details["reason"] == "over_ceiling"
    assert limiter._bounds["m"]._saturated


def test_nearest_rank_is_an_observed_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 0.99) == 99.0
    assert nearest_rank(values, 0.5) == 50.0
    assert nearest_rank([7.0], 0.99) == 7.0


def test_refusal_pacer_spaces_refusals_and_caps_the_wait() -> None:
    clock = Clock()
    pacer = RefusalPacer(rate_per_s=10.0, max_delay_s=0.25, clock=clock)
    delays = [pacer.delay() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.25, 0.25])  # the fourth finds the schedule full
    clock.now += 1.0
    assert pacer.delay() == 0.0  # time passed: the schedule drained


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/models/resnet50/classify", "resnet50"),
        ("/v2/models/resnet50/infer", "resnet50"),
        ("/v2/models/resnet50/versions/1/infer", "resnet50"),
        ("/v2/models/resnet50/ready", None),
        ("/v2/models/resnet50/versions/1/ready", None),
        ("/v1/models", None),
        ("/v1/models/a/b/classify", None),
        ("/admin/models/resnet50/load", None),
    ],
)
def test_inference_name_recognises_only_inference_paths(path: str, name: str | None) -> None:
    assert inference_name(path) == name


def test_instance_count_sums_groups_and_reads_a_missing_count_as_one() -> None:
    assert instance_count({"instance_group": [{"count": 2}, {"count": 3}]}) == 5
    assert instance_count({"instance_group": [{"kind": "KIND_CPU"}]}) == 1
    assert instance_count({}) == 1


def test_a_pipelined_instance_holds_two_batches_so_the_knee_counts_it_twice() -> None:
    pipelined = {"instance_group": [{"count": 1}], "parameters": {"pipeline": {"string_value": "1"}}}
    assert batch_slots(pipelined) == 2
    assert batch_slots({"instance_group": [{"count": 2}], "parameters": {}}) == 2
    assert batch_slots({"instance_group": [{"count": 2}]}) == 2
    limiter = InFlightLimiter(64, "slo", slo_full_batch_multiple=4.0)
    limiter.set_profile(
        "m", instances=1, batch_slots=batch_slots(pipelined), max_batch_size=8, full_batch_s=0.060
    )
    assert limiter.slo_s("m") == pytest.approx(0.480)  # waits behind twice the batches per instance
    for _ in range(3):
        for _ in range(MIN_WINDOW):
            limiter.observe_latency("m", 5.0)
    assert limiter.bound("m") == 32  # one instance x (a running and a staged batch) x 2 batches of 8


def _batch(size: int, count: int, infer_ms: float, io_ms: float = 0.0) -> dict[str, object]:
    per = {"count": count, "ns": int(io_ms * 1e6 * count)}
    return {
        "batch_size": size,
        "compute_input": per,
        "compute_infer": {"count": count, "ns": int(infer_ms * 1e6 * count)},
        "compute_output": per,
    }


def test_full_batch_seconds_reads_the_full_batch_and_scales_up_a_smaller_one() -> None:
    stats = {"model_stats": [{"batch_stats": [_batch(1, 10, 5.0), _batch(8, 4, 30.0, io_ms=1.0)]}]}
    assert full_batch_seconds(stats, 8) == pytest.approx(0.032)
    only_small = {"model_stats": [{"batch_stats": [_batch(1, 10, 5.0), _batch(2, 3, 8.0)]}]}
    assert full_batch_seconds(only_small, 8) == pytest.approx(0.032)  # 8 ms for 2 images, x 4
    assert full_batch_seconds({"model_stats": [{"batch_stats": []}]}, 8) is None
    assert full_batch_seconds({}, 8) is None
