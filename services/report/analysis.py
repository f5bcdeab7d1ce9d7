"""Questions asked of a run's results: the best point, the 1-user latency, the knee, the engine limit.

Tables, plots and claims all ask the same questions; answering them in one place keeps the numbers
in every section of the report identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .results import InProcessResult, PointResult, RampResult, RunResults

#: A ramp's knee: the first step reaching this share of the ramp's best throughput.
KNEE_SHARE = 0.9


@dataclass(frozen=True)
class Measured:
    """A number with where it came from, so every reported value can say which loop produced it."""

    value: float
    source: str


def closed_points(
    results: RunResults, triton_model: str, target: str | None = None, api: str | None = None
) -> list[PointResult]:
    """Closed-loop points of a model (optionally one path), by users."""
    found = [
        p
        for p in results.points
        if p.triton_model == triton_model
        and p.loop == "closed"
        and (target is None or p.target == target)
        and (api is None or p.api == api)
    ]
    return sorted(found, key=lambda p: (p.target, p.api, p.users))


def path_label(point: PointResult) -> str:
    return f"{point.target} {point.api}"


def point_source(point: PointResult) -> str:
    load = f"{point.arrival_rate:g} req/s offered" if point.arrival_rate else f"{point.users} user(s)"
    return f"{point.loop_label}, {load}, {path_label(point)}"


def best_served(
    results: RunResults, triton_model: str, target: str | None = None, api: str | None = None
) -> PointResult | None:
    """The closed-loop point with the highest throughput (zero-failure points preferred)."""
    points = closed_points(results, triton_model, target, api)
    clean = [p for p in points if p.failures == 0] or points
    return max(clean, key=lambda p: p.throughput_rps, default=None)


def single_user(results: RunResults, triton_model: str, target: str, api: str) -> PointResult | None:
    """The 1-user closed-loop point of one path: the latency a lone client sees."""
    return next((p for p in closed_points(results, triton_model, target, api) if p.users == 1), None)


#: Paths in order of preference for "the served number": the product path first.
SERVED_PATHS: tuple[tuple[str, str], ...] = (("gateway", "classify"), ("gateway", "v2"), ("triton", "v2"))


def served_latency(results: RunResults, triton_model: str) -> Measured | None:
    """p50 at 1 user on the first path that has one (gateway classify preferred)."""
    for target, api in SERVED_PATHS:
        point = single_user(results, triton_model, target, api)
        if point is not None and point.latency_ms.p50:
            return Measured(point.latency_ms.p50, f"p50, {point_source(point)}")
    return None


def served_throughput(results: RunResults, triton_model: str) -> Measured | None:
    """Peak closed-loop throughput on the first path that has points (gateway classify preferred)."""
    for target, api in SERVED_PATHS:
        point = best_served(results, triton_model, target, api)
        if point is not None and point.throughput_rps > 0:
            return Measured(point.throughput_rps, f"peak req/s, {point_source(point)}")
    return None


def inprocess_points(
    results: RunResults, triton_model: str, engine: str | None = None
) -> list[InProcessResult]:
    return [
        r for r in results.inprocess if r.model == triton_model and (engine is None or r.engine == engine)
    ]


def inprocess_best(
    results: RunResults, triton_model: str, engine: str | None = None
) -> InProcessResult | None:
    """The engine limit: highest img/s over layouts and batch sizes on the thread budget."""
    return max(
        inprocess_points(results, triton_model, engine), key=lambda r: r.throughput_img_s, default=None
    )


def inprocess_batch1(
    results: RunResults, triton_model: str, engine: str = "onnxruntime"
) -> InProcessResult | None:
    """Batch-1 latency of one session using every thread (what one waiting client gets, no server)."""
    single = [
        r for r in inprocess_points(results, triton_model, engine) if r.batch_size == 1 and r.sessions == 1
    ]
    return min(single, key=lambda r: r.p50_ms, default=None)


def inprocess_latency(results: RunResults, triton_model: str) -> Measured | None:
    point = inprocess_batch1(results, triton_model)
    if point is None:
        return None
    return Measured(point.p50_ms, f"p50, in-process {point.engine}, batch 1, {point.layout} threads")


def inprocess_throughput(results: RunResults, triton_model: str) -> Measured | None:
    point = inprocess_best(results, triton_model, "onnxruntime")
    if point is None:
        return None
    return Measured(
        point.throughput_img_s, f"img/s, in-process {point.engine}, batch {point.batch_size}, {point.layout}"
    )


def knee(steps: Sequence[PointResult], share: float = KNEE_SHARE) -> PointResult | None:
    """The first ramp step whose throughput reaches `share` of the ramp's best.

    Beyond the knee, more concurrent users buy latency, not throughput.
    """
    if not steps:
        return None
    best = max(step.throughput_rps for step in steps)
    if best <= 0:
        return None
    return next(step for step in steps if step.throughput_rps >= share * best)


def ramps_of(results: RunResults, triton_model: str) -> list[RampResult]:
    return [r for r in results.ramps if r.triton_model == triton_model]


def served_models(results: RunResults) -> list[str]:
    """Triton models in the order the run lists them (facts first, then anything only measured)."""
    names = [m.triton_model for m in results.models]
    for point in results.points:
        if point.triton_model not in names:
            names.append(point.triton_model)
    return names


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
