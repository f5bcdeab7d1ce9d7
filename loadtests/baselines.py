"""In-process baselines for the sweep: each engine alone on the thread budget the server gets.

Measured right before the model's served points (this machine's speed drifts within minutes, so the
reference is taken as close as possible to what it is compared with).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from deploylab.services.measure.results import InProcessResult, ModelFacts
from deploylab.services.perf.inprocess import Engine, measure_inprocess

#: What a profile asks for: the exported file on its serving engine, and the torch model it came from.
ProfileEngine = Literal["onnxruntime", "torch"]


def engines_for(facts: ModelFacts | None, wanted: Sequence[ProfileEngine]) -> list[Engine]:
    """The profile's engines as they apply to one deployment.

    `onnxruntime` stands for the exported file on the engine that serves it (OpenVINO for an openvino
    variant), so served ÷ in-process compares one engine with itself; `torch` runs the fp32 weights, so
    only fp32 deployments get it (for int8 it would be another deployment).
    """
    serving: Engine = "openvino" if facts is not None and facts.engine == "openvino" else "onnxruntime"
    fp32 = facts is None or facts.precision == "fp32"
    chosen: list[Engine] = []
    for engine in wanted:
        if engine == "onnxruntime":
            chosen.append(serving)
        elif fp32 and serving == "onnxruntime":
            chosen.append("torch")
    return chosen


def measure_baselines(
    triton_model: str,
    repository: Path,
    engines: Sequence[Engine],
    batch_sizes: Sequence[int],
    threads: int,
    duration_s: float,
) -> list[InProcessResult]:
    """Every engine × layout × batch size for one model, as result records."""
    results: list[InProcessResult] = []
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
