"""In-process baselines: what the engine alone does with a thread budget, no server in the way.

Every served number is judged against this. "Best" must be the engine's true limit on the budget,
and on CPU that is not always one session with every thread: ONNX Runtime's intra-op pool pays a
synchronisation cost per node, so `threads` independent single-thread sessions run side by side
often beat one `threads`-thread session (333 vs ~290 img/s measured on 2 cores). Both layouts are
measured for every batch size, and `best_throughput` picks the winner.

Sessions run on Python threads: `InferenceSession.run`, OpenVINO's `InferRequest.infer` and torch ops
release the GIL, so threads overlap as separate processes would, without paying a model load per process.
The `openvino` engine runs the same `model.onnx` through OpenVINO's CPU plugin, configured as the Triton
model configures it (`modelzoo.engines`); any exported file works, so `resnet50_int8` on `openvino` is
the int8_openvino deployment.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from deploylab.services.measure.names import served_model
from deploylab.services.measure.percentiles import percentile
from deploylab.services.modelzoo.engines import openvino_runner
from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.parity import random_input
from deploylab.services.modelzoo.repository import INPUT_NAME, OUTPUT_NAME, InputDtype, onnx_path

Engine = Literal["onnxruntime", "openvino", "torch"]
#: One inference call: an NCHW float32 batch in, logits out.
InferFn = Callable[[np.ndarray], object]

#: Untimed calls per session before the window opens (allocator, thread pools, caches).
WARMUP_CALLS = 2


@dataclass(frozen=True)
class InProcessPoint:
    """One measured layout: `sessions` engines of `threads` intra-op threads each, closed loop."""

    model: str
    engine: str
    batch_size: int
    threads: int  # intra-op threads per session
    sessions: int  # sessions running in parallel
    throughput_img_s: float
    p50_ms: float  # per-call latency (one batch), all sessions pooled
    p90_ms: float
    p99_ms: float
    iterations: int  # calls completed in the window, all sessions together

    @property
    def layout(self) -> str:
        """`2x1` = two sessions of one thread each."""
        return f"{self.sessions}x{self.threads}"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "layout": self.layout}


@dataclass(frozen=True)
class Layout:
    sessions: int
    threads: int


def layouts_for(threads: int) -> list[Layout]:
    """The layouts that spend exactly `threads` cores: one wide session, and `threads` narrow ones."""
    wide = Layout(sessions=1, threads=threads)
    narrow = Layout(sessions=threads, threads=1)
    return [wide] if threads <= 1 else [wide, narrow]


def measure_inprocess(
    model: str,
    repository: Path,
    engine: Engine = "onnxruntime",
    batch_sizes: Sequence[int] = (1, 8),
    threads: int = 2,
    duration_s: float = 5.0,
    *,
    layouts: Sequence[Layout] | None = None,
) -> list[InProcessPoint]:
    """Closed-loop throughput and per-call latency for every batch size × layout.

    `model` is a Triton model name (`resnet50`, `repvgg_a0_deploy`) or a catalog name (its default
    variant). The ONNX engines (onnxruntime, openvino) read `<repository>/<model>/1/model.onnx`; the torch
    engine builds the same architecture and seed the exporter used, so all run identical weights.
    """
    if threads < 1:
        raise ValueError("threads must be >= 1")
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    name = resolve_model_name(model)
    chosen = list(layouts) if layouts is not None else layouts_for(threads)
    points: list[InProcessPoint] = []
    dtype = input_dtype_of(name, repository, engine)
    for layout in chosen:
        with open_sessions(name, repository, engine, layout) as sessions:
            for batch_size in batch_sizes:
                batch = random_input(batch_size, input_size_of(name), batch_size, dtype)
                stats = run_closed_loop(sessions, batch, duration_s)
                points.append(stats.to_point(name, engine, batch_size, layout))
    return points


def best_throughput(points: Sequence[InProcessPoint]) -> InProcessPoint:
    """The point with the highest img/s: the engine's limit on this thread budget."""
    if not points:
        raise ValueError("no points")
    return max(points, key=lambda p: p.throughput_img_s)


def batch1_latency(points: Sequence[InProcessPoint]) -> InProcessPoint | None:
    """The lowest-p50 batch-1 point of a single session (what one client waiting alone sees)."""
    single = [p for p in points if p.batch_size == 1 and p.sessions == 1]
    return min(single, key=lambda p: p.p50_ms) if single else None


# -- model resolution -------------------------------------------------------------------------


def resolve_model_name(model: str) -> str:
    """The Triton model name for a Triton or catalog name (`repvgg_a0` → `repvgg_a0_deploy`)."""
    return served_model(model).triton_model


def input_size_of(triton_name: str) -> int:
    return served_model(triton_name).spec.input_size


def input_dtype_of(triton_name: str, repository: Path, engine: Engine) -> InputDtype:
    """What `engine` is fed for the model: the exported file's input dtype (uint8 pixels for an export
    that normalises in its graph), float32 for torch, which builds the bare architecture."""
    manifest = read_manifest(repository / triton_name) if engine != "torch" else None
    return "uint8" if manifest is not None and manifest.serving.get("input_dtype") == "uint8" else "fp32"


# -- engines ----------------------------------------------------------------------------------


@contextlib.contextmanager
def open_sessions(model: str, repository: Path, engine: Engine, layout: Layout) -> Iterator[list[InferFn]]:
    """`layout.sessions` independent inference functions of `layout.threads` threads each."""
    if engine == "onnxruntime":
        yield [
            onnxruntime_session(onnx_path(repository, model), layout.threads) for _ in range(layout.sessions)
        ]
    elif engine == "openvino":
        yield [openvino_session(onnx_path(repository, model), layout.threads) for _ in range(layout.sessions)]
    elif engine == "torch":
        with torch_sessions(model, layout) as fns:
            yield fns
    else:
        raise ValueError(f"unknown engine {engine!r}; use 'onnxruntime', 'openvino' or 'torch'")


def onnxruntime_session(
    path: Path, threads: int, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> InferFn:
    """An ORT session configured exactly like the Triton Python-backend model (sequential, full opt)."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `deploylab export` for this model first")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=list(providers))
    output_names = [OUTPUT_NAME]

    def infer(batch: np.ndarray) -> object:
        return session.run(output_names, {INPUT_NAME: batch})[0]

    return infer


def openvino_session(path: Path, threads: int) -> InferFn:
    """OpenVINO's CPU plugin compiled exactly like the Triton Python-backend model's openvino engine."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `deploylab export` for this model first")
    return openvino_runner(path, threads)


@contextlib.contextmanager
def torch_sessions(model: str, layout: Layout) -> Iterator[list[InferFn]]:
    """Torch eval-mode models; intra-op threads are process-wide in torch, so set and restore them."""
    import torch
    from deploylab.services.modelzoo.build import build_model

    served = served_model(model)
    module = build_model(served.spec, served.variant)
    previous = torch.get_num_threads()
    torch.set_num_threads(layout.threads)

    def infer(batch: np.ndarray) -> object:
        with torch.inference_mode():
            return module(torch.from_numpy(batch))

    try:
        # One module shared by all sessions: inference is read-only, so this is safe and honest
        # (one copy of the weights, like one process serving several requests).
        yield [infer] * layout.sessions
    finally:
        torch.set_num_threads(previous)


# -- the closed loop --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopStats:
    images: int
    wall_s: float
    latencies_s: np.ndarray

    @property
    def throughput(self) -> float:
        return self.images / self.wall_s if self.wall_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of the call latencies (the measurement core's nearest rank); NaN for none."""
        return percentile(self.latencies_s.tolist(), q) * 1e3

    def to_point(self, model: str, engine: str, batch_size: int, layout: Layout) -> InProcessPoint:
        return InProcessPoint(
            model=model,
            engine=engine,
            batch_size=batch_size,
            threads=layout.threads,
            sessions=layout.sessions,
            throughput_img_s=round(self.throughput, 2),
            p50_ms=round(self.percentile_ms(50), 3),
            p90_ms=round(self.percentile_ms(90), 3),
            p99_ms=round(self.percentile_ms(99), 3),
            iterations=int(self.latencies_s.size),
        )


def run_closed_loop(sessions: Sequence[InferFn], batch: np.ndarray, duration_s: float) -> LoopStats:
    """Each session calls back-to-back on its own thread for `duration_s`; all start together.

    Throughput counts completed calls over the time from the common start to the last finish, so a
    call that straddles the deadline is neither dropped nor given free time.
    """
    for infer in sessions:
        for _ in range(WARMUP_CALLS):
            infer(batch)
    start_barrier = threading.Barrier(len(sessions) + 1)
    per_session: list[list[float]] = [[] for _ in sessions]
    finished_at: list[float] = [0.0] * len(sessions)
    deadline_box: list[float] = [0.0]

    def loop(index: int, infer: InferFn) -> None:
        latencies = per_session[index]
        start_barrier.wait()
        deadline = deadline_box[0]
        now = time.perf_counter()
        while now < deadline:
            infer(batch)
            done = time.perf_counter()
            latencies.append(done - now)
            now = done
        finished_at[index] = now

    workers = [threading.Thread(target=loop, args=(i, fn), daemon=True) for i, fn in enumerate(sessions)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    deadline_box[0] = started + duration_s
    start_barrier.wait()
    for worker in workers:
        worker.join()
    wall = max(finished_at) - started
    calls = sum(len(lat) for lat in per_session)
    latencies = np.fromiter((x for lat in per_session for x in lat), dtype=np.float64, count=calls)
    return LoopStats(images=calls * int(batch.shape[0]), wall_s=wall, latencies_s=latencies)
