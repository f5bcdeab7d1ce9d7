"""The GPU check on a CPU host: its bundle is a server the runtime recognises, its served model is the one
the runtime's GPU plan serves GPU-blind, its summary reads every step, and `--kind` picks it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from deploylab.benchmarks import gpu_check
from deploylab.services.cli import app
from deploylab.services.modelzoo.repository import parse_triton_config
from deploylab.services.runtime import devices
from deploylab.services.runtime.devices import GpuFacts
from deploylab.services.runtime.gpu_plan import STUB_GPUS_ENV, model_configs, plan_gpu_serving
from deploylab.services.runtime.triton import pytriton_layout_root
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner

GPU_HOST = GpuFacts(gpus=("NVIDIA H100 80GB HBM3",), torch_cuda=True)
CPU_HOST = GpuFacts()


def _fake_wheel(site: Path) -> Path:
    """The files of an installed nvidia-pytriton, each holding its own name."""
    root = site / "pytriton"
    server = root / "tritonserver"
    files = [
        server / "bin" / "tritonserver",
        server / "backends" / "python" / "libtriton_python.so",
        server / "backends" / "python" / "triton_python_backend_utils.py",
        *(
            server / "python_backend_stubs" / v / "triton_python_backend_stub"
            for v in ("3.11", "3.12", "3.13")
        ),
        site / "nvidia_pytriton.libs" / "libtritonserver.so",
        site / "nvidia_pytriton.libs" / "libpython3.13.so.1.0",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    return root


def test_the_bundle_keeps_the_wheels_layout_so_the_runtime_runs_it_as_the_wheels_server(
    tmp_path: Path,
) -> None:
    root = _fake_wheel(tmp_path / "site")
    members = gpu_check.bundle_members(root, ("3.12",))
    names = {name for _, name in members}
    assert "pytriton/tritonserver/bin/tritonserver" in names
    assert "pytriton/tritonserver/python_backend_stubs/3.12/triton_python_backend_stub" in names
    assert not any("3.11" in name or "3.13" in name for name in names)  # only the stubs asked for
    assert "nvidia_pytriton.libs/libtritonserver.so" in names
    assert not any("libpython" in name for name in names)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with tarfile.open(bundle / gpu_check.BUNDLE_TAR, "w:xz") as tar:
        for source, name in members:
            tar.add(source, arcname=name)
    binary = gpu_check.unpack_bundle(bundle, tmp_path / "work")
    assert binary.read_text() == "tritonserver"
    assert pytriton_layout_root(binary) == tmp_path / "work" / "triton" / "pytriton"
    assert gpu_check.unpack_bundle(bundle, tmp_path / "work") == binary  # unpacked once


def test_the_served_model_asks_for_kind_gpu_torch_on_a_gpu_and_for_the_cpu_in_a_rehearsal() -> None:
    gpu = gpu_check.served_serving("resnet50", "cuda")
    assert gpu.instance_kind == "gpu" and gpu.max_batch_size == 64
    assert gpu.extra_parameters["engine"] == "torch"
    assert gpu.extra_parameters["torch_builder"] == "torchvision:resnet50"
    assert gpu.extra_parameters["torch_cuda_graphs"] == "1"
    cpu = gpu_check.served_serving("resnet50", "cpu")
    assert cpu.instance_kind == "cpu" and cpu.extra_parameters["torch_device"] == "cpu"


def test_the_written_model_is_what_the_runtimes_gpu_plan_serves_gpu_blind(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    repository = tmp_path / "repo"
    directory = gpu_check.write_served_model(repository, "resnet50", weights, "cuda")
    assert directory.name == "resnet50"  # the catalog name: what the gateway routes by
    assert (directory / "1" / "model.pt").read_bytes() == b"weights"
    assert (directory / "1" / "model.py").is_file()
    plan = plan_gpu_serving(
        model_configs(repository, ["resnet50"]), GPU_HOST, python_blind_on_gpu=True, environ={}
    )
    assert plan.blind and STUB_GPUS_ENV in plan.env
    served = parse_triton_config(plan.rewritten["resnet50"])
    assert served.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert served.parameters["torch_device"].string_value == "cuda"


def _point(path: str, batch: int, img_s: float) -> dict[str, object]:
    return {
        "path": path,
        "transport": "http",
        "batch_size": batch,
        "concurrency": 4,
        "throughput_img_s": img_s,
        "p50_ms": 2.0,
        "server": {"mean_executed_batch": 3.5},
    }


def test_the_summary_sets_served_and_gateway_points_against_the_engine_and_names_failures() -> None:
    report = {
        "inprocess": [
            {"variant": "served engine code, host numpy in/out", "batch": 1, "img_s": 1000.0, "p50_ms": 1.0}
        ],
        "served": {
            "points": [_point("direct", 1, 500.0)],
            "gateway": {"points": [_point("gateway", 1, 250.0)]},
        },
        "repvgg": {"error": "RuntimeError: out of memory"},
    }
    summary = gpu_check.summarize(report)
    assert "0.50x of engine at b=1" in summary and "0.25x of engine at b=1" in summary
    assert summary.count("gateway") == 1
    failed = gpu_check.summarize(
        {"inprocess": {"error": "x"}, "served": {"points": [], "gateway": {"error": "y"}}}
    )
    assert "in-process: FAILED x" in failed and "gateway: FAILED y" in failed


def test_run_defaults_to_the_installed_wheels_server_and_out_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUT", "/tmp/out-here")
    args = gpu_check.parser().parse_args(["run"])
    assert args.bundle is None and args.out == "/tmp/out-here" and args.device == "cuda"


runner = CliRunner()


def test_bench_on_a_gpu_runs_the_gpu_check_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "host_gpu", lambda: GPU_HOST)
    calls: list[list[str]] = []
    monkeypatch.setattr(gpu_check, "main", lambda argv: calls.append(argv) or 0)
    result = runner.invoke(app, ["bench", "--quick", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "instance kind gpu (auto: NVIDIA H100 80GB HBM3 with a CUDA build of torch)" in result.output
    (argv,) = calls
    assert argv[0] == "run" and "--skip" in argv and argv[argv.index("--out") + 1].startswith(str(tmp_path))


def test_bench_refuses_a_cpu_suite_when_the_kind_is_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "host_gpu", lambda: GPU_HOST)
    result = runner.invoke(app, ["bench", "--suite", "admission", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "--suite admission measures CPU deployments: add --kind cpu" in result.output


def test_bench_kind_is_checked_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "host_gpu", lambda: CPU_HOST)
    result = runner.invoke(app, ["bench", "--kind", "tpu", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--kind must be one of auto, cpu, gpu" in result.output
