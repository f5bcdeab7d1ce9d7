"""Interleaved in-process measurements of the claims' model pairs.

This machine's speed drifts within minutes (other work shares the cores), so two models
measured minutes apart can differ by more than the effect a claim is about. Each pair is therefore
measured in alternating rounds (A then B, then B then A, …) and judged by the median of the per-round
ratios: drift that hits one round hits both sides of it.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from deploylab.services.measure.names import served_model
from deploylab.services.measure.results import INTERLEAVED_PAIRS, PairedBaseline
from deploylab.services.modelzoo.parity import random_input
from deploylab.services.modelzoo.repository import InputDtype
from deploylab.services.perf.inprocess import (
    Engine,
    InferFn,
    Layout,
    input_dtype_of,
    open_sessions,
    run_closed_loop,
)

ENGINE: Engine = "onnxruntime"
LATENCY_BATCH = 1
#: Batch 1 for throughput too: heavy models at batch 8 would spend each round in warm-up calls.
THROUGHPUT_BATCH = 1

Progress = Callable[[str], None]


def pairs_among(triton_models: Sequence[str]) -> list[tuple[str, str]]:
    """The interleaved pairs (the claims' pairs) whose two models are both in this run."""
    present = set(triton_models)
    return [(slow, fast) for slow, fast in INTERLEAVED_PAIRS if slow in present and fast in present]


class ModelSessions:
    """One model's sessions for both measurements: one session of every thread, `threads` of one."""

    def __init__(
        self, wide: list[InferFn], narrow: list[InferFn], input_size: int, input_dtype: InputDtype
    ) -> None:
        self.wide = wide
        self.narrow = narrow
        self.latency_batch = random_input(LATENCY_BATCH, input_size, 1, input_dtype)
        self.throughput_batch = random_input(THROUGHPUT_BATCH, input_size, 8, input_dtype)

    def round(self, duration_s: float) -> tuple[float, float]:
        """(batch-1 p50 ms on the wide session, batch-1 img/s on the narrow ones), back to back."""
        latency = run_closed_loop(self.wide, self.latency_batch, duration_s).percentile_ms(50)
        throughput = run_closed_loop(self.narrow, self.throughput_batch, duration_s).throughput
        return latency, throughput


@contextlib.contextmanager
def model_sessions(model: str, repository: Path, threads: int) -> Iterator[ModelSessions]:
    spec = served_model(model).spec
    with (
        open_sessions(model, repository, ENGINE, Layout(sessions=1, threads=threads)) as wide,
        open_sessions(model, repository, ENGINE, Layout(sessions=threads, threads=1)) as narrow,
    ):
        yield ModelSessions(wide, narrow, spec.input_size, input_dtype_of(model, repository, ENGINE))


def measure_pairs(
    pairs: Sequence[tuple[str, str]],
    repository: Path,
    rounds: int,
    duration_s: float,
    threads: int,
    progress: Progress | None = None,
) -> list[PairedBaseline]:
    """Alternate each pair's two models `rounds` times (who goes first swaps every round).

    Every model's sessions are opened once and shared by the pairs it belongs to.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    models = list(dict.fromkeys(m for pair in pairs for m in pair))
    with contextlib.ExitStack() as stack:
        sessions = {m: stack.enter_context(model_sessions(m, repository, threads)) for m in models}
        return [measure_pair(slow, fast, sessions, rounds, duration_s, progress) for slow, fast in pairs]


def measure_pair(
    slow: str,
    fast: str,
    sessions: dict[str, ModelSessions],
    rounds: int,
    duration_s: float,
    progress: Progress | None = None,
) -> PairedBaseline:
    samples: dict[str, list[tuple[float, float]]] = {slow: [], fast: []}
    for index in range(rounds):
        order = (slow, fast) if index % 2 == 0 else (fast, slow)
        for model in order:
            if progress is not None:
                progress(f"interleaved baseline {slow} vs {fast}: round {index + 1}/{rounds}, {model}")
            samples[model].append(sessions[model].round(duration_s))
    slow_p50, slow_img_s = (list(v) for v in zip(*samples[slow], strict=True))
    fast_p50, fast_img_s = (list(v) for v in zip(*samples[fast], strict=True))
    return PairedBaseline(
        slow=slow,
        fast=fast,
        engine=ENGINE,
        rounds=rounds,
        duration_s=duration_s,
        latency_ratio=round(statistics.median(s / f for s, f in zip(slow_p50, fast_p50, strict=True)), 4),
        throughput_ratio=round(
            statistics.median(f / s for s, f in zip(slow_img_s, fast_img_s, strict=True)), 4
        ),
        slow_p50_ms=[round(v, 3) for v in slow_p50],
        fast_p50_ms=[round(v, 3) for v in fast_p50],
        slow_img_s=[round(v, 2) for v in slow_img_s],
        fast_img_s=[round(v, 2) for v in fast_img_s],
    )


def estimate_seconds(pairs: Sequence[tuple[str, str]], rounds: int, duration_s: float) -> float:
    """Two measurements per model per round (each with warm-up calls), plus opening the sessions once."""
    models = {m for pair in pairs for m in pair}
    return len(pairs) * rounds * 2 * (2 * duration_s + 1.0) + 2.0 * len(models)
