"""The tuner's search space: which configs each phase proposes, and how trials are scored."""

from __future__ import annotations

import pytest
from deploylab.services.modelzoo.repository import ServingConfig
from deploylab.services.perf.triton_admin import TritonAdminError
from deploylab.services.perf.tune import Trial, TrialPoint, TuneResult, TuneSpace, _check_applied, _to_confirm


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


def test_a_pipelined_base_pipelines_every_trial_and_says_so() -> None:
    space = TuneSpace(base=ServingConfig(pipeline=True))
    configs = [*space.layout_phase(cores=2), *space.batching_phase(space.layout_phase(cores=2)[0])]
    assert configs and all(c.pipeline for c in configs)
    assert Trial(1, configs[0], (), 10.0).label.startswith("2x1 pipelined ")


def test_a_trial_whose_pipeline_setting_triton_did_not_apply_is_refused() -> None:
    served = {
        "backend": "python",
        "max_batch_size": 8,
        "instance_group": [{"count": 2}],
        "parameters": {"intra_op_thread_count": {"string_value": "1"}},
    }
    _check_applied(served, ServingConfig())
    with pytest.raises(TritonAdminError, match="pipeline"):
        _check_applied(served, ServingConfig(pipeline=True))
    with pytest.raises(TritonAdminError, match="backend"):
        _check_applied(served, ServingConfig(backend="deploylab_ort"))


def test_a_native_base_runs_every_trial_on_deploylab_ort_and_says_so() -> None:
    space = TuneSpace(base=ServingConfig(backend="deploylab_ort"))
    configs = [*space.layout_phase(cores=2), *space.batching_phase(space.layout_phase(cores=2)[0])]
    assert configs and all(c.backend == "deploylab_ort" for c in configs)
    assert Trial(1, configs[0], (), 10.0).label.startswith("2x1 deploylab_ort ")


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


def _trial(
    index: int, serving: ServingConfig, img_s: float, p99: float = 5.0, confirms: int | None = None
) -> Trial:
    return Trial(index, serving, (point(4, img_s, p99),), p99_limit_ms=10, confirms=confirms)


def test_the_two_leading_configs_are_measured_again_worst_first() -> None:
    a, b, c = (ServingConfig(instance_count=n) for n in (1, 2, 4))
    trials = [_trial(1, a, 300), _trial(2, b, 340), _trial(3, c, 100, p99=50), _trial(4, a, 310)]
    assert [t.index for t in _to_confirm(trials, top=2)] == [4, 2]  # a (its best trial), then the leader
    assert _to_confirm(trials, top=0) == []
    assert _to_confirm([_trial(1, a, 300), _trial(2, c, 90, p99=50)], top=2) == []  # one feasible: no order


def test_the_winner_is_the_config_with_the_best_mean_not_the_luckiest_trial() -> None:
    a, b = ServingConfig(instance_count=1), ServingConfig(instance_count=2)
    lucky = TuneResult("m", 10, (_trial(1, a, 300), _trial(2, b, 429), _trial(3, b, 180, confirms=2),
                                 _trial(4, a, 320, confirms=1)))  # fmt: skip
    assert (lucky.mean_score(a), lucky.mean_score(b)) == (310, 304.5)
    assert lucky.best is not None and lucky.best.index == 4  # a: the latest measurement of the winner
    assert lucky.best.title == "1x1 mb8 delay0us pref[-] (re-run of #1)"
    over_limit = _trial(4, b, 500, p99=50, confirms=2)
    trials = (_trial(1, a, 300), _trial(2, b, 340), _trial(3, a, 290, confirms=1), over_limit)
    missed = TuneResult("m", 10, trials)
    assert missed.mean_score(b) == 170  # a re-run over the limit scores 0
    assert missed.best is not None and missed.best.index == 3


def test_once_leaders_are_measured_again_a_config_measured_once_cannot_win() -> None:
    a, b, c = (ServingConfig(instance_count=n) for n in (1, 2, 4))
    trials = (_trial(1, a, 723), _trial(2, b, 704), _trial(3, c, 703), _trial(4, b, 697, confirms=2),
              _trial(5, a, 679, confirms=1))  # fmt: skip
    result = TuneResult("m", 10, trials)
    assert result.mean_score(c) > result.mean_score(a) > result.mean_score(b)
    assert result.best is not None and result.best.serving == a and result.best.index == 5
