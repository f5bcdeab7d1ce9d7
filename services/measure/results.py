"""The results of one load-test run: what was measured, where, how, and how it cross-checked.

The producer (the sweep in `loadtests/`) owns this schema and the report reads it, so it lives in the
measurement core, below both.

One `RunResults` per run directory (`results/<timestamp>/results.json`), written after every point so
an interrupted run keeps what it measured. Every number carries its provenance: `loop` says which
load model produced it (closed-loop constant users, step ramp, open-loop constant arrival rate),
`target` whether traffic went through the gateway or straight to Triton.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
RESULTS_FILENAME = "results.json"

#: A counter that disagrees with Locust's count by more than this fraction is flagged.
MISMATCH_TOLERANCE = 0.05

Loop = Literal["closed", "ramp", "open"]
TargetKind = Literal["gateway", "triton"]
ApiKind = Literal["classify", "v2"]
RunStatus = Literal["running", "complete", "interrupted", "failed"]

#: The model pairs the sweep measures in-process and interleaved, (costlier, cheaper) by Triton name:
#: the pairs the report's claims compare (a unit test holds every claim's pair to this list).
INTERLEAVED_PAIRS: tuple[tuple[str, str], ...] = (
    ("vgg16", "resnet50"),
    ("resnet50", "mobilenet_v3_large"),
    ("repvgg_a0_train", "repvgg_a0_deploy"),
    ("convnext_tiny", "resnet50"),
)

LOOP_LABELS: dict[str, str] = {
    "closed": "closed loop, constant users",
    "ramp": "step ramp (closed loop, users stepped up)",
    "open": "open loop, constant arrival rate",
}


class LatencyMs(BaseModel):
    """Client-side response time percentiles in milliseconds: nearest rank over every request's time."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


class CounterCheck(BaseModel):
    """Locust's count against a server-side counter over the same quiescent window."""

    source: Literal["gateway", "triton"]
    counter: str  # e.g. deploylab_gateway_requests_total{route="classify",model=...}
    locust: int  # what Locust counted (all requests for the gateway, successes for Triton)
    server: int
    mismatch: float  # |server - locust| / max(locust, 1)
    flagged: bool

    @classmethod
    def compare(
        cls, source: Literal["gateway", "triton"], counter: str, locust: int, server: int
    ) -> CounterCheck:
        mismatch = abs(server - locust) / max(locust, 1)
        return cls(
            source=source,
            counter=counter,
            locust=locust,
            server=server,
            mismatch=round(mismatch, 4),
            flagged=mismatch > MISMATCH_TOLERANCE,
        )


class BatchBucket(BaseModel):
    """Triton executions of one batch size over the window (statistics API)."""

    batch_size: int
    executions: int
    compute_infer_ms_mean: float | None = None


class TritonView(BaseModel):
    """Triton's own account of the window: counts, where a request's time went, batch sizes executed."""

    model: str
    requests: int  # nv_inference_request_success delta
    failures: int
    inferences: int  # nv_inference_count delta (images)
    executions: int  # nv_inference_exec_count delta (batches run)
    avg_batch_size: float | None = None  # inferences / executions
    request_ms: float | None = None  # per request, from the cumulative *_duration_us counters
    queue_ms: float | None = None
    compute_input_ms: float | None = None
    compute_infer_ms: float | None = None  # a batched request is charged its whole batch's compute
    compute_output_ms: float | None = None
    throughput_rps: float | None = None
    batches: list[BatchBucket] = Field(default_factory=list)


class GatewayView(BaseModel):
    """The gateway's metrics for the window (its histograms' _sum/_count deltas)."""

    requests: int
    errors: int  # non-2xx statuses
    request_ms: float | None = None
    preprocess_ms: float | None = None
    inference_ms: float | None = None  # Triton round trip seen from the gateway
    throughput_rps: float | None = None


class ProcessCost(BaseModel):
    """One serving process tree (Triton with its backend stubs, or the gateway) over a window."""

    cpu_s: float  # user + system CPU seconds over the window
    cores: float  # cpu_s / window: cores kept busy
    # PSS (RSS where unreadable) at the window's end; Triton's excludes other models' backend stubs
    memory_mib: float
    processes: int
    gpu_memory_mib: float | None = None  # GPU memory its processes hold at the window's end (NVML)


class ServingCost(BaseModel):
    """What the serving processes spent over a window, in all and per process tree (`triton`, `gateway`).

    Read from the process trees the sweep started, so a sweep of servers it did not start has none.
    """

    cpu_s: float
    cores: float
    cpu_s_per_1k: float | None  # per 1,000 successful requests
    memory_mib: float
    by_process: dict[str, ProcessCost] = Field(default_factory=dict)
    #: GPU memory at the window's end (None: no NVIDIA driver here): what the serving processes hold,
    #: or, where NVML lists none of them (a container's PID namespace), all that is used on the GPUs
    gpu_memory_mib: float | None = None
    gpu_memory_scope: Literal["processes", "devices"] | None = None
    gpu_total_mib: float | None = None  # what the GPUs have, for the share one replica takes


class PointResult(BaseModel):
    """One measured window (a closed/open point, or one step of a ramp)."""

    id: str
    model: str  # catalog name
    variant: str
    triton_model: str
    target: TargetKind
    api: ApiKind
    loop: Loop
    users: int  # concurrent users (open loop: arrival generators)
    arrival_rate: float | None = None  # open loop: offered requests/s
    step: int | None = None  # ramp: step index
    locust_workers: int = 0  # 0: one local Locust process
    started_at: str | None = None  # UTC, when the measured window opened (for dashboards' annotations)
    warmup_s: float
    window_s: float
    requests: int
    failures: int
    dropped_arrivals: int = 0
    throughput_rps: float  # successful requests per second over the window
    latency_ms: LatencyMs
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    gateway: GatewayView | None = None
    triton: TritonView | None = None
    cost: ServingCost | None = None
    checks: list[CounterCheck] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)

    @property
    def loop_label(self) -> str:
        return LOOP_LABELS[self.loop]

    @property
    def path(self) -> str:
        """`gateway classify`, `gateway v2`, `triton v2`."""
        return f"{self.target} {self.api}"


class RampResult(BaseModel):
    """A step ramp: steps measured back to back without stopping; cross-checked over the whole ramp."""

    id: str
    model: str
    variant: str
    triton_model: str
    target: TargetKind
    api: ApiKind
    step_s: float
    steps: list[PointResult]
    requests: int
    checks: list[CounterCheck] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class InProcessResult(BaseModel):
    """An engine alone on the same thread budget (deploylab.services.perf.inprocess.InProcessPoint)."""

    model: str  # Triton model name
    engine: str
    batch_size: int
    threads: int
    sessions: int
    layout: str
    throughput_img_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    iterations: int


class PairedBaseline(BaseModel):
    """Two models measured in-process in alternation (A, B, B, A, …) so machine drift hits both alike.

    `slow` is the side a claim calls costlier. Ratios are medians over rounds: latency slow/fast at
    batch 1 on one session of every thread, throughput fast/slow at batch 1 on single-thread sessions
    side by side.
    """

    slow: str  # Triton model names
    fast: str
    engine: str
    rounds: int
    duration_s: float
    latency_ratio: float
    throughput_ratio: float
    slow_p50_ms: list[float]
    fast_p50_ms: list[float]
    slow_img_s: list[float]
    fast_img_s: list[float]


class ModelFacts(BaseModel):
    """What the export recorded about a served model, beside the published numbers."""

    triton_model: str
    model: str
    variant: str
    family: str
    params: int
    gmacs: float
    onnx_mb: float
    parity_max_abs_error: float
    reparam_max_abs_error: float | None = None
    reference_params: int | None = None
    reference_gmacs: float | None = None
    reference: str = ""
    serving: dict[str, object] = Field(default_factory=dict)
    precision: str = "fp32"
    engine: str = "onnxruntime"
    #: Lower precisions: top-1 agreement with the fp32 model on held-out photos (None: not measured).
    fidelity_top1_agreement: float | None = None


class MachineInfo(BaseModel):
    cpu_model: str
    cpu_features: list[str] = Field(default_factory=list)  # the int8/fp32-relevant ISA extensions
    logical_cores: int
    physical_cores: int | None = None
    usable_cores: int | None = None  # this process's CPU affinity
    memory_gb: float | None = None
    gpus: list[str] = Field(default_factory=list)
    os: str = ""
    python: str = ""
    libraries: dict[str, str] = Field(default_factory=dict)


class Objective(BaseModel):
    """What the deployment has to meet: the report's decision ranks every deployment against it."""

    slo_p99_ms: float = Field(gt=0)
    target_rps: float = Field(gt=0)


#: A web-facing classifier: answers within 200 ms at the 99th percentile, 100 requests/s in all.
DEFAULT_OBJECTIVE = Objective(slo_p99_ms=200.0, target_rps=100.0)


class RunResults(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: RunStatus = "running"
    profile: str
    started_at: str
    finished_at: str | None = None
    duration_s: float | None = None
    settings: dict[str, object] = Field(default_factory=dict)
    machine: MachineInfo
    models: list[ModelFacts] = Field(default_factory=list)
    inprocess: list[InProcessResult] = Field(default_factory=list)
    paired: list[PairedBaseline] = Field(default_factory=list)
    points: list[PointResult] = Field(default_factory=list)
    ramps: list[RampResult] = Field(default_factory=list)
    objective: Objective = Field(default_factory=lambda: DEFAULT_OBJECTIVE.model_copy())
    notes: list[str] = Field(default_factory=list)

    def flagged(self) -> list[str]:
        """Every cross-check flag in the run, prefixed by its point id."""
        found = [f"{p.id}: {flag}" for p in self.points for flag in p.flags]
        found += [f"{r.id}: {flag}" for r in self.ramps for flag in r.flags]
        return found

    def paired_for(self, slow: str, fast: str) -> PairedBaseline | None:
        return next((p for p in self.paired if (p.slow, p.fast) == (slow, fast)), None)

    def facts_for(self, triton_model: str) -> ModelFacts | None:
        return next((m for m in self.models if m.triton_model == triton_model), None)


def load_results(run_dir: Path) -> RunResults:
    """The results of a run directory (or a results.json path); a clear error when it is not one."""
    path = run_dir / RESULTS_FILENAME if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a run directory written by `deploylab loadtest`")
    try:
        return RunResults.model_validate_json(path.read_text())
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a deploylab results file: {exc}") from None


def save_results(results: RunResults, run_dir: Path) -> Path:
    """Write results.json atomically (a crash mid-write leaves the previous version)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESULTS_FILENAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(results.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path
