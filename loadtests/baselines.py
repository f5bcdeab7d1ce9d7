"""In-process baselines for the sweep: each engine alone on the thread budget the server gets.

Measured right before the model's served points (this machine's speed drifts within minutes, so the
reference is taken as close as possible to what it is compared with).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from deploylab.services.measure.results import InProcessResult
from deploylab.services.perf.inprocess import measure_inprocess

Engine = Literal["onnxruntime", "torch"]


def measure_baselines(
    triton_model: str,
    repository: Path,
    engines: Sequence[Engine],
    batch_sizes: Sequence[int],
    threads: int,
    duration_s: float,
) -> list[InProcessResult]:
    """Every engine × layout × batch size for one model, as result records."""
    results = []
    for engine in engines:
        points = measure_inprocess(
            model=triton_model,
            repository=repository,
            engine=engine,
            batch_sizes=tuple(batch_sizes),
            threads=threads,
            duration_s=duration_s,
        )
        results.extend(InProcessResult.model_validate(point.as_dict()) for point in points)
    return results
