"""The tuner's search space: which configs each phase proposes, and how trials are scored."""

from __future__ import annotations

from services.modelzoo.repository import ServingConfig
from services.perf.tune import Trial, TrialPoint, TuneSpace


def point(concurrency: int, img_s: float, p99: float, errors: int = 0) -> TrialPoint:
    return TrialPoint(concurrency, img_s, p99 / 2, p99, 1.0, errors)


def test_layout_phase_spends_every_core_once_then_tries_two_instances_per_core() -> None:
    configs = TuneSpace().layout_phase(cores=4)
    assert [(c.instance_count, c.intra_op_threads) for c in configs] == [(4, 1), (2, 2), (1, 4), (8, 1)]
    assert {(c.max_batch_size, c.max_queue_delay_us) for c in configs} == {(8, 0)}


def test_batching_phase_varies_one_knob_at_a_time_on_the_winner() -> None:
    space = TuneSpace(max_batch_sizes=(8, 16), queue_delays_us=(0, 500), preferred_batch_sizes=((), (4, 8)))
    winner = space.layout_phase(cores=2)[0]
    configs = space.batching_phase(winner)
    assert len(configs) == 3
    assert all((c.instance_count, c.intra_op_threads) == (2, 1) for c in configs)
    assert {(c.max_batch_size, c.max_queue_delay_us, c.preferred_batch_sizes) for c in configs} == {
        (16, 0, ()),
        (8, 500, ()),
        (8, 0, (4, 8)),
    }


def test_grid_is_the_deduplicated_product() -> None:
    space = TuneSpace(layouts=((1, 1), (1, 1), (2, 1)), max_batch_sizes=(4,), queue_delays_us=(0, 100))
    assert len(space.grid(cores=2)) == 4


def test_preferred_sizes_above_max_batch_are_dropped() -> None:
    config = TuneSpace().candidate((1, 1), 4, 0, (4, 8))
    assert config.preferred_batch_sizes == (4,)


def test_trial_score_is_the_best_throughput_within_the_limit() -> None:
    trial = Trial(
        1, ServingConfig(), (point(1, 100, 5), point(4, 300, 9), point(16, 400, 30)), p99_limit_ms=10
    )
    assert trial.best_point == point(4, 300, 9)
    assert trial.score == 300
    failing = Trial(2, ServingConfig(), (point(1, 100, 50), point(4, 900, 5, errors=1)), p99_limit_ms=10)
    assert failing.best_point is None and failing.score == 0
