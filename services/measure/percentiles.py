"""The one percentile definition every front-end reports: nearest rank.

The q-th percentile of n samples is the ⌈q/100 · n⌉-th smallest (the smallest for q = 0). Chosen over
linear interpolation because the answer is always a latency some request really had — a p99 over 50
requests is the slowest of them, not a value between two requests that nobody saw — and because it is
the rule Locust's histogram and MLPerf LoadGen apply, so a p99 here reads like theirs. Interpolation
would also make small windows look smoother than they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The percentiles a latency summary reports.
REPORTED = (50, 90, 95, 99)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, nearest rank; NaN when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must lie in 0..100, got {q}")
    ordered = sorted(values)
    return _ranked(ordered, q)


def _ranked(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Nearest-rank percentiles, max and mean of one set of latency samples, in milliseconds.

    Every field is NaN when there were no samples (`count == 0`).
    """

    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    mean: float

    def rounded(self, digits: int) -> LatencySummary:
        """The same summary rounded to `digits` decimals (NaN stays NaN)."""
        return LatencySummary(
            self.count,
            *(round(getattr(self, f), digits) for f in ("p50", "p90", "p95", "p99", "max", "mean")),
        )


def summarize_ms(samples_ms: Iterable[float]) -> LatencySummary:
    """Percentiles (nearest rank), max and mean of latency samples given in milliseconds."""
    ordered = sorted(samples_ms)
    if not ordered:
        return LatencySummary(0, *(math.nan,) * 6)
    p50, p90, p95, p99 = (_ranked(ordered, q) for q in REPORTED)
    return LatencySummary(
        len(ordered), p50, p90, p95, p99, float(ordered[-1]), math.fsum(ordered) / len(ordered)
    )


def summarize_s(samples_s: Iterable[float]) -> LatencySummary:
    """`summarize_ms` for samples given in seconds (the summary is still in milliseconds)."""
    return summarize_ms(x * 1e3 for x in samples_s)
