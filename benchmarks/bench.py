"""`deploylab bench`: the served path against the engine's own limit, side by side, in one run.

For each model, on one machine and one thread budget:
  (a) in-process ONNX Runtime: one wide session and `threads` narrow ones, batch 1 and 8 — the
      engine's limit and its batch-1 latency;
  (b) Triton direct: closed-loop clients over binary HTTP (a concurrency sweep), gRPC and system
      shared memory, with Triton's executed-batch statistics for every point;
  (c) through the gateway: the tensor path (KServe v2 binary) and the image path (JPEG classify),
      for each gateway worker count asked for;
  (d) the served config on other backends, and in other instance layouts (one client and saturation:
      what a lone request waits against what the server holds at full load);
and the resident memory of Triton and the gateway with that model loaded.

This machine's speed can flip between two levels within seconds, so nothing is compared across
runs: every round measures the in-process reference before the direct points and again before the
gateway points, and each ratio is taken within its round against the mean of the references around
it; the summary is the median over rounds.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploylab.services.measure.machine import load_average, machine_info
from deploylab.services.measure.names import served_model
from deploylab.services.measure.percentiles import percentile
from deploylab.services.measure.ports import free_ports, runtime_on_free_ports
from deploylab.services.measure.process_tree import tree_memory
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.repository import InstanceLayout, model_dir, refresh_python_model
from deploylab.services.perf.client import Transport
from deploylab.services.perf.inprocess import (
    InProcessPoint,
    Layout,
    batch1_latency,
    best_throughput,
    layouts_for,
    measure_inprocess,
)
from deploylab.services.perf.load import LoadTarget, paired_latency, run_load
from deploylab.services.perf.triton_admin import TritonAdminError, load_model, model_config, model_statistics
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...] = ("mobilenet_v3_large", "resnet50")
    repository: Path = Path("model_repository")
    threads: int = 2
    rounds: int = 2
    duration_s: float = 4.0
    concurrencies: tuple[int, ...] = (1, 4, 16, 64)
    direct_transports: tuple[Transport, ...] = ("http", "grpc", "http-shm")
    gateway: bool = True
    gateway_workers: tuple[int, ...] = (1, 2)
    inprocess_batches: tuple[int, ...] = (1, 8)
    # Other Triton backends measured beside the served one in every round: the same config with only
    # the backend swapped (through model control), direct at saturation over the best transport.
    backends: tuple[str, ...] = ()
    # Other instance layouts measured beside the served one in every round, the same way, at one client
    # over HTTP and at saturation: a lone request on one single-thread instance uses one core.
    layouts: tuple[InstanceLayout, ...] = ()
    state_dir: Path = Path(".deploylab/bench")

    @property
    def saturation(self) -> int:
        return max(self.concurrencies)


@dataclass
class RoundResult:
    index: int
    inprocess_before: list[InProcessPoint] = field(default_factory=list)
    inprocess_after: list[InProcessPoint] = field(default_factory=list)
    direct: list[dict[str, Any]] = field(default_factory=list)
    backends: list[dict[str, Any]] = field(default_factory=list)
    layouts: list[dict[str, Any]] = field(default_factory=list)
    gateway: list[dict[str, Any]] = field(default_factory=list)

    def reference(self, which: str) -> float:
        points = self.inprocess_before if which == "before" else self.inprocess_after
        return best_throughput(points).throughput_img_s if points else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.index,
            "inprocess_before": [p.as_dict() for p in self.inprocess_before],
            "inprocess_after": [p.as_dict() for p in self.inprocess_after],
            "direct": self.direct,
            "backends": self.backends,
            "layouts": self.layouts,
            "gateway": self.gateway,
        }


def run_bench(options: BenchOptions, log: Log = print) -> dict[str, Any]:
    """Measure every model in `options`; returns the JSON-ready result (see module docstring)."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "options": _jsonable(asdict(options)),
        "models": {},
    }
    for model in options.models:
        name = served_model(model).triton_model
        log(f"[bold]{name}[/bold]")
        result["models"][name] = bench_model(name, options, log)
    result["duration_s"] = round(time.perf_counter() - started, 1)
    return result


def bench_model(model: str, options: BenchOptions, log: Log) -> dict[str, Any]:
    ensure_exported(model, options.repository, log)
    manifest = read_manifest(model_dir(options.repository, model))
    record: dict[str, Any] = {
        "onnx_mib": round(manifest.onnx_bytes / 2**20, 1) if manifest else None,
        "rounds": [],
    }
    with _triton(model, options) as (triton, runtime):
        record["serving"] = served_config(model_config(runtime.triton_http_url, model))
        # The engine's limit over the usual layouts, and over the one Triton serves when it differs
        # (two single-thread instances per core, say): a served layout the reference never ran in
        # would leave open whether the engine alone does better in it.
        layouts = layouts_for(options.threads)
        serving = record["serving"]
        served = Layout(serving["instance_count"], serving["intra_op_threads"] or options.threads)
        layouts += [served] if served not in layouts else []
        record["memory"] = {"triton": tree_memory(_pid(triton)).as_dict(), "gateway": {}}
        rounds = [RoundResult(i + 1) for i in range(options.rounds)]
        for rnd in rounds:
            log(f"  round {rnd.index}/{options.rounds}")
            rnd.inprocess_before = _inprocess(model, options, layouts, options.inprocess_batches)
            _log_ref(log, "in-process", rnd.inprocess_before)
            rnd.direct = _direct_points(model, runtime, options, log)
            rnd.backends = [
                point
                for backend in options.backends
                if backend != serving["backend"]
                for point in _swapped_points(model, runtime, triton, options, log, backend)
            ]
            rnd.layouts = [
                point
                for layout in options.layouts
                if layout != _served_layout(serving, options.threads)
                for point in _swapped_points(model, runtime, triton, options, log, layout)
            ]
            # Every layout again, at the best batch: on a shared host the one-session, all-threads layout
            # can run at 0.7x for minutes while single-thread sessions do not (spin barriers across
            # vCPUs), and re-measuring only the first winner would then understate the engine's limit.
            best_batch = max(rnd.inprocess_before, key=lambda p: p.throughput_img_s).batch_size
            rnd.inprocess_after = _inprocess(model, options, layouts, (best_batch,))
            _log_ref(log, "in-process again", rnd.inprocess_after)
            if options.gateway:
                rnd.gateway = _gateway_points(model, runtime, options, record["memory"]["gateway"], log)
        record["rounds"] = [r.as_dict() for r in rounds]
        record["summary"] = summarize(rounds, options)
    return record


# -- steps ------------------------------------------------------------------------------------


def ensure_exported(model: str, repository: Path, log: Log) -> None:
    """Export with the default serving config when the model is missing (a present config is kept:
    the bench measures what the repository serves, tuned or not; its model.py is brought up to date)."""
    if read_manifest(model_dir(repository, model)) is not None:
        if refresh_python_model(repository, model):
            log(f"  {model}: rewrote model.py (this deploylab ships a different one)")
        return
    served = served_model(model)
    spec, variant = served.spec, served.variant
    log(f"  exporting {model} (first run only) …")
    export_model(spec, variant, repository, ExportOptions())


@contextlib.contextmanager
def _triton(model: str, options: BenchOptions) -> Iterator[tuple[TritonServer, RuntimeSettings]]:
    runtime = runtime_on_free_ports(options.repository, options.state_dir)
    server = TritonServer(runtime, models=[model])
    server.start()
    try:
        yield server, runtime
    finally:
        server.stop()


def served_config(config: dict[str, Any]) -> dict[str, Any]:
    """The serving knobs of the config Triton reports for a loaded model (ServingConfig's names).

    Read from the running server, not the manifest: a config.pbtxt edited by hand or written by
    `deploylab tune` is what is measured, so it is what the report must name.
    """
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    batching = config.get("dynamic_batching") or {}
    threads = parameters.get("intra_op_thread_count", "")
    return {
        "backend": config.get("backend", ""),
        "max_batch_size": int(config.get("max_batch_size", 0)),
        "instance_count": sum(int(group.get("count", 1)) for group in config.get("instance_group", [])) or 1,
        "intra_op_threads": int(threads) if threads.isdigit() else 0,
        "dynamic_batching": bool(config.get("dynamic_batching")),
        "max_queue_delay_us": int(batching.get("max_queue_delay_microseconds", 0)),
        "preferred_batch_sizes": [int(b) for b in batching.get("preferred_batch_size", [])],
        "pipeline": parameters.get("pipeline") == "1",
        "queue_policy": _queue_policy(batching),
    }


def _queue_policy(batching: dict[str, Any]) -> bool:
    """Whether Triton's queue has a policy that stops its batcher forming batches ahead.

    Triton reports a default policy even when none was written; what counts is core's own test
    (`PriorityQueue` in scheduler_utils.cc): a timeout, timeout overrides, a bounded queue or priorities.
    """
    policy = batching.get("default_queue_policy") or {}
    return bool(
        int(policy.get("default_timeout_microseconds", 0))
        or policy.get("allow_timeout_override", False)
        or int(policy.get("max_queue_size", 0))
        or int(batching.get("priority_levels", 0))
    )


def _pid(server: TritonServer) -> int:
    if server.pid is None:
        raise RuntimeError("tritonserver is not running")
    return server.pid


def _inprocess(
    model: str, options: BenchOptions, layouts: list[Layout], batches: tuple[int, ...]
) -> list[InProcessPoint]:
    return measure_inprocess(
        model,
        options.repository,
        "onnxruntime",
        batch_sizes=batches,
        threads=options.threads,
        duration_s=options.duration_s,
        layouts=layouts,
    )


def _measure(target: LoadTarget, concurrency: int, options: BenchOptions, triton_url: str) -> dict[str, Any]:
    before = model_statistics(triton_url, target.model)
    load = run_load(target, concurrency, options.duration_s)
    stats = model_statistics(triton_url, target.model) - before
    return {**load.as_dict(), "triton": stats.as_dict()}


def _served_layout(serving: dict[str, Any], threads: int) -> InstanceLayout:
    threads = serving["intra_op_threads"] or threads
    return InstanceLayout(serving["instance_count"], threads, serving["pipeline"])


def _swapped_points(
    model: str,
    runtime: RuntimeSettings,
    triton: TritonServer,
    options: BenchOptions,
    log: Log,
    change: str | InstanceLayout,
) -> list[dict[str, Any]]:
    """The served config with one `change` (another backend, named, or another layout), measured; then
    the served config again.

    Swapped through Triton's model control, so both configs run in the same server, round and thread
    budget, between the same two in-process references. A backend is measured at saturation over the
    best transport; a layout also at one client over plain HTTP, the lone request a remote client sends.
    """
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as mc

    spec = served_model(model).spec
    url = runtime.triton_http_url
    served = model_config(url, model)
    config = json_format.ParseDict(served, mc.ModelConfig(), ignore_unknown_fields=True)
    labels: dict[str, Any] = {}
    backend, layout = (change, None) if isinstance(change, str) else (None, change)
    if backend is not None:
        labels["backend"] = config.backend = backend
        # The served backend's entry point (model.py, filled in by Triton) means nothing to another one.
        config.runtime = ""
        config.default_model_filename = ""
        if "pipeline" in config.parameters:
            del config.parameters["pipeline"]  # a Python-backend option
    if layout is not None:
        labels["layout"] = layout.label
        del config.instance_group[1:]
        config.instance_group[0].count = layout.instances
        config.parameters["intra_op_thread_count"].string_value = str(layout.threads)
        if config.backend == "python":  # the other backends have no pipeline
            config.parameters["pipeline"].string_value = "1" if layout.pipeline else "0"
    transport: Transport = "http-shm" if "http-shm" in options.direct_transports else "http"
    plan: list[tuple[Transport, int]] = [(transport, options.saturation)]
    plan += [("http", 1)] if layout is not None else []
    points = []
    try:
        load_model(url, model, config)
        # Triton retires the old instances after the new ones are ready; their stubs must be gone
        # before this point is measured (CPU) and its memory read.
        stubs = sum(g.count for g in config.instance_group) if config.backend == "python" else 0
        _wait_for_children(_pid(triton), stubs)
        for transport, concurrency in plan:
            target = LoadTarget(
                transport, url, model, input_size=spec.input_size, grpc_url=runtime.triton_grpc_url
            )
            point = {"path": "direct", **labels, **_measure(target, concurrency, options, url)}
            points.append(point)
            _log_point(log, point)
        # Processes only: memory read here would include what the served config's load points left
        # in Triton's heap (docs/benchmarks.md has a fresh server's numbers).
        points[0]["triton_processes"] = tree_memory(_pid(triton)).processes
    except TritonAdminError as exc:  # say, deploylab_ort on a host without a C++ compiler
        log(f"    [yellow]{labels} not measured: {str(exc)[:300]}[/yellow]")
        return []
    finally:
        _restore(url, model, served)
    return points


def _restore(url: str, model: str, served: dict[str, Any]) -> None:
    """Serve `served` again, and check that it is what Triton serves.

    A load without a config does not undo an override: Triton reloads from disk only when the files
    changed, so the next points would silently measure the swapped-in config. The served config goes
    back as an override of its own.
    """
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as mc

    load_model(url, model, json_format.ParseDict(served, mc.ModelConfig(), ignore_unknown_fields=True))
    now, wanted = served_config(model_config(url, model)), served_config(served)
    if now != wanted:
        raise RuntimeError(f"{model}: Triton serves {now} after the swap, not the served config {wanted}")


def _wait_for_children(pid: int, count: int, timeout_s: float = 30.0) -> None:
    """Until the process has at most `count` children (or the timeout: then measure anyway)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while len(psutil.Process(pid).children()) > count and time.monotonic() < deadline:
        time.sleep(0.2)


def _direct_points(
    model: str, runtime: RuntimeSettings, options: BenchOptions, log: Log
) -> list[dict[str, Any]]:
    spec = served_model(model).spec
    url = runtime.triton_http_url
    points = []
    plan: list[tuple[Transport, int]] = [("http", c) for c in options.concurrencies] + [
        (t, options.saturation) for t in options.direct_transports if t != "http"
    ]
    for transport, concurrency in plan:
        target = LoadTarget(
            transport, url, model, input_size=spec.input_size, grpc_url=runtime.triton_grpc_url
        )  # type: ignore[arg-type]
        point = {"path": "direct", **_measure(target, concurrency, options, url)}
        points.append(point)
        _log_point(log, point)
    points += _independent_point("direct-wrk", url, url, model, options, log)
    return points


def _independent_point(
    path: str, url: str, triton_url: str, model: str, options: BenchOptions, log: Log, **labels: Any
) -> list[dict[str, Any]]:
    """The plain-HTTP saturation point again, measured by wrk (C, no project code on the client side);
    nothing when wrk is not installed (the bench says so)."""
    from deploylab.benchmarks.wrk import WrkMissingError, request_for, run_wrk

    try:
        request = request_for(url, model)
        seconds = options.duration_s
        before = model_statistics(triton_url, model)
        result = run_wrk(url, request, honouring=options.saturation, immediate=0, duration_s=seconds)
        executed = model_statistics(triton_url, model) - before
    except WrkMissingError as exc:
        log(f"    {path}: not measured ({exc})")
        return []
    accepted_ms = [1000 * s for s in result.accepted_s]
    point = {
        "path": path,
        **labels,
        "transport": "http",
        "concurrency": options.saturation,
        "throughput_img_s": round(result.statuses.get(200, 0) / result.duration_s, 1),
        "p50_ms": round(percentile(accepted_ms, 50), 3),
        "p99_ms": round(percentile(accepted_ms, 99), 3),
        "errors": sum(n for status, n in result.statuses.items() if status != 200) + result.socket_errors,
        "triton": executed.as_dict(),
    }
    log(
        f"    {path} c={options.saturation}: {point['throughput_img_s']} img/s (wrk), "
        f"p99 {point['p99_ms']} ms"
    )
    return [point]


def _gateway_points(
    model: str,
    runtime: RuntimeSettings,
    options: BenchOptions,
    memory: dict[str, Any],
    log: Log,
) -> list[dict[str, Any]]:
    from deploylab.services.gateway.settings import GatewaySettings
    from deploylab.services.gateway.stack import GatewayProcess

    spec = served_model(model).spec
    points = []
    routing = options.state_dir / "bench-routing.yaml"
    routing.parent.mkdir(parents=True, exist_ok=True)
    routing.write_text("routes: []\n")  # no routes: ready as soon as Triton is, name = Triton model
    for workers in options.gateway_workers:
        (port,) = free_ports(1)
        settings = GatewaySettings(
            port=port,
            workers=workers,
            triton_url=f"{runtime.triton_host}:{runtime.triton_http_port}",
            model_repository=options.repository,
            routing_file=routing,
            admission="static",
            max_inflight_per_model=max(64, 2 * options.saturation),
            request_timeout_s=60.0,
        )
        gateway = GatewayProcess(settings, options.state_dir / "logs" / f"gateway-{workers}w.log")
        gateway.start(ready_timeout_s=60.0)
        try:
            assert gateway.process is not None
            memory[str(workers)] = tree_memory(gateway.process.pid).as_dict()
            plan: list[tuple[Transport, int]] = [("http", c) for c in options.concurrencies]
            plan += [("classify", c) for c in sorted({min(options.concurrencies), options.saturation})]
            for transport, concurrency in plan:
                target = LoadTarget(transport, gateway.url, model, input_size=spec.input_size)
                point = {
                    "path": "gateway-tensor" if transport == "http" else "gateway-image",
                    "gateway_workers": workers,
                    **_measure(target, concurrency, options, runtime.triton_http_url),
                }
                points.append(point)
                _log_point(log, point)
            direct = LoadTarget("http", runtime.triton_http_url, model, input_size=spec.input_size)
            through = LoadTarget("http", gateway.url, model, input_size=spec.input_size)
            paired = paired_latency(direct, through, options.duration_s)
            points.append({"path": "paired-batch1", "gateway_workers": workers, **paired.as_dict()})
            log(
                f"    paired batch 1 ({workers}w, {paired.pairs} pairs): direct p50 {paired.a_p50_ms:.2f}"
                f" ms, gateway {paired.b_p50_ms:.2f} ms, overhead {paired.delta_p50_ms:+.2f} ms"
            )
            points += _independent_point(
                "gateway-tensor-wrk", gateway.url, runtime.triton_http_url, model, options, log,
                gateway_workers=workers,
            )
            memory[f"{workers}_after_load"] = tree_memory(gateway.process.pid).as_dict()
        finally:
            gateway.stop()
    return points


# -- summary ----------------------------------------------------------------------------------


def summarize(rounds: list[RoundResult], options: BenchOptions) -> dict[str, Any]:
    """Per-round ratios, then their median: one round that ran slow (another tenant) cannot set a ratio."""
    sat = options.saturation
    per_round: list[dict[str, Any]] = []
    for rnd in rounds:
        ref = statistics.fmean([rnd.reference("before"), rnd.reference("after")])
        row: dict[str, Any] = {"round": rnd.index, "inprocess_best_img_s": round(ref, 1)}
        direct = [p for p in rnd.direct if p["path"] == "direct"]  # the own client's; wrk's is a cross-check
        direct_sat = {p["transport"]: p for p in direct if p["concurrency"] == sat}
        best_direct = max(direct, key=lambda p: p["throughput_img_s"], default=None)
        direct_wrk = next((p for p in rnd.direct if p["path"] == "direct-wrk"), None)
        if direct_wrk and "http" in direct_sat:
            row["direct_http_wrk_over_own_client"] = _ratio(
                direct_wrk["throughput_img_s"], direct_sat["http"]["throughput_img_s"]
            )
        if best_direct:
            row["direct_best"] = _label(best_direct)
            row["served_over_inprocess"] = _ratio(best_direct["throughput_img_s"], ref)
        for transport, point in direct_sat.items():
            row[f"direct_{transport}_over_inprocess"] = _ratio(point["throughput_img_s"], ref)
            row[f"direct_{transport}_mean_batch"] = point["triton"]["mean_executed_batch"]
        for point in rnd.backends:
            same = direct_sat.get(point["transport"])
            img_s = point["throughput_img_s"]
            row[f"{point['backend']}_over_inprocess"] = _ratio(img_s, ref)
            if same:
                row[f"{point['backend']}_over_served"] = _ratio(img_s, same["throughput_img_s"])
        lone = batch1_latency(rnd.inprocess_before)  # the engine's best lone-request latency
        direct_c1 = next((p for p in direct if p["transport"] == "http" and p["concurrency"] == 1), None)
        if lone:
            row["inprocess_batch1_p50_ms"] = lone.p50_ms
        if direct_c1 and lone:
            row["direct_batch1_p50_delta_ms"] = round(direct_c1["p50_ms"] - lone.p50_ms, 3)
            row["direct_batch1_p50_over_inprocess"] = _ratio(direct_c1["p50_ms"], lone.p50_ms)
        for point in rnd.layouts:
            key = f"layout_{point['layout']}"
            if point["concurrency"] == 1 and lone:
                row[f"{key}_batch1_p50_over_inprocess"] = _ratio(point["p50_ms"], lone.p50_ms)
            elif (same := direct_sat.get(point["transport"])) is not None:
                row[f"{key}_over_served"] = _ratio(point["throughput_img_s"], same["throughput_img_s"])
        http_sat = direct_sat.get("http")
        # Gateway ratios are taken against the best direct transport of the round at saturation (shared
        # memory on one host beats plain HTTP): a gateway measured against a slow baseline looks free.
        best_sat = max(direct_sat.values(), key=lambda p: p["throughput_img_s"], default=None)
        if best_sat:
            row["direct_best_at_saturation"] = _label(best_sat)
        for workers in options.gateway_workers:
            gw = [p for p in rnd.gateway if p["gateway_workers"] == workers]
            tensor_sat = next(
                (p for p in gw if p["path"] == "gateway-tensor" and p["concurrency"] == sat), None
            )
            image_sat = next(
                (p for p in gw if p["path"] == "gateway-image" and p["concurrency"] == sat), None
            )
            tensor_c1 = next((p for p in gw if p["path"] == "gateway-tensor" and p["concurrency"] == 1), None)
            paired = next((p for p in gw if p["path"] == "paired-batch1"), None)
            image_c1 = next((p for p in gw if p["path"] == "gateway-image" and p["concurrency"] == 1), None)
            wrk_sat = next((p for p in gw if p["path"] == "gateway-tensor-wrk"), None)
            if wrk_sat and tensor_sat:  # the independent client's view of the headline point
                row[f"gw{workers}_tensor_wrk_over_own_client"] = _ratio(
                    wrk_sat["throughput_img_s"], tensor_sat["throughput_img_s"]
                )
            key = f"gw{workers}"
            if tensor_sat and best_sat:
                row[f"{key}_tensor_over_direct"] = _ratio(
                    tensor_sat["throughput_img_s"], best_sat["throughput_img_s"]
                )
            if tensor_sat:  # a remote client's path: plain HTTP to the gateway, the headline number
                row[f"{key}_tensor_over_inprocess"] = _ratio(tensor_sat["throughput_img_s"], ref)
            if tensor_sat and http_sat:
                row[f"{key}_tensor_over_direct_http"] = _ratio(
                    tensor_sat["throughput_img_s"], http_sat["throughput_img_s"]
                )
            if image_sat and tensor_sat:
                row[f"{key}_image_over_tensor"] = _ratio(
                    image_sat["throughput_img_s"], tensor_sat["throughput_img_s"]
                )
            if image_sat and best_sat:
                row[f"{key}_image_over_direct"] = _ratio(
                    image_sat["throughput_img_s"], best_sat["throughput_img_s"]
                )
            if tensor_c1 and direct_c1:
                unpaired = round(tensor_c1["p50_ms"] - direct_c1["p50_ms"], 3)
                row[f"{key}_tensor_p50_delta_unpaired_ms"] = unpaired
                row[f"{key}_tensor_p50_delta_ms"] = unpaired
            if paired:  # interleaved with direct requests: the machine's drift cancels (load.py)
                row[f"{key}_tensor_p50_delta_ms"] = paired["delta_p50_ms"]
            if image_c1 and direct_c1:
                row[f"{key}_image_p50_delta_ms"] = round(image_c1["p50_ms"] - direct_c1["p50_ms"], 3)
        per_round.append(row)
    keys = sorted(
        {k for row in per_round for k, v in row.items() if isinstance(v, int | float) and k != "round"}
    )
    medians = {k: round(statistics.median([r[k] for r in per_round if k in r]), 3) for k in keys}
    return {"per_round": per_round, "median": medians, "targets": check_targets(medians, options)}


#: Ratios against the best baseline of the same round. The headline is what a remote client gets: the
#: gateway over plain HTTP against the best in-process engine.
TARGETS = {
    "served_over_inprocess": (">=", 0.9),
    "gw{w}_tensor_over_inprocess": (">=", 0.9),
    "gw{w}_tensor_over_direct": (">=", 0.9),
    "gw{w}_image_over_tensor": (">=", 0.85),
    "gw{w}_tensor_p50_delta_ms": ("<=", 2.0),
    "direct_batch1_p50_over_inprocess": ("<=", 1.2),
}


def check_targets(medians: dict[str, float], options: BenchOptions) -> dict[str, dict[str, Any]]:
    """Each TARGETS ratio of the medians: its value, the bound and whether it held."""
    checks: dict[str, dict[str, Any]] = {}
    for template, (op, limit) in TARGETS.items():
        keys = [template.format(w=w) for w in options.gateway_workers] if "{w}" in template else [template]
        for key in keys:
            if key not in medians:
                continue
            value = medians[key]
            met = value >= limit if op == ">=" else value <= limit
            checks[key] = {"value": value, "target": f"{op} {limit}", "met": met}
    return checks


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def _label(point: dict[str, Any]) -> str:
    return f"{point['transport']} c={point['concurrency']}"


def _log_ref(log: Log, what: str, points: list[InProcessPoint]) -> None:
    parts = [f"b{p.batch_size} {p.layout}: {p.throughput_img_s:.0f} img/s" for p in points]
    log(f"    {what}: " + ", ".join(parts))


def _log_point(log: Log, point: dict[str, Any]) -> None:
    workers = f" w={point['gateway_workers']}" if "gateway_workers" in point else ""
    workers += f" on {point['backend']}" if "backend" in point else ""
    workers += f" as {point['layout']}" if "layout" in point else ""
    error = f" errors={point['errors']} ({point['first_error']})" if point["errors"] else ""
    log(
        f"    {point['path']}{workers} {point['transport']} c={point['concurrency']}: "
        f"{point['throughput_img_s']:.0f} img/s p50 {point['p50_ms']:.2f} ms p99 {point['p99_ms']:.2f} ms "
        f"mean batch {point['triton']['mean_executed_batch']:.2f}{error}"
    )


def machine_facts() -> dict[str, Any]:
    """What a reader needs to compare runs: CPU, cores, load, library versions (the core's machine facts;
    the versions of the export and serving stack only, as the bench records have always listed)."""
    info = machine_info(extra_packages=())
    return {
        "cpu": info.cpu_model,
        "cores": info.usable_cores,
        "load_average_at_start": load_average(),
        "python": info.python,
        "versions": info.libraries,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

