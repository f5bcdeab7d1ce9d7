"""GPU check: ResNet-50 in-process vs served vs through the gateway on one GPU; RepVGG train vs deploy.

A thin front-end over the product. The served model is started by services/runtime's launcher, which
on a GPU host serves it GPU-blind and hands its Python-backend instances the GPU (runtime/gpu_plan.py);
the load and Triton's statistics come from services/perf, the gateway from services/gateway. Its own
are the measurements the product has no GPU counterpart for: the engine in-process on the GPU (torch
eager, fp16 + channels_last, CUDA graphs, and the served engine's own code with host numpy in and out)
and RepVGG's train vs deploy forms.

    prepare (development host):  python -m deploylab.benchmarks.gpu_check prepare --out .gpu
        packs the nvidia-pytriton wheel's tritonserver in the wheel's own layout, so a host without
        the wheel runs it through the same launcher (the runtime finds it by that layout).
    run (GPU host):  python -m deploylab.benchmarks.gpu_check run [--bundle .gpu] --out "$OUT"
        1. facts: GPU, driver, torch/CUDA/cuDNN, timm, torchvision, ONNX Runtime providers;
        2. in-process ResNet-50 at batch 1/8/64: fp32 eager, fp16 + channels_last eager, + CUDA graphs,
           and the served engine's code (`_TorchEngine` of triton_python_model.py) from host numpy;
        3. RepVGG A0/A1 train vs deploy, fp16 + channels_last, eager and CUDA graphs;
        4. served: the model under its catalog name, the torch engine on KIND_GPU instances (config
           and model.py written by the repository module), started by `TritonServer`; closed-loop
           clients over binary HTTP and system shared memory, with executed-batch statistics;
        5. gateway: the same model through the gateway's KServe v2 route, beside the direct points;
        6. native: the same weights as ONNX on `deploylab_ort`'s CUDA instances, in-process vs served,
           inputs over system and over CUDA shared memory (benchmarks/gpu_native.py);
        7. gpu_check.json under --out after every step, and a summary table last.

`scripts/gpu-session.sh` drives both stages on a lent host. The served engine is the same class the
in-process step 2 imports, so served ÷ in-process measures the serving path alone.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .gpu_serving import LoadPlan, Served, log_line, measure_host_calls, run_points, served_triton

if TYPE_CHECKING:
    pass

BUNDLE_TAR = "triton.tar.xz"
#: The torch engine's parameters on a GPU: fp16, channels_last, one CUDA graph per power-of-two batch.
TORCH_GPU_PARAMETERS = {
    "engine": "torch",
    "torch_precision": "fp16",
    "torch_channels_last": "1",
    "torch_cuda_graphs": "1",
}


# -- prepare (development host) -----------------------------------------------------------------


def prepare(out: Path, python_versions: tuple[str, ...]) -> Path:
    """`out/triton.tar.xz`: the wheel's tritonserver for a host without the wheel (ignored by git)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / BUNDLE_TAR
    _pack_triton(target, python_versions)
    print(f"bundle ready: {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return target


def bundle_members(root: Path, python_versions: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(file, name in the bundle) for the wheel's server under `root` (the installed `pytriton`).

    Names keep the wheel's layout (`pytriton/tritonserver/…`, `nvidia_pytriton.libs/…`), which is how
    the runtime recognises an unpacked copy; only the stubs of `python_versions` travel, and the
    wheel's own libpython (it serves only its own Python's stub) stays behind.
    """
    server = root / "tritonserver"
    libs = root.parent / "nvidia_pytriton.libs"
    members = [(server / "bin" / "tritonserver", "pytriton/tritonserver/bin/tritonserver")]
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        members.append(
            (server / "backends" / "python" / name, f"pytriton/tritonserver/backends/python/{name}")
        )
    for version in python_versions:
        stub = f"python_backend_stubs/{version}/triton_python_backend_stub"
        members.append((server / stub, f"pytriton/tritonserver/{stub}"))
    members += [
        (lib, f"nvidia_pytriton.libs/{lib.name}")
        for lib in sorted(libs.iterdir())
        if not lib.name.startswith("libpython")
    ]
    return members


def _pack_triton(target: Path, python_versions: tuple[str, ...]) -> None:
    from importlib.util import find_spec

    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nvidia-pytriton is not installed here: `make install` first")
    members = bundle_members(Path(next(iter(spec.submodule_search_locations))), python_versions)
    if target.exists() and target.stat().st_mtime > max(src.stat().st_mtime for src, _ in members):
        return
    print(f"packing tritonserver ({len(members)} files) → {target} …", flush=True)
    with tarfile.open(target, "w:xz", preset=6) as tar:
        for source, name in members:
            tar.add(source, arcname=name)


def unpack_bundle(bundle: Path, work: Path) -> Path:
    """The bundle's tritonserver unpacked under `work` (once); returns the binary for the launcher."""
    root = work / "triton"
    binary = root / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(bundle / BUNDLE_TAR) as tar:
            tar.extractall(root, filter="fully_trusted")
    return binary


# -- timing helpers -----------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_device_loop(
    fn: Callable[[], object], batch: int, seconds: float, device: str
) -> dict[str, float]:
    """Throughput of back-to-back calls (one sync at the end) and p50 of individually synced calls."""
    for _ in range(3):
        fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(5):
        fn()
    _sync(device)
    per_call = max((time.perf_counter() - started) / 5, 1e-6)
    n = max(5, int(seconds / per_call))
    started = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    elapsed = time.perf_counter() - started
    samples: list[float] = []
    for _ in range(min(n, 50)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return {
        "batch": batch,
        "img_s": round(batch * n / elapsed, 1),
        "p50_ms": round(float(np.median(samples)) * 1e3, 3),
        "iterations": n,
    }


def _graphed(model: Any, example: Any) -> Callable[[], object]:
    """A CUDA graph of `model(example)`; calling it replays the graph on the static input."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            model(example)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        model(example)
    return graph.replay


# -- in-process ---------------------------------------------------------------------------------


def _engine_class() -> Any:
    """`_TorchEngine` from the served model file, with a stand-in for Triton's utils module."""
    logger = types.SimpleNamespace(log_info=lambda msg: None, log_warn=print, log_error=print)
    sys.modules.setdefault("triton_python_backend_utils", types.SimpleNamespace(Logger=logger))  # type: ignore[arg-type]
    from deploylab.services.modelzoo import triton_python_model

    return triton_python_model._TorchEngine


def run_inprocess(
    model_name: str, batches: list[int], seconds: float, device: str, weights: Path
) -> list[dict]:
    import torch
    from deploylab.services.modelzoo.build import build_model
    from deploylab.services.modelzoo.catalog import get_spec

    spec = get_spec(model_name)
    fp32 = build_model(spec).to(device)
    save_weights(model_name, weights)
    fp16 = build_model(spec).to(device, dtype=_half(device)).to(memory_format=torch.channels_last)
    rows: list[dict] = []
    for b in batches:
        x32 = torch.randn(b, 3, spec.input_size, spec.input_size, device=device)
        x16 = x32.to(_half(device)).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            rows.append(
                {
                    "variant": "eager fp32",
                    **measure_device_loop(functools.partial(fp32, x32), b, seconds, device),
                }
            )
            rows.append(
                {
                    "variant": "eager fp16 channels_last",
                    **measure_device_loop(functools.partial(fp16, x16), b, seconds, device),
                }
            )
        if device.startswith("cuda"):
            replay = _graphed(fp16, x16)
            rows.append(
                {
                    "variant": "cuda graph fp16 channels_last",
                    **measure_device_loop(replay, b, seconds, device),
                }
            )
        log_line(
            f"  in-process {model_name} b={b}: "
            + ", ".join(f"{r['variant']} {r['img_s']}" for r in rows[-3:])
        )
    # The served engine's own code, host numpy in and out (what Triton's execute() runs).
    engine_cls = _engine_class()
    version_dir = weights.parent
    params = {
        "torch_builder": f"torchvision:{spec.builder}",
        "torch_precision": "fp16" if device.startswith("cuda") else "fp32",
        "torch_channels_last": "1",
        "torch_cuda_graphs": "1" if device.startswith("cuda") else "0",
        "torch_device": "cuda" if device.startswith("cuda") else "cpu",
        "torch_input_size": str(spec.input_size),
    }
    args = {"model_repository": str(version_dir.parent), "model_version": version_dir.name, "model_name": "x"}
    engine = engine_cls(args, params, max(batches))
    for b in batches:
        host = np.random.default_rng(b).standard_normal(
            (b, 3, spec.input_size, spec.input_size), dtype=np.float32
        )
        row = {
            "variant": "served engine code, host numpy in/out",
            **measure_host_calls(functools.partial(engine.run, host), b, seconds),
        }
        rows.append(row)
        log_line(f"  in-process engine b={b}: {row['img_s']} img/s p50 {row['p50_ms']} ms")
    del engine
    return rows


def save_weights(model_name: str, weights: Path) -> None:
    """The seeded random-init state_dict the served model loads, so both sides run the same weights."""
    import torch
    from deploylab.services.modelzoo.build import build_model
    from deploylab.services.modelzoo.catalog import get_spec

    if not weights.is_file():
        torch.save(build_model(get_spec(model_name)).state_dict(), weights)


def run_repvgg(batches: list[int], seconds: float, device: str) -> list[dict]:
    import torch
    from deploylab.services.modelzoo.build import build_model
    from deploylab.services.modelzoo.catalog import get_spec

    rows: list[dict] = []
    for name in ("repvgg_a0", "repvgg_a1"):
        spec = get_spec(name)
        for variant in ("train", "deploy"):
            model = (
                build_model(spec, variant)
                .to(device, dtype=_half(device))
                .to(memory_format=torch.channels_last)
            )
            for b in batches:
                x = torch.randn(b, 3, 224, 224, device=device, dtype=_half(device)).contiguous(
                    memory_format=torch.channels_last
                )
                with torch.inference_mode():
                    eager = measure_device_loop(functools.partial(model, x), b, seconds, device)
                rows.append({"model": name, "form": variant, "mode": "eager fp16 channels_last", **eager})
                if device.startswith("cuda"):
                    graph = measure_device_loop(_graphed(model, x), b, seconds, device)
                    rows.append(
                        {"model": name, "form": variant, "mode": "cuda graph fp16 channels_last", **graph}
                    )
                log_line(f"  {name} {variant} b={b}: eager {eager['img_s']} img/s")
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return rows


def _half(device: str) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


# -- served and through the gateway --------------------------------------------------------------


def served_serving(model: str, device: str) -> Any:
    """The served model's ServingConfig: torch on KIND_GPU instances, or fp32 on the CPU (a rehearsal)."""
    from deploylab.services.modelzoo.repository import ServingConfig

    builder = {"torch_builder": f"torchvision:{model}"}
    if device.startswith("cuda"):
        return ServingConfig(
            max_batch_size=64,
            instance_count=2,
            instance_kind="gpu",
            extra_parameters={**builder, **TORCH_GPU_PARAMETERS},
        )
    return ServingConfig(
        max_batch_size=64,
        instance_count=2,
        instance_kind="cpu",
        extra_parameters={**builder, "engine": "torch", "torch_device": "cpu"},
    )


def write_served_model(repository: Path, model: str, weights: Path, device: str) -> Path:
    """`repository/<model>`: config.pbtxt and model.py as the exporter writes them, and `weights`.

    The model keeps its catalog name, which is what the gateway routes by.
    """
    from deploylab.services.modelzoo.catalog import get_spec
    from deploylab.services.modelzoo.repository import write_model_files

    spec = get_spec(model)
    serving = served_serving(model, device)
    directory = write_model_files(repository, model, spec.input_size, spec.num_classes, serving)
    shutil.copy2(weights, directory / "1" / "model.pt")
    return directory


LOAD_PLAN_GPU: LoadPlan = [
    # transport, request batch, concurrency, client processes
    ("http", 1, 1, 1),
    ("http", 1, 16, 4),
    ("http", 1, 64, 8),
    ("http", 8, 1, 1),
    ("http", 8, 8, 4),
    ("http", 64, 1, 1),
    ("http", 64, 4, 4),
    ("http-shm", 64, 1, 1),
    ("http-shm", 64, 4, 4),
    ("http-shm", 1, 64, 8),
]
#: Through the gateway (KServe v2 binary, batch-1 requests): its points beside the direct ones above.
GATEWAY_PLAN_GPU: LoadPlan = [("http", 1, 1, 1), ("http", 1, 16, 4), ("http", 1, 64, 8), ("http", 8, 8, 4)]
LOAD_PLAN_DRY: LoadPlan = [("http", 1, 1, 1), ("http", 2, 2, 2), ("http-shm", 2, 1, 1)]
GATEWAY_PLAN_DRY: LoadPlan = [("http", 1, 1, 1), ("http", 1, 2, 1)]


def run_gateway(
    served: Served, repository: Path, work: Path, out: Path, plan: LoadPlan, seconds: float
) -> dict:
    """The gateway (one worker) in front of the served Triton, and the plan's points through it."""
    from deploylab.services.gateway.settings import GatewaySettings
    from deploylab.services.gateway.stack import GatewayProcess
    from deploylab.services.measure.ports import free_ports

    routing = work / "routing.yaml"
    routing.write_text("routes: []\n")  # no routes: the gateway serves Triton's models by their names
    (port,) = free_ports(1)
    triton = served.url.removeprefix("http://")
    concurrency = max(c for _, _, c, _ in plan)
    settings = GatewaySettings(
        port=port,
        workers=1,
        triton_url=triton,
        model_repository=repository,
        routing_file=routing,
        admission="static",
        max_inflight_per_model=max(64, 2 * concurrency),
        request_timeout_s=60.0,
    )
    gateway = GatewayProcess(settings, out / "gateway.log")
    gateway.start(ready_timeout_s=120.0)
    try:
        points = run_points(gateway.url, served.url, served.model, plan, seconds, "gateway")
        return {"workers": 1, "points": points}
    finally:
        gateway.stop()


def run_served(
    repository: Path,
    model: str,
    work: Path,
    out: Path,
    binary: Path | None,
    plans: tuple[LoadPlan, LoadPlan],
    seconds: float,
) -> dict[str, Any]:
    """Served direct, then through the gateway, on one server start; the gateway's failure is its own."""
    result: dict[str, Any] = {}
    started = time.perf_counter()
    with served_triton(repository, model, work, out, binary) as served:
        result["start_s"] = round(time.perf_counter() - started, 1)
        result["plan"] = served.server.plan.summary
        _check_client(served.url, model)
        result["points"] = run_points(served.url, served.url, model, plans[0], seconds, "direct")
        try:
            result["gateway"] = run_gateway(served, repository, work, out, plans[1], seconds)
        except Exception as exc:  # noqa: BLE001 - the direct numbers stand without it
            result["gateway"] = {"error": f"{type(exc).__name__}: {exc}"}
            log_line(f"  gateway failed: {type(exc).__name__}: {str(exc)[:500]}")
        result["memory"] = memory(served.server.pid)
        result["gpu_memory"] = _nvidia_smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader"])
    return result


def _check_client(url: str, model: str) -> None:
    """The benchmark's own client must get correct-shaped logits back, or the numbers mean nothing."""
    from deploylab.services.perf.client import make_client

    client = make_client("http", url, model)
    try:
        batch = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
        logits = client.infer(batch)
        if logits.shape != (2, 1000) or not np.isfinite(logits).all():
            raise RuntimeError(f"served logits have shape {logits.shape} or non-finite values")
    finally:
        client.close()


def memory(pid: int | None) -> dict[str, float]:
    """Resident memory of tritonserver and its backend stubs, MiB."""
    try:
        import psutil
    except ImportError:
        return {}
    if pid is None:
        return {}
    parent = psutil.Process(pid)
    children = parent.children(recursive=True)
    return {
        "tritonserver_rss_mib": round(parent.memory_info().rss / 2**20, 1),
        "stubs_rss_mib": round(sum(c.memory_info().rss for c in children) / 2**20, 1),
        "stub_processes": len(children),
    }


# -- facts and main -----------------------------------------------------------------------------


def _nvidia_smi(args: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    return ""


def facts(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["nvidia_smi"] = _nvidia_smi(
            [
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                "--format=csv,noheader",
            ]
        )
    for module in ("torchvision", "timm", "onnxruntime"):
        try:
            imported = __import__(module)
            info[module] = imported.__version__
            if module == "onnxruntime":
                info["onnxruntime_providers"] = imported.get_available_providers()
        except Exception as exc:  # noqa: BLE001 - a fact we could not read is recorded, not fatal
            info[module] = f"unavailable: {type(exc).__name__}"
    return info


def summarize(report: dict[str, Any]) -> str:
    """The summary table printed last: in-process rows, then served and gateway points with ratios."""
    lines = ["", "== summary =="]
    inproc = report.get("inprocess", [])
    if isinstance(inproc, dict):  # the step failed
        lines.append(f"in-process: FAILED {inproc.get('error', '')[:300]}")
        inproc = []
    best_engine = {r["batch"]: r["img_s"] for r in inproc if r["variant"].startswith("served engine")}
    for r in inproc:
        lines.append(
            f"in-process {r['variant']:<38} b={r['batch']:<3} {r['img_s']:>9} img/s  p50 {r['p50_ms']} ms"
        )
    served = report.get("served", {})
    if "error" in served:
        lines.append(f"served: FAILED {served['error'][:300]}")
    gateway = served.get("gateway", {})
    if "error" in gateway:
        lines.append(f"gateway: FAILED {gateway['error'][:300]}")
    for p in [*served.get("points", []), *gateway.get("points", [])]:
        ref = best_engine.get(p["batch_size"])
        ratio = f"{p['throughput_img_s'] / ref:.2f}x of engine at b={p['batch_size']}" if ref else ""
        where = f"{p.get('path', 'direct'):<7} {p['transport']:<8}"
        lines.append(
            f"{where} b={p['batch_size']:<3} c={p['concurrency']:<3} "
            f"{p['throughput_img_s']:>9} img/s p50 {p['p50_ms']} ms  "
            f"mean batch {p['server']['mean_executed_batch']}  {ratio}"
        )
    native = report.get("native", {})
    if "error" in native:
        lines.append(f"native: FAILED {native['error'][:300]}")
    for r in native.get("inprocess", []):
        lines.append(f"native in-process b={r['batch']:<3} {r['img_s']:>9} img/s  p50 {r['p50_ms']} ms")
    for p in native.get("points", []):
        lines.append(
            f"native  {p['transport']:<12} b={p['batch_size']:<3} c={p['concurrency']:<3} "
            f"{p['throughput_img_s']:>9} img/s p50 {p['p50_ms']} ms  "
            f"mean batch {p['server']['mean_executed_batch']}  errors {p['errors']}"
        )
    if native.get("served_over_inprocess") is not None:
        lines.append(f"native served ÷ in-process best: {native['served_over_inprocess']}")
    repvgg = report.get("repvgg", [])
    for r in repvgg if isinstance(repvgg, list) else []:
        lines.append(
            f"{r['model']} {r['form']:<6} {r['mode']:<30} b={r['batch']:<3} {r['img_s']:>9} img/s "
            f"p50 {r['p50_ms']} ms"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    device = args.device
    batches = [int(b) for b in args.batches.split(",")]
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args)}
    json_path = out / "gpu_check.json"

    def save() -> None:
        json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch sees no GPU (use --device cpu for a rehearsal)")
    report["facts"] = facts(device)
    log_line(json.dumps(report["facts"]))
    save()
    weights = work / "weights" / "1" / "model.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    bundle = Path(args.bundle) if args.bundle else None
    plans = (LOAD_PLAN_DRY, GATEWAY_PLAN_DRY) if args.dry_plan else (LOAD_PLAN_GPU, GATEWAY_PLAN_GPU)

    def served() -> dict[str, Any]:
        save_weights(args.model, weights)
        binary = unpack_bundle(bundle, work) if bundle is not None else None
        repository = work / "repo"
        write_served_model(repository, args.model, weights, device)
        return run_served(repository, args.model, work, out, binary, plans, args.load_seconds)

    def native() -> dict[str, Any]:
        from .gpu_native import run_native

        save_weights(args.model, weights)
        binary = unpack_bundle(bundle, work) if bundle is not None else None
        timing = (batches, args.seconds, args.load_seconds, args.dry_plan)
        return run_native(args.model, weights, work, out, binary, device, *timing)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("inprocess", lambda: run_inprocess(args.model, batches, args.seconds, device, weights)),
        (
            "repvgg",
            lambda: run_repvgg([int(b) for b in args.repvgg_batches.split(",")], args.repvgg_seconds, device),
        ),
        ("served", served),
        ("native", native),
    ]
    for name, step in steps:
        if name in args.skip:
            continue
        log_line(f"== {name} ==")
        started = time.perf_counter()
        try:
            report[name] = step()
        except Exception as exc:  # noqa: BLE001 - one failed step must not lose the others' numbers
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log_line(f"  {name} failed: {type(exc).__name__}: {str(exc)[:800]}")
        report.setdefault("step_seconds", {})[name] = round(time.perf_counter() - started, 1)
        save()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save()
    log_line(summarize(report))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="pack the wheel's tritonserver (on the development host)")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--python-versions", default="3.11,3.12")
    r = sub.add_parser("run", help="measure (on the GPU host)")
    r.add_argument("--bundle", default=None, help="prepared bundle (default: the installed wheel's server)")
    r.add_argument("--out", default=os.environ.get("OUT", "results/gpu"))
    r.add_argument("--work", default="/tmp/deploylab-gpu")
    r.add_argument("--device", default="cuda")
    r.add_argument("--model", default="resnet50")
    r.add_argument("--batches", default="1,8,64")
    r.add_argument("--seconds", type=float, default=2.0)
    r.add_argument("--repvgg-batches", default="1,8,64")
    r.add_argument("--repvgg-seconds", type=float, default=1.0)
    r.add_argument("--load-seconds", type=float, default=3.0)
    r.add_argument("--dry-plan", action="store_true", help="tiny load plans (a rehearsal on the CPU)")
    r.add_argument("--skip", default="", help="comma-separated steps to skip: inprocess,repvgg,served,native")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "prepare":
        prepare(Path(args.out), tuple(args.python_versions.split(",")))
        return 0
    args.skip = set(filter(None, args.skip.split(",")))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
