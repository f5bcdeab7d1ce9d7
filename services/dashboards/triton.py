"""Triton: what the server does with the requests — queue vs compute, batching, instances, CPU/GPU."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from . import queries as q
from .panels import Section, label_variable, new_dashboard, timeseries_panel, with_sections

UID = "deploylab-triton"
SEL = q.TRITON_MODEL


def _rule(name: str, legend: str = "{{model}}") -> tuple[str, str]:
    return f"{name}{{{SEL}}}", legend


def build() -> Dashboard:
    board = new_dashboard(
        UID, "deploylab / Triton", "Triton Inference Server: throughput, queue vs compute, executed batch "
        "sizes, instance utilisation, host CPU and GPU.",
    ).with_variable(label_variable("triton_model", "Triton model", "nv_inference_request_success", "model"))
    pending = f"sum by (model) (nv_inference_pending_request_count{{{SEL}}})"
    sections: list[Section] = [
        ("Throughput", [
            timeseries_panel("Requests/s", "Successful and failed inference requests per second, per Triton "
                             "model.", "reqps", _rule(q.TRITON_SUCCESS_RATE, "{{model}} ok"),
                             _rule(q.TRITON_FAILURE_RATE, "{{model}} failed"), span=8),
            timeseries_panel("Inferences/s", "Batch rows (images) inferred per second.", "short",
                             _rule(q.TRITON_INFERENCE_RATE), span=8),
            timeseries_panel("Pending requests", "Requests waiting in Triton's scheduler queue right now.",
                             "short", (pending, "{{model}}"), span=8),
        ]),
        ("Queue vs compute (per request)", [
            timeseries_panel("Time per request: queue vs compute",
                             "Average seconds per successful request in each stage (rate of Triton's "
                             "cumulative counters over successful requests). Queue above compute means too "
                             "few instances. Models exported with --pipeline answer after Triton's compute "
                             "ends: their stages leave out the engine run (read the gateway's Triton round "
                             "trip instead).", "s",
                             _rule(q.TRITON_QUEUE_TIME, "{{model}} queue"),
                             _rule(q.TRITON_COMPUTE_INPUT_TIME, "{{model}} compute input"),
                             _rule(q.TRITON_COMPUTE_INFER_TIME, "{{model}} compute infer"),
                             _rule(q.TRITON_COMPUTE_OUTPUT_TIME, "{{model}} compute output")),
            timeseries_panel("Queue / compute", "Queue time over compute time; the "
                             "DeploylabTritonQueueDominates alert fires above 1 with steady traffic.", "none",
                             _rule(q.TRITON_QUEUE_OVER_COMPUTE), threshold=1.0),
            timeseries_panel("Triton request time", "End-to-end time inside Triton per request (queue + "
                             "compute + overhead).", "s", _rule(q.TRITON_REQUEST_TIME), span=24),
        ]),
        ("Batching and instances", [
            timeseries_panel("Executed batch size", "Images per model execution: what the dynamic batcher "
                             "actually ran.", "short", _rule(q.TRITON_BATCH_SIZE), span=8),
            timeseries_panel("Executions/s", "Model executions per second.", "short",
                             _rule(q.TRITON_EXEC_RATE), span=8),
            timeseries_panel("Busy instances", "Average number of model instances computing (compute time "
                             "per execution x executions/s). Near the instance count in config.pbtxt: the "
                             "model is saturated.", "short", _rule(q.TRITON_BUSY_INSTANCES), span=8),
        ]),
        ("Host", [
            timeseries_panel("CPU utilisation", "Host CPU utilisation as Triton measures it.", "percentunit",
                             ("nv_cpu_utilization", "{{instance}}")),
            timeseries_panel("CPU memory used", "Host memory in use as Triton measures it.", "bytes",
                             ("nv_cpu_memory_used_bytes", "{{instance}}")),
        ]),
        ("GPU (empty without a GPU)", [
            timeseries_panel("GPU utilisation", "Per GPU, from Triton's GPU metrics.", "percentunit",
                             ("nv_gpu_utilization", "{{gpu_uuid}}"), span=8),
            timeseries_panel("GPU memory used", "Per GPU.", "bytes",
                             ("nv_gpu_memory_used_bytes", "{{gpu_uuid}}"), span=8),
            timeseries_panel("GPU power", "Per GPU.", "watt", ("nv_gpu_power_usage", "{{gpu_uuid}}"), span=8),
        ]),
    ]
    return with_sections(board, sections)
