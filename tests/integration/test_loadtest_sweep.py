"""`deploylab loadtest` on one small model against the real gateway and Triton: sane results on disk."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.loadtests.plan import get_profile, plan_points
from deploylab.services.measure.csv_files import POINT_COLUMNS
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.report.results import RunResults, load_results
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.support.loadtest import MODEL, capacity_gateway, run_loadtest


@pytest.fixture(scope="module")
def gateway_url(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """This module's own gateway, configured for capacity like the sweep's (see capacity_gateway)."""
    with capacity_gateway(runtime_settings, tmp_path_factory.mktemp("gateway-logs")) as url:
        yield url


@pytest.fixture(scope="module")
def sweep_run(
    tmp_path_factory: pytest.TempPathFactory,
    gateway_url: str,
    runtime_settings: RuntimeSettings,
    model_repository: Path,
) -> tuple[Path, RunResults, str]:
    out = tmp_path_factory.mktemp("results")
    done = run_loadtest(out, gateway_url, runtime_settings, model_repository)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = out.iterdir()
    return run_dir, load_results(run_dir), done.stdout


def test_loadtest_prints_the_report_path_and_writes_every_file(
    sweep_run: tuple[Path, RunResults, str],
) -> None:
    run_dir, _, stdout = sweep_run
    assert stdout.strip().splitlines()[-1] == str(run_dir / "report.html")
    for name in ("results.json", "points.csv", "inprocess.csv", "models.csv", "report.html", "report.md"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "plans" / f"{MODEL}.json").is_file()


def test_results_cover_the_planned_points_with_zero_failures(sweep_run: tuple[Path, RunResults, str]) -> None:
    _, results, _ = sweep_run
    assert results.status == "complete"
    planned = plan_points(get_profile("smoke"), MODEL, "default")
    assert [p.id for p in results.points] == [p.id for p in planned if p.loop != "ramp"]
    assert [r.id for r in results.ramps] == [p.id for p in planned if p.loop == "ramp"]
    for point in results.points:
        assert point.requests > 0 and point.failures == 0, point.id
        assert point.throughput_rps > 0, point.id
        lat = point.latency_ms
        assert lat.p50 is not None and lat.p99 is not None and lat.max is not None
        assert 0 < lat.p50 <= (lat.p95 or 0) <= lat.p99 <= lat.max * 1.05 + 1, point.id


def test_every_window_cross_checks_against_gateway_and_triton(
    sweep_run: tuple[Path, RunResults, str],
) -> None:
    _, results, _ = sweep_run
    assert results.flagged() == []
    for point in results.points:
        sources = {c.source for c in point.checks}
        assert sources == ({"gateway", "triton"} if point.target == "gateway" else {"triton"}), point.id
        assert point.triton is not None and point.triton.requests == point.requests - point.failures
        # The statistics API and the metrics agree on how many batches ran.
        assert sum(b.executions for b in point.triton.batches) == point.triton.executions, point.id
        assert point.triton.avg_batch_size is not None and point.triton.avg_batch_size >= 1.0
        if point.target == "gateway":
            assert point.gateway is not None and point.gateway.requests == point.requests
            assert point.gateway.preprocess_ms is not None and point.gateway.preprocess_ms > 0
        else:
            assert point.gateway is None
    (ramp,) = results.ramps
    assert [s.users for s in ramp.steps] == [1, 2]
    assert all(s.requests > 0 for s in ramp.steps)
    assert {c.source for c in ramp.checks} == {"gateway", "triton"} and not ramp.flags


def test_open_loop_rate_comes_from_the_closed_loop_peak(sweep_run: tuple[Path, RunResults, str]) -> None:
    _, results, _ = sweep_run
    closed = next(p for p in results.points if p.loop == "closed" and p.target == "gateway")
    (open_point,) = [p for p in results.points if p.loop == "open"]
    assert open_point.arrival_rate == pytest.approx(0.5 * closed.throughput_rps, rel=0.01)
    assert open_point.dropped_arrivals == 0


def test_results_carry_machine_baselines_and_model_config(sweep_run: tuple[Path, RunResults, str]) -> None:
    _, results, _ = sweep_run
    assert results.machine.logical_cores >= 1 and results.machine.cpu_model
    assert {"locust", "onnxruntime", "torch", "tritonserver"} <= set(results.machine.libraries)
    (facts,) = results.models
    assert facts.triton_model == MODEL and facts.params == get_spec(MODEL).variant().expected_params
    assert facts.serving["max_batch_size"] >= 1
    assert {r.engine for r in results.inprocess} == {"onnxruntime", "torch"}
    assert all(r.throughput_img_s > 0 and r.model == MODEL for r in results.inprocess)


def test_points_csv_has_one_row_per_window(sweep_run: tuple[Path, RunResults, str]) -> None:
    run_dir, results, _ = sweep_run
    with (run_dir / "points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == POINT_COLUMNS
    assert len(rows) == len(results.points) + sum(len(r.steps) for r in results.ramps)
    assert {row["flagged"] for row in rows} == {"False"}
