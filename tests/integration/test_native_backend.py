"""deploylab_ort, the native Triton backend, built here and served by the real tritonserver."""

from __future__ import annotations

import concurrent.futures
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc as grpclib
import numpy as np
import onnx
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from deploylab.services.common.errors import TritonError
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.repository import (
    INPUT_NAME,
    OUTPUT_NAME,
    PYTHON_MODEL_FILENAME,
    ServingConfig,
    onnx_path,
    write_model_files,
)
from deploylab.services.runtime.triton import TritonServer
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from tests.integration.test_triton import assert_parity, http_infer, in_process_logits, own_server
from tests.support.ports import runtime_on_free_ports

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


def test_the_native_backend_refuses_the_pipeline() -> None:
    with pytest.raises(ValueError, match="pipeline needs backend 'python'"):
        ServingConfig(backend="deploylab_ort", pipeline=True)


def test_a_model_the_native_backend_cannot_load_fails_its_load_with_the_reason_not_the_server(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = native_repository(model_repository, tmp_path)
    (repository / MODEL / "1" / "model.onnx").write_bytes(b"not an onnx file")
    server = own_server(repository, tmp_path / "state")
    with pytest.raises(TritonError, match=r"Invalid argument: deploylab_ort: loading .*INVALID_PROTOBUF"):
        server.start()
    log = server.log_path.read_text()
    assert "failed to load 'mobilenet_v3_small'" in log
    assert "Signal (11)" not in log  # a failed instance is finalized without its state


# Tiny models for what the backend must refuse or answer: an item is 3 × 2 × 2 floats, its output 12.
SIDE, CLASSES = 2, 12
TABLE = np.arange(4, dtype=np.float32)  # `lookup`: each output is TABLE[int(input value)]


def tiny_onnx(
    path: Path,
    *,
    input_type: int = TensorProto.FLOAT,
    output_type: int = TensorProto.FLOAT,
    lookup: bool = False,
    width: int | str = CLASSES,
) -> None:
    """A valid ONNX model with a dynamic batch: the flattened input, cast, or looked up in TABLE.

    A `width` named rather than numbered leaves the output's second axis open: the model then returns
    as many columns as the input's largest value, which only a run can tell.
    """
    nodes = [helper.make_node("Flatten", [INPUT_NAME], ["flat"], axis=1)]
    initializers = []
    if isinstance(width, str):
        for name, value in (("starts", 0), ("axes", 1), ("one", 1)):
            initializers.append(numpy_helper.from_array(np.array([value], dtype=np.int64), name))
        nodes.append(helper.make_node("ReduceMax", ["flat"], ["largest"], keepdims=1))
        nodes.append(helper.make_node("Reshape", ["largest", "one"], ["largest_1d"]))
        nodes.append(helper.make_node("Cast", ["largest_1d"], ["ends"], to=TensorProto.INT64))
        nodes.append(helper.make_node("Slice", ["flat", "starts", "ends", "axes"], [OUTPUT_NAME]))
    elif lookup:
        initializers.append(numpy_helper.from_array(TABLE, "table"))
        nodes.append(helper.make_node("Cast", ["flat"], ["index"], to=TensorProto.INT64))
        nodes.append(helper.make_node("Gather", ["table", "index"], [OUTPUT_NAME], axis=0))
    else:
        nodes.append(helper.make_node("Cast", ["flat"], [OUTPUT_NAME], to=output_type))
    graph = helper.make_graph(
        nodes,
        path.parent.parent.name,
        [helper.make_tensor_value_info(INPUT_NAME, input_type, ["batch", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, output_type, ["batch", width])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


#: name -> how its model.onnx is made; each config.pbtxt declares FP32 [3, 2, 2] in, FP32 [12] out.
TINY_MODELS = {
    "lookup": lambda path: tiny_onnx(path, lookup=True),
    "fp16_output": lambda path: tiny_onnx(path, output_type=TensorProto.FLOAT16),
    "int64_output": lambda path: tiny_onnx(path, output_type=TensorProto.INT64),
    "fp16_input": lambda path: tiny_onnx(path, input_type=TensorProto.FLOAT16),
    "no_onnx_file": lambda path: None,
    "open_width": lambda path: tiny_onnx(path, width="width"),
}


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver serving `lookup` on deploylab_ort; the other TINY_MODELS are there to be loaded."""
    root = tmp_path_factory.mktemp("tiny")
    repository = root / "repo"
    # A long queue delay gathers concurrent requests into one batch.
    serving = ServingConfig(
        backend="deploylab_ort", instance_count=1, warmup=False, max_queue_delay_us=200_000
    )
    for name, make in TINY_MODELS.items():
        write_model_files(repository, name, SIDE, CLASSES, serving)
        make(onnx_path(repository, name))
    server = TritonServer(runtime_on_free_ports(repository, root / "state"), models=["lookup"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def lookup_input(batch: int, value: float) -> np.ndarray:
    return np.full((batch, 3, SIDE, SIDE), value, dtype=np.float32)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("fp16_output", "output 'logits' is FLOAT16 in the ONNX model but TYPE_FP32 in config.pbtxt"),
        ("int64_output", "output 'logits' is INT64 in the ONNX model but TYPE_FP32 in config.pbtxt"),
        ("fp16_input", "input 'input' is FLOAT16 in the ONNX model but TYPE_FP32 in config.pbtxt"),
        ("no_onnx_file", r"Not found: deploylab_ort: loading .*model.onnx: \[ONNX Runtime NO_SUCHFILE\]"),
    ],
)
def test_a_model_that_differs_from_its_config_is_refused_at_load_and_the_server_keeps_serving(
    tiny_server: TritonServer, model: str, reason: str
) -> None:
    url = tiny_server.settings.triton_http_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url)
    with pytest.raises(InferenceServerException, match=reason):
        client.load_model(model)
    index = {entry["name"]: entry for entry in client.get_model_repository_index()}
    assert index[model]["state"] == "UNAVAILABLE"
    assert re.search(reason, index[model]["reason"]), index[model]
    assert not client.is_model_ready(model)
    # The server and its other model are unharmed.
    assert tiny_server.alive() and client.is_model_ready("lookup")
    served = http_infer(url, "lookup", lookup_input(2, 3.0))
    np.testing.assert_array_equal(served, np.full((2, CLASSES), TABLE[3]))


def test_an_onnx_runtime_error_caused_by_a_request_is_a_400_for_that_request_only(
    tiny_server: TritonServer,
) -> None:
    url = tiny_server.settings.triton_http_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url)
    # The right type and shape, so Triton passes it on; its values index past TABLE, which ONNX Runtime
    # rejects while running (INVALID_ARGUMENT): the client's fault, a 400 rather than a 500.
    with pytest.raises(
        InferenceServerException, match=r"\[ONNX Runtime INVALID_ARGUMENT\].*out of data bounds"
    ) as raised:
        http_infer(url, "lookup", lookup_input(1, 100.0))
    assert raised.value.status() == "400"
    grpc = grpcclient.InferenceServerClient(tiny_server.settings.triton_grpc_url)
    tensor = grpcclient.InferInput(INPUT_NAME, [1, 3, SIDE, SIDE], "FP32")
    tensor.set_data_from_numpy(lookup_input(1, -9.0))
    with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT") as raised:
        grpc.infer("lookup", [tensor])
    assert raised.value.status() == str(grpclib.StatusCode.INVALID_ARGUMENT)

    # Batched with good requests, a bad one fails alone: each good one gets its own rows.
    values = [0.0, 100.0, 1.0, 2.0, -50.0, 3.0]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(values)) as pool:
        futures = [pool.submit(http_infer, url, "lookup", lookup_input(2, value)) for value in values]
        concurrent.futures.wait(futures)
    for value, future in zip(values, futures, strict=True):
        if 0 <= value < len(TABLE):
            np.testing.assert_array_equal(future.result(), np.full((2, CLASSES), TABLE[int(value)]))
        else:
            error = future.exception()
            assert isinstance(error, InferenceServerException) and error.status() == "400", error
    stats = client.get_inference_statistics("lookup")["model_stats"][0]
    assert int(stats["inference_stats"]["fail"]["count"]) >= 4
    assert tiny_server.alive() and client.is_model_ready("lookup")
    assert "Signal (11)" not in tiny_server.log_path.read_text()


def test_an_output_whose_shape_only_a_run_shows_wrong_is_a_500_not_an_over_read(
    tiny_server: TritonServer,
) -> None:
    url = tiny_server.settings.triton_http_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url)
    client.load_model("open_width")  # its output's width is open, so the load-time check lets it pass
    try:
        with pytest.raises(
            InferenceServerException,
            match=r"output 'logits' came back \[2, 6\], config.pbtxt implies \[2, 12\]",
        ) as raised:
            http_infer(url, "open_width", lookup_input(2, CLASSES / 2))
        assert raised.value.status() == "500"  # the model's fault, not the request's
        assert "output 'logits' came back [2, 6]" in tiny_server.log_path.read_text()
        assert tiny_server.alive() and client.is_model_ready("open_width")
    finally:
        client.unload_model("open_width")
