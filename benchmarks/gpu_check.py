"""GPU check: ResNet-50 in-process vs served through Triton on one GPU; RepVGG train vs deploy on it.

Built to fit a short loan of a bare GPU host (no registry, no Docker, no deploylab install: the run
step needs the standard library, numpy and torch). Two stages:

    prepare (here):  python -m deploylab.benchmarks.gpu_check prepare --out .gpu
        packs the tritonserver of the nvidia-pytriton wheel (binary, libraries, Python backend, stubs),
        a numpy 1.x wheel for the backend stub (its pybind11 predates numpy 2), and model configs
        rendered by deploylab.services.modelzoo.repository with the torch engine on KIND_GPU instances.
    run (device):    python -m deploylab.benchmarks.gpu_check run --bundle .gpu --out $OUT
        1. facts: GPU, driver, torch/CUDA/cuDNN, timm, torchvision, ONNX Runtime providers;
        2. in-process ResNet-50 at batch 1/8/64: fp32 eager, fp16+channels_last eager, + CUDA graphs
           (device-resident tensors), and the served engine's own code from host numpy in and out;
        3. RepVGG A0/A1 train vs deploy, fp16+channels_last, eager and CUDA graphs;
        4. served: tritonserver with the Python backend running the *same* engine class on the GPU,
           started by services/runtime's launcher (`TritonServer` on the bundle's `TritonInstall`,
           GPU-blind first), closed-loop clients over binary HTTP and system shared memory,
           executed-batch statistics;
        5. JSON to --out, and a summary table printed last.

The served engine is `services/modelzoo/triton_python_model.py`'s `_TorchEngine`; in-process step 2
imports that very class, so the served ÷ in-process ratio measures the serving path alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from deploylab.services.perf.client import Transport
    from deploylab.services.runtime.triton import TritonInstall, TritonServer

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLE_TAR = "triton.tar.xz"
REPOSITORY_DIR = "repository"
STUB_NUMPY = "numpy-1.26.4"
SERVED_MODEL = "resnet50_torch"
#: The served model on the CPU (fp32, no CUDA graphs): the served step of a rehearsal without a GPU.
CPU_CONFIG = "config.cpu.pbtxt"


# -- prepare (CPU host) -------------------------------------------------------------------------


def prepare(out: Path, python_versions: tuple[str, ...], numpy_wheel_dir: Path | None) -> None:
    """Write the bundle the device run needs into `out` (ignored by git; carried with the call)."""
    out.mkdir(parents=True, exist_ok=True)
    _pack_triton(out / BUNDLE_TAR, python_versions)
    _render_repository(out / REPOSITORY_DIR)
    wheels = out / "wheels"
    wheels.mkdir(exist_ok=True)
    if not list(wheels.glob(f"{STUB_NUMPY}-*.whl")):
        if numpy_wheel_dir and list(numpy_wheel_dir.glob(f"{STUB_NUMPY}-*.whl")):
            for wheel in numpy_wheel_dir.glob(f"{STUB_NUMPY}-*.whl"):
                shutil.copy2(wheel, wheels)
        else:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(wheels), STUB_NUMPY.replace("-", "=="),
                ],
                check=True,
            )  # fmt: skip
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"bundle ready in {out}: {size / 2**20:.1f} MiB")


def _pack_triton(target: Path, python_versions: tuple[str, ...]) -> None:
    from importlib.util import find_spec

    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nvidia-pytriton is not installed here: `make install` first")
    root = Path(next(iter(spec.submodule_search_locations)))
    server = root / "tritonserver"
    libs = root.parent / "nvidia_pytriton.libs"
    members: list[tuple[Path, str]] = [(server / "bin" / "tritonserver", "bin/tritonserver")]
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        members.append((server / "backends" / "python" / name, f"backends/python/{name}"))
    for version in python_versions:
        stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
        members.append((stub, f"stubs/{version}/triton_python_backend_stub"))
    # The bundled libpython 3.13 serves only the 3.13 stub: leave its 31 MB behind.
    members += [
        (lib, f"libs/{lib.name}") for lib in sorted(libs.iterdir()) if not lib.name.startswith("libpython")
    ]
    if target.exists() and target.stat().st_mtime > max(src.stat().st_mtime for src, _ in members):
        return
    print(f"packing tritonserver ({len(members)} files) → {target} …")
    with tarfile.open(target, "w:xz", preset=6) as tar:
        for source, name in members:
            tar.add(source, arcname=name)


def _render_repository(directory: Path) -> None:
    """config.pbtxt for the served GPU model (KIND_GPU, and a KIND_CPU + cuda fallback) + model.py,
    and config.cpu.pbtxt, the same engine on the CPU, for a rehearsal with `run --device cpu`."""
    from deploylab.services.modelzoo.repository import ServingConfig, render_triton_config

    torch_params = {
        "engine": "torch",
        "torch_builder": "torchvision:resnet50",
        "torch_precision": "fp16",
        "torch_channels_last": "1",
        "torch_cuda_graphs": "1",
    }
    model_dir = directory / SERVED_MODEL
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    gpu = ServingConfig(
        max_batch_size=64, instance_count=2, instance_kind="gpu", extra_parameters=torch_params
    )
    cpu_kind = ServingConfig(
        max_batch_size=64,
        instance_count=2,
        instance_kind="cpu",
        extra_parameters={**torch_params, "torch_device": "cuda"},
    )
    gpu_out = ServingConfig(
        max_batch_size=64,
        instance_count=2,
        instance_kind="gpu",
        extra_parameters={**torch_params, "torch_output_device": "cuda"},
    )
    blind = ServingConfig(
        max_batch_size=64,
        instance_count=2,
        instance_kind="cpu",
        extra_parameters={**torch_params, "torch_device": "cuda", "torch_cuda_visible_devices": "0"},
    )
    configs = {"config.pbtxt": gpu, "config.cpu-kind.pbtxt": cpu_kind, "config.gpu-out.pbtxt": gpu_out}
    configs["config.blind.pbtxt"] = blind
    configs[CPU_CONFIG] = ServingConfig(
        max_batch_size=64,
        instance_count=2,
        instance_kind="cpu",
        extra_parameters={"engine": "torch", "torch_builder": "torchvision:resnet50", "torch_device": "cpu"},
    )
    for filename, serving in configs.items():
        (model_dir / filename).write_text(render_triton_config(SERVED_MODEL, 224, 1000, serving))
    shutil.copy2(REPO_ROOT / "services" / "modelzoo" / "triton_python_model.py", model_dir / "1" / "model.py")


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
    samples = []
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


def measure_host_calls(fn: Callable[[], object], batch: int, seconds: float) -> dict[str, float]:
    """For calls that already end synchronised (numpy out): per-call timings give both numbers."""
    for _ in range(3):
        fn()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    total = sum(samples)
    return {
        "batch": batch,
        "img_s": round(batch * len(samples) / total, 1),
        "p50_ms": round(float(np.median(samples)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(samples, 99)) * 1e3, 3),
        "iterations": len(samples),
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
                    **measure_device_loop(lambda m=fp32, x=x32: m(x), b, seconds, device),
                }
            )
            rows.append(
                {
                    "variant": "eager fp16 channels_last",
                    **measure_device_loop(lambda m=fp16, x=x16: m(x), b, seconds, device),
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
        _log(
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
            **measure_host_calls(lambda h=host, e=engine: e.run(h), b, seconds),
        }
        rows.append(row)
        _log(f"  in-process engine b={b}: {row['img_s']} img/s p50 {row['p50_ms']} ms")
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
                    eager = measure_device_loop(lambda m=model, x=x: m(x), b, seconds, device)
                rows.append({"model": name, "form": variant, "mode": "eager fp16 channels_last", **eager})
                if device.startswith("cuda"):
                    graph = measure_device_loop(_graphed(model, x), b, seconds, device)
                    rows.append(
                        {"model": name, "form": variant, "mode": "cuda graph fp16 channels_last", **graph}
                    )
                _log(f"  {name} {variant} b={b}: eager {eager['img_s']} img/s")
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return rows


def _half(device: str) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


# -- served -------------------------------------------------------------------------------------


def find_libpython() -> Path | None:
    """libpython of this interpreter (the backend stub links to it), or None."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    names = [f"libpython{version}.so.1.0", f"libpython{version}.so"]
    dirs = [
        sysconfig.get_config_var("LIBDIR") or "",
        os.path.join(sys.base_prefix, "lib"),
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    ]
    for directory in dirs:
        for name in names:
            path = Path(directory) / name
            if path.is_file():
                return path
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
        for line in listing.splitlines():
            if f"libpython{version}.so" in line and "=>" in line:
                return Path(line.split("=>")[1].strip())
    return None


def bundle_install(bundle: Path, work: Path, libpython: Path, stub_site: Path | None) -> TritonInstall:
    """The bundle's tritonserver unpacked under `work`, its Python backend prepared for this interpreter,
    and the environment the backend stub needs on a host where deploylab's venv does not exist."""
    from deploylab.services.runtime.triton import TritonInstall, prepare_python_backend

    root = work / "triton"
    if not (root / "bin" / "tritonserver").is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(bundle / BUNDLE_TAR) as tar:
            tar.extractall(root, filter="fully_trusted")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeError(f"bundle has no Python backend stub for Python {version}")
    backend_files = [
        root / "backends" / "python" / name
        for name in ("libtriton_python.so", "triton_python_backend_utils.py")
    ]
    prepare_python_backend(work / "backends", backend_files, stub)
    env = dict(os.environ)
    lib_dirs = [str(root / "libs"), str(libpython.parent)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*lib_dirs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    paths = sysconfig.get_paths()
    site_dirs = [str(stub_site)] if stub_site else []
    site_dirs += list(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    env["PYTHONPATH"] = os.pathsep.join(site_dirs)
    env["PYTHONHOME"] = sys.base_prefix
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return TritonInstall(root / "bin" / "tritonserver", work / "backends", env)


@dataclass
class Served:
    """A ready tritonserver on the bundle's repository, and how it got there."""

    server: TritonServer
    url: str
    config_used: str = ""
    probes: dict[str, Any] = field(default_factory=dict)


def quiet(url: str) -> None:
    """Verbose logging off (Triton's logging extension), so the log does not slow the loads."""
    request = urllib.request.Request(
        f"{url}/v2/logging",
        data=json.dumps({"log_verbose_level": 0}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10):
        pass


def log_tail(log: Path, lines: int = 15) -> str:
    """The log's error lines (Triton prefixes them with E), else its last lines."""
    with contextlib.suppress(OSError):
        text = log.read_text(errors="replace").splitlines()
        errors = [line for line in text if line.startswith("E") or "error" in line.lower()]
        return " | ".join(line[:400] for line in (errors or text)[-lines:])
    return "(no log)"


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


def _stub_site(bundle: Path, work: Path) -> Path | None:
    """numpy 1.x for the backend stub when this interpreter has numpy 2 (the stub's pybind11 is older)."""
    if int(np.__version__.split(".")[0]) < 2:
        return None
    target = work / "stub-site"
    if not (target / "numpy").is_dir():
        wheels = sorted((bundle / "wheels").glob(f"{STUB_NUMPY}-*.whl"))
        if not wheels:
            raise RuntimeError("numpy>=2 here and no numpy 1.x wheel in the bundle for the backend stub")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--target",
                str(target),
                str(wheels[0]),
            ],
            check=True,
        )
    return target


@contextlib.contextmanager
def served_triton(
    bundle: Path,
    work: Path,
    weights: Path,
    out: Path,
    builder: str,
    extra_attempts: bool = False,
    device: str = "cuda",
) -> Iterator[Served]:
    """Start Triton on the prepared repository; retry with KIND_CPU instances (+ torch on cuda) if the
    KIND_GPU config does not load. On `device` cpu, the CPU config alone (a rehearsal)."""
    from deploylab.services.measure.ports import free_ports
    from deploylab.services.runtime.triton import TritonOptions, TritonServer

    libpython = find_libpython()
    if libpython is None:
        raise RuntimeError(
            f"libpython{sys.version_info.major}.{sys.version_info.minor}.so not found: the stub needs it"
        )
    source = bundle / REPOSITORY_DIR / SERVED_MODEL
    repository = work / "repo"
    model_dir = repository / SERVED_MODEL
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "1" / "model.py", model_dir / "1" / "model.py")
    shutil.copy2(weights, model_dir / "1" / "model.pt")
    # The stub's pybind11 predates numpy 2: try this host's numpy first (torch was built for it), then
    # numpy 1.x from the bundle; KIND_GPU instances first, then KIND_CPU instances running torch on cuda.
    # Measured on an H200 host: with the GPU visible to tritonserver, every CPU output of the Python
    # backend reached the HTTP frontend as 0 bytes (KIND_GPU or KIND_CPU, numpy 1 or 2). So first a
    # GPU-blind tritonserver whose KIND_CPU instances re-enable the GPU for torch, then GPU outputs.
    attempts: list[tuple[str, Path | None, bool]] = [
        ("config.blind.pbtxt", None, False),
        ("config.gpu-out.pbtxt", None, True),
    ]
    if extra_attempts:
        numpy1 = _stub_site(bundle, work) if int(np.__version__.split(".")[0]) >= 2 else None
        attempts += [("config.pbtxt", None, True), ("config.cpu-kind.pbtxt", numpy1, True)]
    if not device.startswith("cuda"):
        if not (source / CPU_CONFIG).is_file():
            raise RuntimeError(f"the bundle has no {CPU_CONFIG}: run `gpu_check prepare` again")
        attempts = [(CPU_CONFIG, None, True)]
    last_error = ""
    for config_name, env_site, gpu_visible in attempts:
        numpy_label = "bundled 1.x" if env_site else np.__version__
        label = f"{config_name} numpy={numpy_label} gpu_visible={gpu_visible}"
        text = (source / config_name).read_text().replace("torchvision:resnet50", builder)
        (model_dir / "config.pbtxt").write_text(text)
        http, grpc, metrics = free_ports(3)
        options = TritonOptions(
            model_repository=repository,
            state_dir=work,
            triton_http_port=http,
            triton_grpc_port=grpc,
            triton_metrics_port=metrics,
            triton_startup_timeout_s=240.0,
            triton_log_verbose=1,  # for the probes; turned down through the logging API before any load
            triton_python_shm_mb=256,
        )
        server = TritonServer(
            options,
            models=[SERVED_MODEL],
            log_path=out / "triton.log",
            install=bundle_install(bundle, work, libpython, env_site),
            gpu_visible=gpu_visible,
            gpu_metrics=False,
        )
        served = Served(server, options.triton_http_url)
        try:
            server.start()
            served.probes[label] = probe_raw(served.url)
            _log(f"  probe {label}: {json.dumps(served.probes[label])[:1000]}")
            _check_client(served.url)
            quiet(served.url)
        except Exception as exc:  # noqa: BLE001 - try the next config, keep the reason
            last_error = f"{type(exc).__name__}: {exc}"
            _log(f"  served with {label} failed: {last_error[:500]}")
            server.stop()
            continue
        served.config_used = label
        try:
            yield served
        finally:
            server.stop()
        return
    raise RuntimeError(last_error)


LoadPlan = list[tuple["Transport", int, int, int]]
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
LOAD_PLAN_DRY: LoadPlan = [
    ("http", 1, 1, 1),
    ("http", 2, 2, 2),
    ("http-shm", 2, 1, 1),
]


def run_served(
    bundle: Path,
    work: Path,
    weights: Path,
    out: Path,
    builder: str,
    plan: LoadPlan,
    seconds: float,
    device: str = "cuda",
) -> dict[str, Any]:
    from deploylab.services.perf.load import LoadTarget, run_load
    from deploylab.services.perf.triton_admin import model_statistics

    result: dict[str, Any] = {"points": []}
    save_weights(builder.partition(":")[2], weights)
    started = time.perf_counter()
    with served_triton(bundle, work, weights, out, builder, device=device) as served:
        result["start_s"] = round(time.perf_counter() - started, 1)
        result["config"] = served.config_used
        result["log_lines"] = [
            line
            for line in log_tail(served.server.log_path, 40).split(" | ")
            if "torch" in line or "error" in line.lower()
        ]
        result["probes"] = served.probes
        for transport, batch, concurrency, processes in plan:
            target = LoadTarget(
                transport, served.url, SERVED_MODEL, batch_size=batch, max_batch=max(batch, 64)
            )  # type: ignore[arg-type]
            before = model_statistics(served.url, SERVED_MODEL)
            load = run_load(target, concurrency, seconds, processes=processes)
            stats = model_statistics(served.url, SERVED_MODEL) - before
            row = {**load.as_dict(), "processes": processes, "server": stats.as_dict()}
            result["points"].append(row)
            _log(
                f"  served {transport} b={batch} c={concurrency}: {load.throughput_img_s} img/s "
                f"p50 {load.p50_ms} ms mean executed batch {stats.mean_executed_batch:.1f} "
                f"errors {load.errors} {load.first_error or ''}"
            )
        result["memory"] = memory(served.server.pid)
        result["gpu_memory"] = _nvidia_smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader"])
    return result


def _check_client(url: str) -> None:
    """The benchmark's own client must get correct-shaped logits back, or the config is unusable."""
    from deploylab.services.perf.client import make_client

    client = make_client("http", url, SERVED_MODEL)
    try:
        batch = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
        logits = client.infer(batch)
        if logits.shape != (2, 1000) or not np.isfinite(logits).all():
            raise RuntimeError(f"served logits have shape {logits.shape} or non-finite values")
    finally:
        client.close()


def probe_raw(url: str) -> dict[str, Any]:
    """One binary-extension and one JSON inference, recorded byte for byte (diagnosis on a bare host)."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    probe = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    record: dict[str, Any] = {}
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 3, 224, 224],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": probe.nbytes},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    for label, body, headers in (
        (
            "binary",
            header + probe.tobytes(),
            {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
        ),
        (
            "json",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 3, 224, 224],
                            "datatype": "FP32",
                            "data": probe[:1].ravel().tolist(),
                        }
                    ]
                }
            ).encode(),
            {"Content-Type": "application/json"},
        ),
    ):
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request("POST", f"/v2/models/{SERVED_MODEL}/infer", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            record[label] = {
                "status": response.status,
                "headers": dict(response.headers),
                "body_bytes": len(data),
                "body_head": data[:400].decode(errors="replace"),
            }
            connection.close()
        except Exception as exc:  # noqa: BLE001 - diagnosis must not stop the run
            record[label] = {"error": f"{type(exc).__name__}: {exc}"}
    return record


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


def _log(message: str) -> None:
    print(message, flush=True)


def summarize(report: dict[str, Any]) -> str:
    lines = ["", "== summary =="]
    inproc = report.get("inprocess", [])
    best_engine = {r["batch"]: r["img_s"] for r in inproc if r["variant"].startswith("served engine")}
    for r in inproc:
        lines.append(
            f"in-process {r['variant']:<38} b={r['batch']:<3} {r['img_s']:>9} img/s  p50 {r['p50_ms']} ms"
        )
    served = report.get("served", {})
    if "error" in served:
        lines.append(f"served: FAILED {served['error'][:300]}")
    for p in served.get("points", []):
        ref = best_engine.get(p["batch_size"])
        ratio = f"{p['throughput_img_s'] / ref:.2f}x of engine at b={p['batch_size']}" if ref else ""
        lines.append(
            f"served {p['transport']:<8} b={p['batch_size']:<3} c={p['concurrency']:<3} "
            f"{p['throughput_img_s']:>9} img/s p50 {p['p50_ms']} ms  "
            f"mean batch {p['server']['mean_executed_batch']}  {ratio}"
        )
    for r in report.get("repvgg", []):
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
            raise SystemExit("--device cuda but torch sees no GPU (use --device cpu for a dry run)")
    report["facts"] = facts(device)
    _log(json.dumps(report["facts"]))
    save()
    weights = work / "weights" / "1" / "model.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("inprocess", lambda: run_inprocess(args.model, batches, args.seconds, device, weights)),
        (
            "repvgg",
            lambda: run_repvgg([int(b) for b in args.repvgg_batches.split(",")], args.repvgg_seconds, device),
        ),
        (
            "served",
            lambda: run_served(
                Path(args.bundle),
                work,
                weights,
                out,
                f"torchvision:{args.model}",
                LOAD_PLAN_DRY if args.dry_plan else LOAD_PLAN_GPU,
                args.load_seconds,
                device,
            ),
        ),
    ]
    for name, step in steps:
        if name in args.skip:
            continue
        _log(f"== {name} ==")
        started = time.perf_counter()
        try:
            report[name] = step()
        except Exception as exc:  # noqa: BLE001 - one failed step must not lose the others' numbers
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            _log(f"  {name} failed: {type(exc).__name__}: {str(exc)[:800]}")
        report.setdefault("step_seconds", {})[name] = round(time.perf_counter() - started, 1)
        save()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    save()
    _log(summarize(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="pack the bundle (on the CPU host)")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--python-versions", default="3.11,3.12")
    p.add_argument("--numpy-wheel-dir", default=None)
    r = sub.add_parser("run", help="measure (on the GPU host)")
    r.add_argument("--bundle", default=".gpu")
    r.add_argument("--out", default=os.environ.get("OUT", "results/gpu"))
    r.add_argument("--work", default="/tmp/deploylab-gpu")
    r.add_argument("--device", default="cuda")
    r.add_argument("--model", default="resnet50")
    r.add_argument("--batches", default="1,8,64")
    r.add_argument("--seconds", type=float, default=2.0)
    r.add_argument("--repvgg-batches", default="1,8,64")
    r.add_argument("--repvgg-seconds", type=float, default=1.0)
    r.add_argument("--load-seconds", type=float, default=3.0)
    r.add_argument("--dry-plan", action="store_true", help="tiny load plan (CPU dry run)")
    r.add_argument("--skip", default="", help="comma-separated steps to skip: inprocess,repvgg,served")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        numpy_dir = Path(args.numpy_wheel_dir) if args.numpy_wheel_dir else None
        prepare(Path(args.out), tuple(args.python_versions.split(",")), numpy_dir)
        return 0
    args.skip = set(filter(None, args.skip.split(",")))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
