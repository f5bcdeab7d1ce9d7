"""deploylab_ort, the native Triton backend, built here and served by the real tritonserver."""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from services.modelzoo.errors import TritonError
from services.modelzoo.parity import random_batch
from services.modelzoo.repository import INPUT_NAME, PYTHON_MODEL_FILENAME, ServingConfig, write_model_files
from tests.integration.test_triton import assert_parity, http_infer, in_process_logits, own_server

MODEL = "mobilenet_v3_small"


def native_repository(model_repository: Path, root: Path, **serving: object) -> Path:
    """A copy of the exported model, re-configured for deploylab_ort."""
    repository = root / "repo"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    config = ServingConfig(backend="deploylab_ort", **serving)  # type: ignore[arg-type]
    write_model_files(repository, MODEL, 224, 1000, config)
    return repository


def test_the_native_backend_batches_requests_and_answers_each_with_its_own_logits(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = native_repository(model_repository, tmp_path, instance_count=2)
    assert not (repository / MODEL / "1" / PYTHON_MODEL_FILENAME).exists()
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        url = server.settings.triton_http_url.removeprefix("http://")
        # No stub processes: the engine runs inside tritonserver.
        assert psutil.Process(server.pid).children() == []
        inputs = [random_batch(1 + i % 3, 224, seed=200 + i) for i in range(32)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            served = list(pool.map(lambda batch: http_infer(url, MODEL, batch), inputs))
        expected = in_process_logits(repository, MODEL, np.concatenate(inputs))
        offset = 0
        for batch, logits in zip(inputs, served, strict=True):
            assert logits.shape == (len(batch), 1000)
            assert_parity(logits, expected[offset : offset + len(batch)])
            offset += len(batch)

        grpc = grpcclient.InferenceServerClient(server.settings.triton_grpc_url)
        tensor = grpcclient.InferInput(INPUT_NAME, [2, 3, 224, 224], "FP32")
        tensor.set_data_from_numpy(inputs[1])
        assert_parity(grpc.infer(MODEL, [tensor]).as_numpy("logits"), expected[1:3])

        client = httpclient.InferenceServerClient(url)
        stats = client.get_inference_statistics(MODEL)["model_stats"][0]
        assert stats["inference_count"] >= 66  # 32 requests with 64 images, the gRPC one, the warm-up
        assert max(b["batch_size"] for b in stats["batch_stats"]) > 1  # executed batches, from the backend
        assert int(stats["inference_stats"]["compute_infer"]["ns"]) > 0

        wrong = httpclient.InferInput(INPUT_NAME, [1, 3, 32, 32], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 3, 32, 32), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="unexpected shape"):
            client.infer(MODEL, [wrong])
        assert_parity(http_infer(url, MODEL, inputs[0]), expected[:1])  # still serving
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "deploylab_ort: ONNX Runtime" in log and "intra_op=1 inter_op=1" in log


def test_a_model_on_the_native_backend_is_refused_with_the_reason_when_it_cannot_be_built(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = native_repository(model_repository, tmp_path)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    server = own_server(repository, tmp_path / "state")
    with pytest.raises(TritonError, match=r"mobilenet_v3_small uses backend deploylab_ort.*CXX="):
        server.start()
    assert server.process is None  # refused before starting anything


def test_the_native_backend_refuses_gpu_instances_and_the_pipeline() -> None:
    with pytest.raises(ValueError, match="CPU instances only"):
        ServingConfig(backend="deploylab_ort", instance_kind="gpu")
    with pytest.raises(ValueError, match="pipeline needs backend 'python'"):
        ServingConfig(backend="deploylab_ort", pipeline=True)


def test_a_model_the_native_backend_cannot_load_fails_its_load_with_the_reason_not_the_server(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = native_repository(model_repository, tmp_path)
    (repository / MODEL / "1" / "model.onnx").write_bytes(b"not an onnx file")
    server = own_server(repository, tmp_path / "state")
    with pytest.raises(TritonError, match="deploylab_ort: loading"):
        server.start()
    log = server.log_path.read_text()
    assert "failed to load 'mobilenet_v3_small'" in log
    assert "Signal (11)" not in log  # a failed instance is finalized without its state
