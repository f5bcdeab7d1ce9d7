"""Closed-loop load: `concurrency` clients, each sending its next request as soon as the last returns.

Closed loop is what a fixed pool of callers does (and what the prototype measured); it finds the
throughput a configuration sustains at a given concurrency, and the latency it costs there.

Workers are threads by default. A Python client costs ~0.5 ms of CPU per request under the GIL, so
for fast servers (GPU) the load can be spread over `processes` worker processes, each with its own
threads; all of them start on one shared wall-clock instant and stop on another.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from .client import Transport, make_client

#: Calls per worker before the window opens (connection set-up, server-side warm-up).
WARMUP_CALLS = 2


@dataclass(frozen=True)
class LoadTarget:
    """What to hit and how: everything a worker process needs to build its own clients (picklable)."""

    transport: Transport
    url: str  # Triton HTTP base URL, e.g. http://127.0.0.1:8000
    model: str
    batch_size: int = 1
    input_size: int = 224
    grpc_url: str | None = None
    max_batch: int = 64  # shared-memory region size, in images


@dataclass(frozen=True)
class LoadResult:
    transport: str
    model: str
    batch_size: int
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    throughput_img_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    first_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _WorkerOutcome:
    latencies: list[float]
    errors: int
    first_error: str | None
    finished_at: float


def run_load(
    target: LoadTarget,
    concurrency: int,
    duration_s: float,
    *,
    processes: int = 1,
) -> LoadResult:
    """Throughput and latency of `concurrency` closed-loop clients over `duration_s` seconds."""
    if concurrency < 1 or processes < 1:
        raise ValueError("concurrency and processes must be >= 1")
    processes = min(processes, concurrency)
    if processes == 1:
        start_at = time.time() + 0.3
        outcomes = _run_threads(target, concurrency, start_at, duration_s)
    else:
        grouped = _run_processes(target, concurrency, processes, duration_s)
        start_at = grouped[0][0]
        outcomes = [o for _, group in grouped for o in group]
    return _summarize(target, concurrency, start_at, outcomes)


def _summarize(
    target: LoadTarget, concurrency: int, start_at: float, outcomes: list[_WorkerOutcome]
) -> LoadResult:
    latencies = np.array([x for o in outcomes for x in o.latencies], dtype=np.float64)
    errors = sum(o.errors for o in outcomes)
    wall = max((o.finished_at for o in outcomes), default=start_at) - start_at
    first_error = next((o.first_error for o in outcomes if o.first_error), None)

    def pct(q: float) -> float:
        return round(float(np.percentile(latencies, q) * 1e3), 3) if latencies.size else float("nan")

    return LoadResult(
        transport=target.transport,
        model=target.model,
        batch_size=target.batch_size,
        concurrency=concurrency,
        requests=int(latencies.size),
        errors=errors,
        wall_s=round(wall, 3),
        throughput_img_s=round(latencies.size * target.batch_size / wall, 2) if wall > 0 else 0.0,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        mean_ms=round(float(latencies.mean() * 1e3), 3) if latencies.size else float("nan"),
        first_error=first_error,
    )


def _run_threads(
    target: LoadTarget, concurrency: int, start_at: float, duration_s: float
) -> list[_WorkerOutcome]:
    """`concurrency` threads, each with its own client, all timed from `start_at` (epoch seconds)."""
    rng = np.random.default_rng(target.batch_size)
    batch = rng.standard_normal(
        (target.batch_size, 3, target.input_size, target.input_size), dtype=np.float32
    )
    outcomes: list[_WorkerOutcome] = []
    lock = threading.Lock()
    deadline = start_at + duration_s

    def worker() -> None:
        latencies: list[float] = []
        errors = 0
        first_error: str | None = None
        client = None
        try:
            client = make_client(
                target.transport,
                target.url,
                target.model,
                grpc_url=target.grpc_url,
                sample_shape=(3, target.input_size, target.input_size),
                max_batch=max(target.max_batch, target.batch_size),
            )
            for _ in range(WARMUP_CALLS):
                client.infer(batch)
            _sleep_until(start_at)
            now = time.time()
            while now < deadline:
                try:
                    client.infer(batch)
                except Exception as exc:  # noqa: BLE001 - count and report, keep the loop going
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                    time.sleep(0.01)
                    now = time.time()
                    continue
                done = time.time()
                latencies.append(done - now)
                now = done
        except Exception as exc:  # noqa: BLE001 - a worker that cannot start is one error, not a crash
            errors += 1
            first_error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            if client is not None:
                client.close()
        with lock:
            outcomes.append(_WorkerOutcome(latencies, errors, first_error, max(time.time(), start_at)))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _process_worker(
    target: LoadTarget, threads: int, start_at: float, duration_s: float
) -> list[_WorkerOutcome]:
    return _run_threads(target, threads, start_at, duration_s)


def _noop() -> None:
    return None


def _run_processes(
    target: LoadTarget, concurrency: int, processes: int, duration_s: float
) -> list[tuple[float, list[_WorkerOutcome]]]:
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA state
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        for future in [pool.submit(_noop) for _ in shares]:
            future.result()  # every worker process is up and has imported this module
        # Time for every worker to open its connections and warm up before the common start.
        start_at = time.time() + 1.0 + 0.05 * concurrency
        futures = [pool.submit(_process_worker, target, share, start_at, duration_s) for share in shares]
        return [(start_at, f.result()) for f in futures]


def _sleep_until(instant: float) -> None:
    remaining = instant - time.time()
    if remaining > 0:
        time.sleep(remaining)
