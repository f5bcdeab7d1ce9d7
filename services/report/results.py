"""The run results the report reads, as their producer defines them (`deploylab.services.measure.results`).

The schema belongs to the load test that writes `results.json`; the report imports it from there, so
a producer never depends on its consumer. This module keeps the report's own modules' imports short.
"""

from __future__ import annotations

from deploylab.services.measure.results import (
    INTERLEAVED_PAIRS,
    LOOP_LABELS,
    MISMATCH_TOLERANCE,
    RESULTS_FILENAME,
    SCHEMA_VERSION,
    ApiKind,
    BatchBucket,
    CounterCheck,
    GatewayView,
    InProcessResult,
    LatencyMs,
    Loop,
    MachineInfo,
    ModelFacts,
    Objective,
    PairedBaseline,
    PointResult,
    ProcessCost,
    RampResult,
    RunResults,
    RunStatus,
    ServingCost,
    TargetKind,
    TritonView,
    load_results,
    save_results,
)

__all__ = [
    "INTERLEAVED_PAIRS",
    "LOOP_LABELS",
    "MISMATCH_TOLERANCE",
    "RESULTS_FILENAME",
    "SCHEMA_VERSION",
    "ApiKind",
    "BatchBucket",
    "CounterCheck",
    "GatewayView",
    "InProcessResult",
    "LatencyMs",
    "Loop",
    "MachineInfo",
    "ModelFacts",
    "Objective",
    "PairedBaseline",
    "PointResult",
    "ProcessCost",
    "RampResult",
    "RunResults",
    "RunStatus",
    "ServingCost",
    "TargetKind",
    "TritonView",
    "load_results",
    "save_results",
]
