"""Distributed Locust: one master and two worker processes on loopback produce the same result files
as a single local process, against the real gateway and Triton."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from deploylab.services.report.results import load_results
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.support.loadtest import capacity_gateway, run_loadtest


def key_paths(value: object, prefix: str = "") -> set[str]:
    """Every key path of a JSON document (list items merged): its shape without its numbers."""
    if isinstance(value, dict):
        paths = set()
        for key, item in value.items():
            paths |= {f"{prefix}.{key}"} | key_paths(item, f"{prefix}.{key}")
        return paths
    if isinstance(value, list):
        return set().union(*(key_paths(item, f"{prefix}[]") for item in value)) if value else set()
    return set()


def files_of(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


#: Marks the environment of every process this module's runs start, so that the check for leftover
#: workers finds this module's and never another program's Locust workers.
RUN_MARK = {"DEPLOYLAB_TEST_RUN": f"locust-distributed-{os.getpid()}-{uuid.uuid4().hex[:8]}"}


def locust_workers(mark: dict[str, str] = RUN_MARK) -> list[psutil.Process]:
    """Live Locust worker processes started under `mark` (anywhere in the process table: a worker
    that outlived its master is no longer anyone's child)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "locust" not in cmdline or "--worker" not in cmdline:
            continue
        try:
            environ = process.environ()
        except psutil.Error:
            continue  # gone meanwhile, or not ours to read
        if mark.items() <= environ.items():
            found.append(process)
    return found


@pytest.fixture(scope="module")
def gateway_url(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """This module's own gateway, configured for capacity like the sweep's (see capacity_gateway)."""
    with capacity_gateway(runtime_settings, tmp_path_factory.mktemp("gateway-logs")) as url:
        yield url


@pytest.fixture(scope="module")
def two_runs(
    tmp_path_factory: pytest.TempPathFactory,
    gateway_url: str,
    runtime_settings: RuntimeSettings,
    model_repository: Path,
) -> dict[int, Path]:
    runs = {}
    for workers in (0, 2):
        out = tmp_path_factory.mktemp(f"workers-{workers}")
        done = run_loadtest(
            out,
            gateway_url,
            runtime_settings,
            model_repository,
            "--workers",
            str(workers),
            "--no-inprocess",
            stop_timeout_s=2,
            env=RUN_MARK,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (runs[workers],) = out.iterdir()
    return runs


def test_master_and_two_workers_write_the_same_files_as_one_process(two_runs: dict[int, Path]) -> None:
    assert files_of(two_runs[2]) == files_of(two_runs[0])
    single = json.loads((two_runs[0] / "results.json").read_text())
    distributed = json.loads((two_runs[2] / "results.json").read_text())
    assert key_paths(distributed) == key_paths(single)
    for name in ("points.csv", "models.csv", "inprocess.csv"):
        assert (two_runs[2] / name).read_text().splitlines()[0] == (
            two_runs[0] / name
        ).read_text().splitlines()[0]


def test_distributed_windows_are_complete_and_cross_check(two_runs: dict[int, Path]) -> None:
    single, distributed = load_results(two_runs[0]), load_results(two_runs[2])
    assert [p.id for p in distributed.points] == [p.id for p in single.points]
    assert [r.id for r in distributed.ramps] == [r.id for r in single.ramps]
    assert {p.locust_workers for p in distributed.points} == {2}
    assert {p.locust_workers for p in single.points} == {0}
    for results in (single, distributed):
        assert results.status == "complete"
        assert results.flagged() == []  # the workers' last samples reached the master before each check
        assert all(p.requests > 0 and p.failures == 0 for p in results.points)
        # Percentiles come from every request's raw time: with workers, shipped with their reports.
        for point in results.points:
            lat = point.latency_ms
            assert lat.p50 is not None and lat.p99 is not None and lat.max is not None, point.id
            assert 0 < lat.p50 <= lat.p99 <= lat.max, point.id


def test_no_worker_outlives_its_run(two_runs: dict[int, Path]) -> None:
    assert locust_workers() == []
