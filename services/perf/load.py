"""Closed-loop load: `concurrency` clients, each sending its next request as soon as the last returns.

Closed loop is what a fixed pool of callers does; it finds the
throughput a configuration sustains at a given concurrency, and the latency it costs there.

The HTTP transports (`http`, `http-shm`, `classify`) are driven by one thread multiplexing every
connection (`multiplex.py`: 2–3x less client CPU per request than a thread per client); gRPC and
tritonclient run one thread per client. For fast servers (GPU) the load can be spread over `processes`
worker processes; all of them warm up, meet at a barrier, and share one measurement window.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from deploylab.services.measure.outcomes import Tally, error_text
from deploylab.services.measure.percentiles import percentile, summarize_s

from .client import Transport, make_client
from .multiplex import run_multiplexed

#: Transports whose clients can hand their request bytes to one multiplexing thread.
MULTIPLEXED: frozenset[str] = frozenset({"http", "http-shm", "classify"})

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


def run_load(
    target: LoadTarget,
    concurrency: int,
    duration_s: float,
    *,
    processes: int = 1,
) -> LoadResult:
    """Throughput and latency of `concurrency` closed-loop clients over `duration_s` seconds.

    Every worker connects and warms up first; the window opens for all of them at once, so slow
    starters neither shorten it nor count their set-up in it.
    """
    if concurrency < 1 or processes < 1:
        raise ValueError("concurrency and processes must be >= 1")
    processes = min(processes, concurrency)
    if processes == 1:
        start, outcomes = _run_local(target, concurrency, duration_s)
    else:
        start, outcomes = _run_processes(target, concurrency, processes, duration_s)
    return _summarize(target, concurrency, start, outcomes)


def _summarize(target: LoadTarget, concurrency: int, start: float, outcomes: list[Tally]) -> LoadResult:
    """One point from every client's tally; percentiles from the measurement core (nearest rank)."""
    latency = summarize_s(x for o in outcomes for x in o.latencies).rounded(3)
    errors = sum(o.errors for o in outcomes)
    wall = max((o.finished_at for o in outcomes), default=start) - start
    first_error = next((o.first_error for o in outcomes if o.first_error), None)
    return LoadResult(
        transport=target.transport,
        model=target.model,
        batch_size=target.batch_size,
        concurrency=concurrency,
        requests=latency.count,
        errors=errors,
        wall_s=round(wall, 3),
        throughput_img_s=round(latency.count * target.batch_size / wall, 2) if wall > 0 else 0.0,
        p50_ms=latency.p50,
        p90_ms=latency.p90,
        p99_ms=latency.p99,
        mean_ms=latency.mean,
        first_error=first_error,
    )


def _run_local(
    target: LoadTarget,
    concurrency: int,
    duration_s: float,
    on_ready: Callable[[], object] | None = None,
) -> tuple[float, list[Tally]]:
    """This process's share of the load: one multiplexing thread where the transport allows, else threads."""
    if target.transport not in MULTIPLEXED:
        return _run_threads(target, concurrency, duration_s, on_ready)
    clients = [_client_or_error(target) for _ in range(concurrency)]
    try:
        return run_multiplexed(clients, _batch(target), duration_s, WARMUP_CALLS, on_ready)
    finally:
        for client in clients:
            client.close()


def _client(target: LoadTarget) -> Any:
    return make_client(
        target.transport,
        target.url,
        target.model,
        grpc_url=target.grpc_url,
        sample_shape=(3, target.input_size, target.input_size),
        max_batch=max(target.max_batch, target.batch_size),
    )


class _Unavailable:
    """Stands in for a client that could not be built: the multiplexer reports it as that client's error."""

    connection = None

    def __init__(self, error: Exception) -> None:
        self.error = error

    def infer(self, batch: np.ndarray) -> np.ndarray:
        raise self.error

    def request_parts(self, batch: np.ndarray) -> list[memoryview]:
        raise self.error

    def close(self) -> None:
        pass


def _client_or_error(target: LoadTarget) -> Any:
    try:
        return _client(target)
    except Exception as exc:  # noqa: BLE001 - a worker that cannot start is one error, not a crash
        return _Unavailable(exc)


def _batch(target: LoadTarget) -> np.ndarray:
    rng = np.random.default_rng(target.batch_size)
    return rng.standard_normal((target.batch_size, 3, target.input_size, target.input_size), dtype=np.float32)


def _run_threads(
    target: LoadTarget,
    concurrency: int,
    duration_s: float,
    on_ready: Callable[[], object] | None = None,
) -> tuple[float, list[Tally]]:
    """`concurrency` threads, each with its own client; returns (window start, outcomes).

    All threads meet at a barrier after warming up; its action (run once, before anyone is released)
    calls `on_ready` — another process's barrier, for multi-process load — and opens the window.
    """
    batch = _batch(target)
    outcomes: list[Tally] = []
    lock = threading.Lock()
    window = [0.0, 0.0]  # start, deadline

    def open_window() -> None:
        if on_ready is not None:
            on_ready()
        window[0] = time.time()
        window[1] = window[0] + duration_s

    barrier = threading.Barrier(concurrency, action=open_window)

    def worker() -> None:
        tally = Tally()
        client = None
        try:
            client = _client(target)
            for _ in range(WARMUP_CALLS):
                client.infer(batch)
        except Exception as exc:  # noqa: BLE001 - a worker that cannot start is one error, not a crash
            tally.fail(error_text(exc))
        barrier.wait()
        now = time.time()
        while tally.first_error is None and now < window[1]:
            try:
                client.infer(batch)  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - count and report, keep the loop going
                tally.fail(error_text(exc))
                break
            done = time.time()
            tally.latencies.append(done - now)
            now = done
        if client is not None:
            client.close()
        tally.finished_at = max(now, window[0])
        with lock:
            outcomes.append(tally)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return window[0], outcomes


def _process_worker(
    target: LoadTarget, threads: int, duration_s: float, ready: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    _start, outcomes = _run_local(target, threads, duration_s, on_ready=ready.wait)
    results.put(outcomes)


def _run_processes(
    target: LoadTarget, concurrency: int, processes: int, duration_s: float
) -> tuple[float, list[Tally]]:
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA state
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [
        context.Process(target=_process_worker, args=(target, share, duration_s, ready, results), daemon=True)
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=300)
    except threading.BrokenBarrierError:
        for worker in workers:
            worker.terminate()
        raise RuntimeError("load worker processes did not get ready within 300 s") from None
    start = time.time()
    outcomes: list[Tally] = []
    for _ in workers:
        outcomes += results.get(timeout=duration_s + 300)
    for worker in workers:
        worker.join(timeout=30)
    return start, outcomes


@dataclass(frozen=True)
class PairedLatency:
    """Batch-1 latency of two targets measured request by request in alternation, one client."""

    pairs: int
    a_p50_ms: float
    b_p50_ms: float
    delta_p50_ms: float  # b − a: what the second path adds at the median
    delta_median_ms: float  # median over pairs of (b − a), a second view of the same thing

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def paired_latency(a: LoadTarget, b: LoadTarget, duration_s: float) -> PairedLatency:
    """One request to `a`, one to `b`, and again (the order flips every pair), for `duration_s`.

    Measured apart, two batch-1 latencies are seconds apart, and a shared or frequency-scaling machine
    drifts by more than the difference of interest (resnet50's direct p50 moved 35 ms between rounds
    on 2 cores). Interleaved, both paths see the same machine state, so the drift cancels.
    """
    batch = np.random.default_rng(1).standard_normal((1, 3, a.input_size, a.input_size), dtype=np.float32)
    clients = [
        make_client(t.transport, t.url, t.model, grpc_url=t.grpc_url,
                    sample_shape=(3, t.input_size, t.input_size), max_batch=max(t.max_batch, 1))
        for t in (a, b)
    ]  # fmt: skip
    try:
        for client in clients:
            for _ in range(WARMUP_CALLS):
                client.infer(batch)
        times: tuple[list[float], list[float]] = ([], [])
        deadline = time.perf_counter() + duration_s
        flip = False
        while time.perf_counter() < deadline or not times[0]:
            order = (1, 0) if flip else (0, 1)
            for index in order:
                started = time.perf_counter()
                clients[index].infer(batch)
                times[index].append(time.perf_counter() - started)
            flip = not flip
    finally:
        for client in clients:
            client.close()
    first, second = ([x * 1e3 for x in t] for t in times)
    a_p50, b_p50 = percentile(first, 50), percentile(second, 50)
    return PairedLatency(
        pairs=len(first),
        a_p50_ms=round(a_p50, 3),
        b_p50_ms=round(b_p50, 3),
        delta_p50_ms=round(b_p50 - a_p50, 3),
        delta_median_ms=round(percentile((b - a for a, b in zip(first, second, strict=True)), 50), 3),
    )
