"""A real tritonserver (from the nvidia-pytriton wheel) serves the exported models correctly."""

from __future__ import annotations

import concurrent.futures
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.repository import INPUT_NAME, OUTPUT_NAME
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import SMALL_MODELS
from tests.support.triton import assert_parity, http_infer, in_process_logits, own_server

MODELS = [f"{n}_{v}" if v != "default" else n for n, v in SMALL_MODELS]


def test_every_exported_model_is_loaded_and_ready(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    client = httpclient.InferenceServerClient(runtime_settings.triton_http_url.removeprefix("http://"))
    assert client.is_server_ready()
    index = {m["name"]: m for m in client.get_model_repository_index()}
    for model in MODELS:
        assert index[model]["state"] == "READY", index[model]
        config = client.get_model_config(model)
        assert config["backend"] == "python" and config["max_batch_size"] == 8


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_http_logits_match_in_process_onnxruntime(
    triton: TritonServer, runtime_settings: RuntimeSettings, model: str, batch_size: int
) -> None:
    batch = random_batch(batch_size, 224, seed=batch_size)
    served = http_infer(runtime_settings.triton_http_url.removeprefix("http://"), model, batch)
    assert served.shape == (batch_size, 1000)
    assert_parity(served, in_process_logits(runtime_settings.model_repository, model, batch))


@pytest.mark.parametrize("model", MODELS)
def test_grpc_logits_match_in_process_onnxruntime(
    triton: TritonServer, runtime_settings: RuntimeSettings, model: str
) -> None:
    batch = random_batch(3, 224, seed=7)
    client = grpcclient.InferenceServerClient(runtime_settings.triton_grpc_url)
    tensor = grpcclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    served = client.infer(model, [tensor]).as_numpy(OUTPUT_NAME)
    assert_parity(served, in_process_logits(runtime_settings.model_repository, model, batch))


def test_repvgg_deploy_and_train_agree_when_served(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    url = runtime_settings.triton_http_url.removeprefix("http://")
    batch = random_batch(2, 224, seed=11)
    train = http_infer(url, "repvgg_a0_train", batch)
    deploy = http_infer(url, "repvgg_a0_deploy", batch)
    assert float(np.abs(train - deploy).max() / np.abs(train).max()) < 1e-4
    assert (np.argsort(-train, axis=1)[:, :5] == np.argsort(-deploy, axis=1)[:, :5]).all()


def test_concurrent_requests_are_stacked_into_real_batches(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    """Dynamic batching only pays if execute() receives several requests: prove it with statistics."""
    url = runtime_settings.triton_http_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url)
    before = client.get_inference_statistics("resnet18")["model_stats"][0]
    batch = random_batch(1, 224, seed=3)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: http_infer(url, "resnet18", batch), range(64)))
    assert all(np.array_equal(r, results[0]) for r in results)
    after = client.get_inference_statistics("resnet18")["model_stats"][0]
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 64
    assert executions < inferences, f"{executions} executions for {inferences} inferences: no batching"
    sizes = {b["batch_size"] for b in after["batch_stats"]}
    assert max(sizes) > 1


def test_metrics_endpoint_counts_successful_inferences_per_model(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    url = runtime_settings.triton_http_url.removeprefix("http://")
    for _ in range(3):
        http_infer(url, "mobilenet_v3_small", random_batch(1, 224, seed=0))
    text = urllib.request.urlopen(runtime_settings.triton_metrics_url, timeout=5).read().decode()
    success = {
        line.split("{")[1].split(",")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("nv_inference_request_success{")
    }
    assert success['model="mobilenet_v3_small"'] >= 3
    assert {f'model="{m}"' for m in MODELS} <= set(success)


def test_server_stops_cleanly_and_leaves_no_stub_processes(model_repository: Path, tmp_path: Path) -> None:
    server = own_server(model_repository, tmp_path)
    server.start()
    process = psutil.Process(server.pid)
    children = process.children(recursive=True)
    assert children, "python backend stubs should run as Triton's children"
    assert server.stop() == 0
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    assert "Started HTTPService" in server.log_path.read_text()


def test_shared_memory_of_a_killed_server_is_removed_by_stop_and_by_the_next_start(
    model_repository: Path, tmp_path: Path
) -> None:
    """kill -9 leaves the Python backend's /dev/shm regions (16 MiB per instance) behind for good."""
    import os
    import signal

    from deploylab.services.common.shm_regions import SHM_DIR

    server = own_server(model_repository, tmp_path)
    server.start()
    first = server.python_shm_regions()
    assert first, "the Python backend maps shared memory named after this server"
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    server.process.wait()  # type: ignore[union-attr]
    assert all((SHM_DIR / name).exists() for name in first), "kill -9 should have left them"
    server.start()  # a restart clears what the killed one left
    assert not set(first) & set(server.python_shm_regions())
    assert not any((SHM_DIR / name).exists() for name in first)
    os.killpg(server.pid, signal.SIGKILL)
    server.stop()  # and so does stop() after a crash
    assert server.python_shm_regions() == []


@pytest.mark.parametrize(("allow_spinning", "expected"), [(None, "spinning=off"), ("1", "spinning=on")])
def test_multi_thread_instances_do_not_spin_unless_asked(
    model_repository: Path, tmp_path: Path, allow_spinning: str | None, expected: str
) -> None:
    """ORT's spinning intra-op pool stalled served requests for ~500 ms on 2 shared cores (model.py)."""
    import shutil

    from deploylab.services.modelzoo.repository import ServingConfig, write_model_files

    repository = tmp_path / "repo"
    shutil.copytree(model_repository / "mobilenet_v3_small", repository / "mobilenet_v3_small")
    extra = {"allow_spinning": allow_spinning} if allow_spinning else {}
    serving = ServingConfig(instance_count=1, intra_op_threads=2, extra_parameters=extra)
    write_model_files(repository, "mobilenet_v3_small", 224, 1000, serving)
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        client = httpclient.InferenceServerClient(server.settings.triton_http_url.removeprefix("http://"))
        tensor = httpclient.InferInput(INPUT_NAME, [1, 3, 224, 224], "FP32")
        tensor.set_data_from_numpy(random_batch(1, 224, seed=3))
        assert client.infer("mobilenet_v3_small", [tensor]).as_numpy(OUTPUT_NAME).shape == (1, 1000)
    finally:
        server.stop()
    assert f"intra_op=2 inter_op=1 {expected}" in server.log_path.read_text()


def test_a_pipelined_instance_answers_every_request_with_its_own_logits(
    model_repository: Path, tmp_path: Path
) -> None:
    """`pipeline`: execute() stages a batch and returns; the answers come later through response
    senders. One instance, concurrent distinct requests: every answer must belong to its request."""
    import shutil

    from deploylab.services.modelzoo.repository import ServingConfig, write_model_files

    repository = tmp_path / "repo"
    shutil.copytree(model_repository / "mobilenet_v3_small", repository / "mobilenet_v3_small")
    serving = ServingConfig(instance_count=1, pipeline=True)
    write_model_files(repository, "mobilenet_v3_small", 224, 1000, serving)
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        url = server.settings.triton_http_url.removeprefix("http://")
        inputs = [random_batch(1 + i % 2, 224, seed=100 + i) for i in range(32)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            served = list(pool.map(lambda batch: http_infer(url, "mobilenet_v3_small", batch), inputs))
        expected = in_process_logits(repository, "mobilenet_v3_small", np.concatenate(inputs))
        offset = 0
        for batch, logits in zip(inputs, served, strict=True):
            assert_parity(logits, expected[offset : offset + len(batch)])
            offset += len(batch)
        stats = httpclient.InferenceServerClient(url).get_inference_statistics("mobilenet_v3_small")
        model_stats = stats["model_stats"][0]
        assert model_stats["inference_count"] >= 48  # 32 requests, 48 images, plus the warm-up
        assert max(b["batch_size"] for b in model_stats["batch_stats"]) > 1
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "pipeline on" in log
    assert "could not send a response" not in log and "Failed to process" not in log
