"""The runtime on GPU hosts, checked on a CPU host: detection, `--kind auto`, the serving plan (GPU-blind
server, rewritten configs, the stubs' GPUs) and every refusal, with fake driver files and fake facts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from deploylab.services.common.errors import TritonError
from deploylab.services.modelzoo.repository import (
    ServingConfig,
    parse_triton_config,
    render_triton_config,
)
from deploylab.services.runtime import devices, triton
from deploylab.services.runtime.devices import GpuFacts, detect_gpu, resolve_instance_kind
from deploylab.services.runtime.gpu_plan import (
    ALL_GPUS,
    STUB_GPUS_ENV,
    blind_config,
    gpu_ask,
    model_configs,
    plan_gpu_serving,
    write_repository_view,
)
from deploylab.services.runtime.triton import (
    STUB_WRAPPER,
    TritonInstall,
    TritonOptions,
    TritonServer,
    prepare_python_backend,
    pytriton_layout_root,
)
from tritonclient.grpc import model_config_pb2 as mc

H100 = "NVIDIA H100 80GB HBM3"
GPU_HOST = GpuFacts(gpus=(H100,), onnxruntime_cuda=True, onnxruntime_version="1.31.1", torch_cuda=True)
CPU_HOST = GpuFacts(onnxruntime_version="1.31.1")


def _model(repository: Path, name: str, **serving: object) -> Path:
    directory = repository / name
    (directory / "1").mkdir(parents=True)
    (directory / "1" / "model.onnx").write_bytes(b"onnx")
    (directory / "manifest.json").write_text("{}")
    (directory / "config.pbtxt").write_text(render_triton_config(name, 224, 1000, ServingConfig(**serving)))  # type: ignore[arg-type]
    return directory


def _plan(repository: Path, facts: GpuFacts, environ: dict[str, str] | None = None, blind: bool = True):  # type: ignore[no-untyped-def]
    return plan_gpu_serving(
        model_configs(repository, None), facts, python_blind_on_gpu=blind, environ=environ or {}
    )


# -- detection -----------------------------------------------------------------------------------


def _fake_proc(tmp_path: Path, *models: str) -> Path:
    proc = tmp_path / "proc-nvidia"
    for index, model in enumerate(models):
        gpu = proc / "gpus" / f"0000:{index:02x}:00.0"
        gpu.mkdir(parents=True)
        (gpu / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\nGPU UUID: GPU-{index}\n")
    proc.mkdir(exist_ok=True)
    return proc


def _no_smi(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    raise AssertionError("nvidia-smi must not run when the driver's files name the GPUs")


def test_detect_gpu_reads_gpu_names_from_the_drivers_proc_files(tmp_path: Path) -> None:
    facts = detect_gpu(environ={}, proc=_fake_proc(tmp_path, H100, H100), run=_no_smi)
    assert facts.gpus == (H100, H100)
    assert facts.visible and facts.summary == f"2 x {H100}"


def test_detect_gpu_falls_back_to_nvidia_smi_when_proc_has_no_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    calls: list[list[str]] = []

    def smi(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        listing = f"GPU 0: {H100} (UUID: GPU-1234)\n"
        return subprocess.CompletedProcess(args, 0, stdout=listing, stderr="")

    facts = detect_gpu(environ={}, proc=tmp_path / "absent", run=smi)
    assert calls == [["nvidia-smi", "-L"]]
    assert facts.gpus == (H100,)


def test_detect_gpu_finds_nothing_on_a_host_without_driver_or_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    facts = detect_gpu(environ={}, proc=tmp_path / "absent", run=_no_smi)
    assert facts.gpus == () and not facts.visible and facts.summary == "no NVIDIA GPU"


@pytest.mark.parametrize("value", ["", "-1", " ", "-1,0"])
def test_cuda_visible_devices_that_hide_every_gpu_make_it_invisible(tmp_path: Path, value: str) -> None:
    facts = detect_gpu(environ={"CUDA_VISIBLE_DEVICES": value}, proc=_fake_proc(tmp_path, H100), run=_no_smi)
    assert facts.hidden_by == value and not facts.visible


def test_a_cuda_visible_devices_list_keeps_the_gpu_visible(tmp_path: Path) -> None:
    facts = detect_gpu(environ={"CUDA_VISIBLE_DEVICES": "0"}, proc=_fake_proc(tmp_path, H100), run=_no_smi)
    assert facts.visible


def test_detect_gpu_reads_cuda_support_from_package_files_without_importing_them(tmp_path: Path) -> None:
    # This venv's onnxruntime is the CPU wheel; neither it nor torch is imported to know what they offer.
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from deploylab.services.runtime.devices import detect_gpu
        facts = detect_gpu(environ={}, proc=Path(sys.argv[1]))
        assert "torch" not in sys.modules and "onnxruntime" not in sys.modules, sorted(sys.modules)
        print(facts.onnxruntime_cuda, facts.torch_cuda, facts.onnxruntime_version)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "absent")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    ort_cuda, torch_cuda, version = done.stdout.split()
    assert ort_cuda == "False" and version[0].isdigit()
    expected = devices._package_file("torch", "lib", devices.TORCH_CUDA_LIBRARY) is not None
    assert torch_cuda == str(expected)


# -- --kind auto ----------------------------------------------------------------------------------


def test_auto_is_cpu_on_a_host_without_gpu() -> None:
    assert resolve_instance_kind("auto", CPU_HOST) == ("cpu", "auto: no NVIDIA GPU found")


def test_auto_is_gpu_where_a_gpu_and_onnx_runtimes_cuda_provider_are_there() -> None:
    kind, reason = resolve_instance_kind("auto", GPU_HOST)
    assert kind == "gpu" and H100 in reason and "CUDA execution provider" in reason


def test_auto_stays_cpu_when_onnx_runtime_has_no_cuda_provider_and_says_what_to_install() -> None:
    facts = GpuFacts(gpus=(H100,), onnxruntime_version="1.31.1", torch_cuda=True)
    kind, reason = resolve_instance_kind("auto", facts)
    assert kind == "cpu"
    assert "onnxruntime 1.31.1 here has no CUDA execution provider" in reason
    assert "onnxruntime-gpu==1.31.1" in reason


def test_auto_for_the_torch_engine_asks_torch_for_cuda_not_onnx_runtime() -> None:
    facts = GpuFacts(gpus=(H100,), torch_cuda=True)
    assert resolve_instance_kind("auto", facts, engine="torch") == (
        "gpu",
        f"auto: {H100} with a CUDA build of torch",
    )
    kind, reason = resolve_instance_kind("auto", GpuFacts(gpus=(H100,)), engine="torch")
    assert kind == "cpu" and "torch here is not a CUDA build" in reason


def test_auto_stays_cpu_when_cuda_visible_devices_hides_the_gpu() -> None:
    facts = GpuFacts(gpus=(H100,), hidden_by="", onnxruntime_cuda=True)
    assert resolve_instance_kind("auto", facts) == ("cpu", f"auto: {H100} hidden by CUDA_VISIBLE_DEVICES=''")


def test_an_explicit_kind_is_kept_and_gpu_without_a_gpu_says_where_to_serve_it() -> None:
    assert resolve_instance_kind("cpu", GPU_HOST) == ("cpu", "as asked")
    kind, reason = resolve_instance_kind("gpu", CPU_HOST)
    assert kind == "gpu" and "no visible NVIDIA GPU" in reason


def test_an_unknown_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, cpu, gpu"):
        resolve_instance_kind("tpu", CPU_HOST)


def test_kind_message_is_one_line() -> None:
    line = devices.kind_message(*resolve_instance_kind("auto", CPU_HOST))
    assert line == "instance kind cpu (auto: no NVIDIA GPU found)" and "\n" not in line


# -- the serving plan: CPU hosts ----------------------------------------------------------------


def test_a_cpu_repository_on_a_cpu_host_changes_nothing_and_parses_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _model(tmp_path, "resnet50")
    _model(tmp_path, "mobilenet_v3_small", backend="deploylab_ort")
    monkeypatch.setattr(
        "deploylab.services.modelzoo.repository.parse_triton_config",
        lambda text: pytest.fail("a CPU config was parsed on a CPU host"),
    )
    plan = _plan(tmp_path, CPU_HOST)
    assert plan.changes_nothing and not plan.blind


def test_a_gpu_model_on_a_host_without_gpu_is_refused_with_the_export_to_run(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    with pytest.raises(TritonError) as refused:
        _plan(tmp_path, CPU_HOST)
    message = str(refused.value)
    assert "model resnet50 asks for a GPU (KIND_GPU instances) but this host has no NVIDIA GPU" in message
    assert "deploylab export resnet50 --kind cpu --force" in message


def test_a_gpu_model_is_refused_when_cuda_visible_devices_hides_the_gpu(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    hidden = GpuFacts(gpus=(H100,), hidden_by="", onnxruntime_cuda=True)
    with pytest.raises(TritonError, match=r"CUDA_VISIBLE_DEVICES='' hides NVIDIA H100"):
        _plan(tmp_path, hidden)


def test_a_cpu_instance_asking_for_the_cuda_provider_counts_as_asking_for_a_gpu(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", extra_parameters={"execution_provider": "cuda"})
    with pytest.raises(TritonError, match=r"asks for a GPU \(execution_provider cuda\)"):
        _plan(tmp_path, CPU_HOST)


def test_only_the_chosen_models_are_judged(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    _model(tmp_path, "mobilenet_v3_small")
    plan = plan_gpu_serving(
        model_configs(tmp_path, ["mobilenet_v3_small"]), CPU_HOST, python_blind_on_gpu=True, environ={}
    )
    assert plan.changes_nothing


# -- the serving plan: GPU hosts ----------------------------------------------------------------


def test_python_models_on_a_gpu_host_get_a_gpu_blind_server_even_on_the_cpu(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50")
    plan = _plan(tmp_path, GPU_HOST)
    assert plan.blind and plan.env == {"CUDA_VISIBLE_DEVICES": ""} and plan.rewritten == {}


def test_a_python_gpu_model_is_served_from_cpu_instances_on_cuda_and_its_stubs_get_the_gpus(
    tmp_path: Path,
) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu", instance_count=2)
    plan = _plan(tmp_path, GPU_HOST, environ={"CUDA_VISIBLE_DEVICES": "1"})
    assert plan.blind
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "", STUB_GPUS_ENV: "1"}
    served = parse_triton_config(plan.rewritten["resnet50"])
    assert [(g.kind, g.count) for g in served.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 2)]
    assert served.parameters["execution_provider"].string_value == "cuda"
    assert "resnet50" in plan.summary and "GPU-blind" in plan.summary


def test_the_stubs_get_every_gpu_when_cuda_visible_devices_was_not_set(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    assert _plan(tmp_path, GPU_HOST, environ={}).env[STUB_GPUS_ENV] == ALL_GPUS


def test_a_system_triton_serves_python_models_with_the_gpu_visible(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    plan = _plan(tmp_path, GPU_HOST, blind=False)
    assert not plan.blind and plan.changes_nothing


def test_an_onnx_runtime_engine_without_cuda_provider_is_refused_before_it_falls_back_to_cpu(
    tmp_path: Path,
) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu")
    facts = GpuFacts(gpus=(H100,), onnxruntime_version="1.31.1", torch_cuda=True)
    with pytest.raises(TritonError) as refused:
        _plan(tmp_path, facts)
    assert "onnxruntime 1.31.1 here has no CUDA execution provider" in str(refused.value)
    assert "install onnxruntime-gpu==1.31.1" in str(refused.value)


def test_a_torch_engine_without_a_cuda_build_of_torch_is_refused(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", instance_kind="gpu", extra_parameters={"engine": "torch"})
    facts = GpuFacts(gpus=(H100,), onnxruntime_cuda=True)
    with pytest.raises(TritonError, match="torch here is not a CUDA build"):
        _plan(tmp_path, facts)


def test_deploylab_ort_on_the_gpu_needs_onnx_runtimes_cuda_provider(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", backend="deploylab_ort", extra_parameters={"execution_provider": "cuda"})
    facts = GpuFacts(gpus=(H100,), onnxruntime_version="1.31.1", torch_cuda=True)
    with pytest.raises(TritonError, match="deploylab_ort links the ONNX Runtime of the onnxruntime 1.31.1"):
        _plan(tmp_path, facts)


def test_deploylab_ort_alone_on_the_gpu_keeps_the_gpu_visible(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", backend="deploylab_ort", extra_parameters={"execution_provider": "cuda"})
    plan = _plan(tmp_path, GPU_HOST)
    assert not plan.blind and not plan.env


def test_deploylab_ort_on_the_gpu_beside_python_models_is_refused_with_the_way_out(tmp_path: Path) -> None:
    _model(tmp_path, "resnet50", backend="deploylab_ort", extra_parameters={"execution_provider": "cuda"})
    _model(tmp_path, "mobilenet_v3_small")
    with pytest.raises(TritonError) as refused:
        _plan(tmp_path, GPU_HOST)
    message = str(refused.value)
    assert "model resnet50 (backend deploylab_ort)" in message
    assert "(mobilenet_v3_small) need a GPU-blind one" in message and "two servers" in message


# -- configs for a GPU-blind server ---------------------------------------------------------------


def _config(**serving: object) -> mc.ModelConfig:
    return parse_triton_config(render_triton_config("m", 224, 1000, ServingConfig(**serving)))  # type: ignore[arg-type]


def test_blind_config_puts_the_torch_engine_on_cuda_and_drops_gpu_placement() -> None:
    config = _config(instance_kind="gpu", extra_parameters={"engine": "torch"})
    config.instance_group[0].gpus.extend([0, 1])
    served = blind_config(config)
    assert served.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert list(served.instance_group[0].gpus) == []
    assert served.parameters["torch_device"].string_value == "cuda"
    assert "execution_provider" not in served.parameters
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU  # the original is untouched


def test_blind_config_keeps_a_tensorrt_provider_the_config_asked_for() -> None:
    served = blind_config(_config(instance_kind="gpu", extra_parameters={"execution_provider": "tensorrt"}))
    assert served.parameters["execution_provider"].string_value == "tensorrt"


def test_gpu_ask_ignores_cpu_configs() -> None:
    assert gpu_ask("m", _config()) is None
    assert gpu_ask("m", _config(extra_parameters={"torch_device": "cuda"})) is None  # not the torch engine


def test_the_repository_view_links_everything_but_the_rewritten_configs(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    gpu = _model(repository, "resnet50", instance_kind="gpu")
    _model(repository, "mobilenet_v3_small")
    (repository / "README.md").write_text("hi")
    view = tmp_path / "state" / "view"
    write_repository_view(repository, view, {"resnet50": "rewritten"})
    assert (view / "mobilenet_v3_small").is_symlink()
    assert (view / "README.md").is_symlink()
    assert not (view / "resnet50").is_symlink()
    assert (view / "resnet50" / "config.pbtxt").read_text() == "rewritten"
    assert (view / "resnet50" / "1").resolve() == (gpu / "1").resolve()
    assert (view / "resnet50" / "1" / "model.onnx").read_bytes() == b"onnx"
    # Made afresh: a second start sees the repository as it is, and the repository is never touched.
    (repository / "README.md").unlink()
    write_repository_view(repository, view, {})
    assert (view / "resnet50").is_symlink() and not (view / "README.md").exists()
    assert (gpu / "config.pbtxt").read_text().count("KIND_GPU") == 1


# -- the launcher -----------------------------------------------------------------------------------


def _fake_install(tmp_path: Path, env: dict[str, str] | None = None) -> TritonInstall:
    env = env or {"PATH": "/usr/bin"}
    return TritonInstall(tmp_path / "tritonserver", tmp_path / "backends", env, python_blind_on_gpu=True)


def test_a_gpu_blind_start_serves_the_view_with_the_gpu_hidden_and_handed_to_the_stubs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    _model(repository, "resnet50", instance_kind="gpu")
    monkeypatch.setattr(devices, "host_gpu", lambda: GPU_HOST)
    options = TritonOptions(model_repository=repository, state_dir=tmp_path / "state", triton_http_port=9300)
    server = TritonServer(options, models=["resnet50"])
    install = _fake_install(tmp_path, {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0"})
    server.plan = server._gpu_plan(install)
    command = server.command(install)
    assert f"--model-repository={tmp_path / 'state' / 'gpu-blind-repository' / '9300'}" in command
    assert "--allow-gpu-metrics=false" in command
    env = server.environment(install)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env[STUB_GPUS_ENV] == "0"


def test_a_cpu_start_on_a_cpu_host_reads_the_repository_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    _model(repository, "resnet50")
    monkeypatch.setattr(devices, "host_gpu", lambda: CPU_HOST)
    server = TritonServer(TritonOptions(model_repository=repository, state_dir=tmp_path / "state"))
    install = _fake_install(tmp_path)
    server.plan = server._gpu_plan(install)
    assert f"--model-repository={repository.resolve()}" in server.command(install)
    assert server.environment(install) == install.env


def test_start_refuses_a_gpu_model_on_a_cpu_host_before_launching_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    _model(repository, "resnet50", instance_kind="gpu")
    monkeypatch.setattr(devices, "host_gpu", lambda: CPU_HOST)
    binary = tmp_path / "tritonserver"
    binary.write_text("#!/bin/sh\ntouch launched\n")
    binary.chmod(0o755)
    install = TritonInstall(binary, tmp_path / "backends", {"PATH": "/usr/bin"})
    options = TritonOptions(model_repository=repository, state_dir=tmp_path / "state", triton_http_port=39871)
    with pytest.raises(TritonError, match="asks for a GPU"):
        TritonServer(options, models=["resnet50"], install=install).start()
    assert not (tmp_path / "launched").exists()


def _wrapped_stub(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    stub = source / "triton_python_backend_stub"
    stub.write_text('#!/bin/sh\necho "args=$* cuda=${CUDA_VISIBLE_DEVICES-unset}"\n')
    files = []
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (source / name).write_text(name)
        files.append(source / name)
    return prepare_python_backend(tmp_path / "backends", files, stub) / stub.name


@pytest.mark.parametrize(
    ("handed", "expected"),
    [(None, "cuda="), ("0,1", "cuda=0,1"), (ALL_GPUS, "cuda=unset")],
)
def test_the_stub_wrapper_hands_the_stub_the_gpus_of_a_gpu_blind_server(
    tmp_path: Path, handed: str | None, expected: str
) -> None:
    wrapper = _wrapped_stub(tmp_path)
    env = {"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": ""}  # a GPU-blind server's environment
    if handed is not None:
        env[STUB_GPUS_ENV] = handed
    done = subprocess.run(
        ["bash", "-c", f"exec {wrapper} /models/m region 1"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"args=/models/m region 1 {expected}"


def test_the_stub_wrapper_is_rewritten_when_a_stale_one_is_in_place(tmp_path: Path) -> None:
    wrapper = _wrapped_stub(tmp_path)
    wrapper.write_text("stale")
    _wrapped_stub_again = prepare_python_backend(
        tmp_path / "backends",
        [tmp_path / "src" / "libtriton_python.so", tmp_path / "src" / "triton_python_backend_utils.py"],
        tmp_path / "src" / "triton_python_backend_stub",
    )
    assert (_wrapped_stub_again / wrapper.name).read_text() == STUB_WRAPPER


def test_an_unpacked_copy_of_the_wheels_server_is_found_by_its_layout(tmp_path: Path) -> None:
    server = tmp_path / "bundle" / "pytriton" / "tritonserver"
    (server / "bin").mkdir(parents=True)
    (server / "python_backend_stubs" / "3.12").mkdir(parents=True)
    (server / "bin" / "tritonserver").write_text("")
    assert pytriton_layout_root(server / "bin" / "tritonserver") == tmp_path / "bundle" / "pytriton"
    other = tmp_path / "opt" / "tritonserver" / "bin"
    other.mkdir(parents=True)
    (other / "tritonserver").write_text("")
    assert pytriton_layout_root(other / "tritonserver") is None


def _ldconfig(listing: str):  # type: ignore[no-untyped-def]
    def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout=listing, stderr="")

    return run


def test_libpython_is_left_to_the_loader_when_its_cache_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    monkeypatch.setattr(triton.subprocess, "run", _ldconfig(f"\t{name} (libc6,x86-64) => /lib/{name}\n"))
    assert triton._libpython_dir() is None


def test_libpython_outside_the_loaders_cache_is_found_in_the_interpreters_libdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0").write_text("")
    monkeypatch.setattr(triton.subprocess, "run", _ldconfig(""))
    monkeypatch.setattr(triton.sysconfig, "get_config_var", lambda name: str(tmp_path))
    assert triton._libpython_dir() == tmp_path
