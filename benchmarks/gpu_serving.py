"""What the GPU check's steps share: host-call timing, a tritonserver started by the product's launcher,
and closed-loop points with Triton's statistics around each (gpu_check.py, gpu_native.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from deploylab.services.perf.client import Transport
    from deploylab.services.runtime.triton import TritonServer

#: transport, request batch, concurrency, client processes
LoadPlan = list[tuple["Transport", int, int, int]]


def log_line(message: str) -> None:
    """One progress line, flushed (the GPU session tees it into its log as it goes)."""
    print(message, flush=True)


def measure_host_calls(fn: Callable[[], object], batch: int, seconds: float) -> dict[str, float]:
    """For calls that already end synchronised (numpy out): per-call timings give both numbers."""
    for _ in range(3):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    total = sum(samples)
    return {
        "batch": batch,
        "img_s": round(batch * len(samples) / total, 1),
        "p50_ms": round(float(np.median(samples)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(samples, 99)) * 1e3, 3),
        "iterations": len(samples),
    }


@dataclass
class Served:
    """A ready tritonserver on the served model, started by the product's launcher."""

    server: TritonServer
    url: str
    model: str


@contextlib.contextmanager
def served_triton(
    repository: Path, model: str, work: Path, out: Path, binary: Path | None
) -> Iterator[Served]:
    """`TritonServer` on `repository` (GPU-blind on a GPU host, by the runtime's own plan); stopped after."""
    from deploylab.services.measure.ports import triton_ports
    from deploylab.services.runtime.triton import TritonOptions, TritonServer

    options = TritonOptions(
        model_repository=repository,
        state_dir=work / "state",
        triton_binary=binary,
        **triton_ports(),
        triton_startup_timeout_s=240.0,
        triton_python_shm_mb=256,
    )
    server = TritonServer(options, models=[model], log_path=out / "triton.log", gpu_metrics=False)
    server.start()
    try:
        yield Served(server, options.triton_http_url, model)
    finally:
        server.stop()


def run_points(
    url: str, stats_url: str, model: str, plan: LoadPlan, seconds: float, path: str
) -> list[dict[str, Any]]:
    """Closed-loop points against `url` (Triton or the gateway), with Triton's statistics around each."""
    from deploylab.services.perf.load import LoadTarget, run_load
    from deploylab.services.perf.triton_admin import model_statistics

    points = []
    for transport, batch, concurrency, processes in plan:
        target = LoadTarget(transport, url, model, batch_size=batch, max_batch=max(batch, 64))
        before = model_statistics(stats_url, model)
        load = run_load(target, concurrency, seconds, processes=processes)
        stats = model_statistics(stats_url, model) - before
        points.append({"path": path, **load.as_dict(), "processes": processes, "server": stats.as_dict()})
        log_line(
            f"  {path} {transport} b={batch} c={concurrency}: {load.throughput_img_s} img/s "
            f"p50 {load.p50_ms} ms mean executed batch {stats.mean_executed_batch:.1f} "
            f"errors {load.errors} {load.first_error or ''}"
        )
    return points
