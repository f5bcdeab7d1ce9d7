"""The tuner's search space: which configs each phase proposes, and how trials are scored."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from deploylab.services.modelzoo.manifest import read_manifest, write_manifest
from deploylab.services.modelzoo.repository import ServingConfig
from deploylab.services.perf import tune_run
from deploylab.services.perf.triton_admin import TritonAdminError
from deploylab.services.perf.tune import (
    Trial,
    TrialPoint,
    TuneOptions,
    TuneResult,
    TuneSpace,
    _check_applied,
    _to_confirm,
)
from deploylab.services.runtime.settings import RuntimeSettings


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
    with pytest.raises(TritonAdminError, match="engine"):
        _check_applied(served, ServingConfig(engine="openvino"))


def test_a_native_base_runs_every_trial_on_deploylab_ort_and_says_so() -> None:
    space = TuneSpace(base=ServingConfig(backend="deploylab_ort"))
    configs = [*space.layout_phase(cores=2), *space.batching_phase(space.layout_phase(cores=2)[0])]
    assert configs and all(c.backend == "deploylab_ort" for c in configs)
    assert Trial(1, configs[0], (), 10.0).label.startswith("2x1 deploylab_ort ")


OPENVINO_DEPLOYMENT = ServingConfig(
    engine="openvino",
    instance_count=3,
    intra_op_threads=2,
    max_batch_size=4,
    max_queue_size=16,
    default_queue_timeout_us=2_000_000,
    warmup=False,
    extra_parameters={"note": "kept"},
)


def _every_trial(space: TuneSpace) -> list[ServingConfig]:
    return [*space.layout_phase(cores=2), *space.batching_phase(space.layout_phase(cores=2)[0])]


def test_a_tune_over_a_deployment_varies_the_knobs_and_keeps_its_engine_and_the_rest() -> None:
    space = TuneSpace().on_deployment(OPENVINO_DEPLOYMENT)
    configs = _every_trial(space)
    kept = {(c.engine, c.max_queue_size, c.default_queue_timeout_us, c.warmup, c.backend) for c in configs}
    assert kept == {("openvino", 16, 2_000_000, False, "python")}
    assert all(c.extra_parameters == {"note": "kept"} for c in configs)
    assert {(c.instance_count, c.intra_op_threads) for c in configs} == {(2, 1), (1, 2), (4, 1)}
    assert Trial(1, configs[0], (), 10.0).label.startswith("2x1 openvino ")


def test_fields_the_caller_chose_replace_the_deployments_own_and_a_clash_is_refused() -> None:
    pipelined = TuneSpace(base=ServingConfig(pipeline=True), chosen=("pipeline",))
    configs = _every_trial(pipelined.on_deployment(OPENVINO_DEPLOYMENT))
    assert all(c.pipeline and c.engine == "openvino" for c in configs)
    assert Trial(1, configs[0], (), 10.0).label.startswith("2x1 openvino pipelined ")
    native = TuneSpace(base=ServingConfig(backend="deploylab_ort"), chosen=("backend",))
    with pytest.raises(ValueError, match="engine openvino"):
        native.on_deployment(OPENVINO_DEPLOYMENT)
    # Unchosen, the base's own backend (a default) does not replace the deployment's.
    assert (
        TuneSpace(base=ServingConfig(backend="deploylab_ort")).on_deployment(OPENVINO_DEPLOYMENT).base.backend
        == "python"
    )
    with pytest.raises(ValueError, match="not ServingConfig fields"):
        TuneSpace(chosen=("engnie",))


def test_run_tune_starts_every_trial_from_the_manifests_serving_config(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = "mobilenet_v3_small"
    shutil.copytree(model_repository / model, tmp_path / "repo" / model)
    directory = tmp_path / "repo" / model
    manifest = read_manifest(directory)
    assert manifest is not None
    write_manifest(directory, manifest.model_copy(update={"serving": asdict(OPENVINO_DEPLOYMENT)}))
    searched: list[TuneSpace] = []

    def fake_tune(base_url, model, input_size, num_classes, options, on_trial=None):  # type: ignore[no-untyped-def]
        searched.append(options.space)
        return TuneResult(model, options.p99_ms, ())

    monkeypatch.setattr(tune_run, "tune", fake_tune)
    monkeypatch.setattr(tune_run, "load_model", lambda base_url, model: None)
    settings = RuntimeSettings(model_repository=tmp_path / "repo", state_dir=tmp_path / "state")
    options = TuneOptions(p99_ms=10.0, space=TuneSpace(max_batch_sizes=(8,)))
    report = tune_run.run_tune(settings, model, options, tmp_path / "out", triton_url="http://127.0.0.1:9")
    assert report.config_path is None
    (space,) = searched
    assert space.base.engine == "openvino" and space.base.max_queue_size == 16
    assert all(c.engine == "openvino" for c in _every_trial(space))

    native = TuneSpace(base=ServingConfig(backend="deploylab_ort"), chosen=("backend",))
    with pytest.raises(tune_run.TuneError, match=f"{model}: engine openvino"):
        tune_run.run_tune(settings, model, TuneOptions(p99_ms=10.0, space=native), tmp_path / "out")
    (directory / "manifest.json").unlink()
    with pytest.raises(tune_run.TuneError, match="not exported"):
        tune_run.run_tune(settings, model, options, tmp_path / "out")


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
