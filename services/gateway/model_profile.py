"""What admission (and the request paths) need to know about a served model, from Triton's config and
statistics: its knee, its full-batch time, and the datatype its input takes.

The knee of a dynamically batching model follows from its config (batch slots x max_batch_size); its
latency objective, unless configured, from the time one instance takes to compute a full batch.
Both come from Triton, so they describe the deployment actually served, whatever exported it.
"""

from __future__ import annotations

from typing import Any

#: Triton's per-batch-size stages that make up one execution of a batch.
_COMPUTE_STAGES = ("compute_input", "compute_infer", "compute_output")


def instance_count(config: dict[str, Any]) -> int:
    """Instances Triton runs for a model (every instance group; a group without a count is one)."""
    groups = config.get("instance_group") or [{}]
    return sum(max(1, int(group.get("count", 1))) for group in groups)


def batch_slots(config: dict[str, Any]) -> int:
    """Batches a model holds at once: one per instance, two per pipelined one (a batch running while
    the next is staged; deploylab's `pipeline` parameter)."""
    pipelined = config.get("parameters", {}).get("pipeline", {}).get("string_value") == "1"
    return instance_count(config) * (2 if pipelined else 1)


def input_datatype(config: dict[str, Any]) -> str:
    """The v2 datatype of the model's (first) input as Triton's config declares it: FP32, UINT8, …"""
    inputs = config.get("input") or [{}]
    return str(inputs[0].get("data_type", "TYPE_FP32")).removeprefix("TYPE_")


def full_batch_seconds(statistics: dict[str, Any], max_batch_size: int) -> float | None:
    """Mean compute time of one full batch, from Triton's per-batch-size statistics.

    When no full batch has run yet, the largest batch size seen is scaled up per image: that
    overstates a full batch (batching is cheaper per image), which errs towards a looser objective.
    """
    entries = statistics.get("model_stats") or []
    per_size: dict[int, float] = {}
    for entry in entries:
        for batch in entry.get("batch_stats") or []:
            size = int(batch.get("batch_size", 0))
            count = int((batch.get("compute_infer") or {}).get("count", 0))
            if size <= 0 or count <= 0:
                continue
            nanoseconds = sum(int((batch.get(stage) or {}).get("ns", 0)) for stage in _COMPUTE_STAGES)
            per_size[size] = nanoseconds / count / 1e9
    if not per_size:
        return None
    target = max(1, max_batch_size)
    if target in per_size:
        return per_size[target]
    largest = max(per_size)
    return per_size[largest] * target / largest
