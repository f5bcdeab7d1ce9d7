"""GPU serving paths through the real tritonserver on a CPU host, with the GPU facts faked.

What runs for real: the GPU-blind start (server environment, the repository view with the rewritten
config, the stub wrapper handing the GPUs back), and deploylab_ort's CUDA provider request against the
CPU wheel of ONNX Runtime. What cannot run here is the GPU itself: the rewritten model's ONNX Runtime
falls back to its CPU provider, and deploylab_ort refuses for want of the CUDA provider.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import psutil
import pytest
import tritonclient.http as httpclient
from deploylab.services.common.errors import TritonError
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.repository import ServingConfig, write_model_files
from deploylab.services.runtime import devices
from deploylab.services.runtime.devices import GpuFacts
from deploylab.services.runtime.gpu_plan import STUB_GPUS_ENV

from tests.support.triton import assert_parity, http_infer, in_process_logits, own_server

MODEL = "mobilenet_v3_small"
FAKE_GPU = GpuFacts(gpus=("Fake GPU",), onnxruntime_cuda=True, onnxruntime_version="1.31.1", torch_cuda=True)


def _repository(model_repository: Path, root: Path, serving: ServingConfig) -> Path:
    repository = root / "repo"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    write_model_files(repository, MODEL, 224, 1000, serving)
    return repository


def _environ(pid: int) -> dict[str, str]:
    return psutil.Process(pid).environ()


def test_a_gpu_model_is_served_by_a_gpu_blind_server_from_cpu_instances_that_get_the_gpu_back(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "host_gpu", lambda: FAKE_GPU)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    repository = _repository(model_repository, tmp_path, ServingConfig(instance_kind="gpu"))
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        assert server.plan.blind and MODEL in server.plan.rewritten
        batch = random_batch(2, 224, seed=7)
        url = server.settings.triton_http_url.removeprefix("http://")
        assert_parity(http_infer(url, MODEL, batch), in_process_logits(repository, MODEL, batch))
        # Triton serves the view's config; the repository keeps the one it was exported with.
        served = httpclient.InferenceServerClient(url).get_model_config(MODEL)
        assert [g["kind"] for g in served["instance_group"]] == ["KIND_CPU"]
        assert served["parameters"]["execution_provider"]["string_value"] == "cuda"
        assert "KIND_GPU" in (repository / MODEL / "config.pbtxt").read_text()
        # tritonserver is blind; its stubs (through the wrapper) see every GPU again.
        assert server.pid is not None
        assert _environ(server.pid)["CUDA_VISIBLE_DEVICES"] == ""
        stubs = psutil.Process(server.pid).children()
        assert stubs, "no Python-backend stub processes"
        for stub in stubs:
            environ = stub.environ()
            assert "CUDA_VISIBLE_DEVICES" not in environ and environ[STUB_GPUS_ENV] == "all"
            assert stub.exe().endswith("triton_python_backend_stub.bin")
    finally:
        server.stop()


def test_a_cpu_model_on_a_gpu_host_is_served_by_a_gpu_blind_server_from_the_repository_itself(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "host_gpu", lambda: FAKE_GPU)
    server = own_server(model_repository, tmp_path / "state")
    server.start()
    try:
        assert server.plan.blind and not server.plan.rewritten
        assert server.pid is not None and _environ(server.pid)["CUDA_VISIBLE_DEVICES"] == ""
        assert "--allow-gpu-metrics=false" in psutil.Process(server.pid).cmdline()
        batch = random_batch(1, 224, seed=8)
        url = server.settings.triton_http_url.removeprefix("http://")
        assert_parity(http_infer(url, MODEL, batch), in_process_logits(model_repository, MODEL, batch))
    finally:
        server.stop()


#: execution_provider, the provider's name in the refusal, and what else it says to install.
GPU_PROVIDERS = [("cuda", "CUDA", ""), ("tensorrt", "TensorRT", " and the tensorrt wheels")]


@pytest.mark.parametrize(("provider", "label", "also"), GPU_PROVIDERS)
def test_deploylab_ort_asked_for_a_gpu_provider_on_the_cpu_onnx_runtime_fails_its_load_saying_what_to_install(
    provider: str,
    label: str,
    also: str,
    model_repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plan believes the wheel has the CUDA provider; the backend finds out it has not. A KIND_CPU
    # instance asks for it: Triton itself refuses KIND_GPU on a host without a GPU.
    monkeypatch.setattr(devices, "host_gpu", lambda: FAKE_GPU)
    serving = ServingConfig(backend="deploylab_ort", extra_parameters={"execution_provider": provider})
    repository = _repository(model_repository, tmp_path, serving)
    server = own_server(repository, tmp_path / "state")
    server.gpu_metrics = False  # no GPU to read them from
    with pytest.raises(TritonError) as refused:
        server.start()
    message = str(refused.value)
    wanted = f"execution_provider {provider} needs ONNX Runtime's {label} provider (install onnxruntime-gpu=="
    assert f"{wanted}{onnxruntime.__version__}{also}); this one has" in message
    assert "CPUExecutionProvider" in message
    assert not server.plan.blind


def test_deploylab_ort_refuses_an_unknown_execution_provider_at_load(
    model_repository: Path, tmp_path: Path
) -> None:
    serving = ServingConfig(backend="deploylab_ort", extra_parameters={"execution_provider": "rocm"})
    repository = _repository(model_repository, tmp_path, serving)
    server = own_server(repository, tmp_path / "state")
    choices = r'\\?"cpu\\?", \\?"cuda\\?" or \\?"tensorrt\\?"'
    with pytest.raises(TritonError, match="execution_provider must be " + choices):
        server.start()


def test_deploylab_ort_with_the_cpu_provider_named_serves(model_repository: Path, tmp_path: Path) -> None:
    serving = ServingConfig(backend="deploylab_ort", extra_parameters={"execution_provider": "cpu"})
    repository = _repository(model_repository, tmp_path, serving)
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        batch = random_batch(3, 224, seed=9)
        url = server.settings.triton_http_url.removeprefix("http://")
        served = http_infer(url, MODEL, batch)
        assert_parity(served, in_process_logits(repository, MODEL, batch))
        assert np.isfinite(served).all()
    finally:
        server.stop()
