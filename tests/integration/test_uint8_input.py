"""A uint8-input export (`deploylab export --input uint8`): pixels in, normalisation in the graph.

Served by its own Triton and gateway beside the session's fp32 export of the same model, it must give
the same logits for the same photo, take UINT8 wherever a client sends tensors, and refuse FP32 with a
message naming the datatype it takes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.gateway.preprocess import decode_batch
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.export import ExportOptions, default_serving, export_model
from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.parity import Tolerance
from deploylab.services.modelzoo.repository import ServingConfig, onnx_path, write_model_files
from deploylab.services.perf.client import Transport, make_client
from deploylab.services.perf.inprocess import Engine, Layout, measure_inprocess
from deploylab.services.runtime.settings import RuntimeSettings
from tritonclient.utils import InferenceServerException

from tests.support import images
from tests.support.deployments import served_deployment
from tests.support.triton import assert_parity, in_process_logits, own_server

MODEL = "mobilenet_v3_small"
SPEC = get_spec(MODEL)
PHOTO = images.encode(images.photo("chelsea", (500, 375)), "JPEG", quality=90)


@pytest.fixture(scope="module")
def uint8_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repository holding MODEL exported with a uint8 input (the fp32 one is the session's)."""
    repository = tmp_path_factory.mktemp("uint8-repository")
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    options = ExportOptions(serving=replace(default_serving(), input_dtype="uint8"))
    assert export_model(SPEC, "default", repository, options).status == "exported"
    return repository


@pytest.fixture(scope="module")
def uint8_deployment(
    uint8_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RuntimeSettings, str]]:
    with served_deployment(uint8_repository, tmp_path_factory, "uint8") as deployment:
        yield deployment


def pixels(datatype: str) -> np.ndarray:
    """The photo as the gateway frames it: FP32 normalised, or UINT8 pixels."""
    batch, _ = decode_batch([PHOTO], SPEC.preprocessing, 10**8, datatype)
    return batch[0]


def direct_logits(runtime: RuntimeSettings, batch: np.ndarray, datatype: str) -> np.ndarray:
    client = tritonhttp.InferenceServerClient(f"{runtime.triton_host}:{runtime.triton_http_port}")
    try:
        tensor = tritonhttp.InferInput("input", list(batch.shape), datatype)
        tensor.set_data_from_numpy(batch, binary_data=True)
        return client.infer(MODEL, [tensor]).as_numpy("logits")  # type: ignore[no-any-return,union-attr]
    finally:
        client.close()


def classify(gateway: str) -> list[int]:
    response = httpx.post(
        f"{gateway}/v1/models/{MODEL}/classify",
        content=PHOTO,
        headers={"Content-Type": "image/jpeg"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return [p["index"] for p in response.json()["results"][0]["top_k"]]


def v2_binary(gateway: str, batch: np.ndarray, datatype: str) -> httpx.Response:
    header = json.dumps({
        "inputs": [{"name": "input", "shape": list(batch.shape), "datatype": datatype,
                    "parameters": {"binary_data_size": batch.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": False}}],
    }).encode()  # fmt: skip
    return httpx.post(
        f"{gateway}/v2/models/{MODEL}/infer",
        content=header + batch.tobytes(),
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
        timeout=60,
    )


def assert_same_logits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Within the exporter's parity criterion, sample by sample."""
    for got, want in zip(actual, expected, strict=True):
        bound = Tolerance().bound(float(np.abs(want).max()))
        assert float(np.abs(got - want).max()) <= bound, (np.abs(got - want).max(), bound)
        assert int(np.argmax(got)) == int(np.argmax(want))


def test_the_manifest_and_config_record_the_input_dtype(
    uint8_repository: Path, model_repository: Path
) -> None:
    uint8, fp32 = read_manifest(uint8_repository / MODEL), read_manifest(model_repository / MODEL)
    assert uint8 is not None and fp32 is not None
    assert (uint8.serving["input_dtype"], fp32.serving["input_dtype"]) == ("uint8", "fp32")
    assert uint8.onnx_fingerprint != fp32.onnx_fingerprint
    assert "data_type: TYPE_UINT8" in (uint8_repository / MODEL / "config.pbtxt").read_text()


def test_triton_gives_the_uint8_model_the_fp32_models_logits_for_the_same_photo(
    uint8_deployment: tuple[RuntimeSettings, str], triton: object, runtime_settings: RuntimeSettings
) -> None:
    uint8_runtime, _ = uint8_deployment
    from_pixels = direct_logits(uint8_runtime, pixels("UINT8")[None], "UINT8")
    from_floats = direct_logits(runtime_settings, pixels("FP32")[None], "FP32")
    assert_same_logits(from_pixels, from_floats)


def test_the_gateway_classifies_a_photo_alike_on_both_exports(
    uint8_deployment: tuple[RuntimeSettings, str], gateway_url: str
) -> None:
    _, uint8_gateway = uint8_deployment
    assert classify(uint8_gateway)[0] == classify(gateway_url)[0]


def test_the_gateways_v2_route_takes_uint8_binary_or_json(
    uint8_deployment: tuple[RuntimeSettings, str],
) -> None:
    runtime, gateway = uint8_deployment
    batch = np.stack([pixels("UINT8"), np.ascontiguousarray(pixels("UINT8")[:, ::-1])])
    expected = direct_logits(runtime, batch, "UINT8")
    binary = v2_binary(gateway, batch, "UINT8")
    assert binary.status_code == 200, binary.text
    logits = np.asarray(binary.json()["outputs"][0]["data"], np.float32).reshape(2, -1)
    assert_same_logits(logits, expected)
    body = {"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "UINT8",
                        "data": batch[0].ravel().tolist()}]}  # fmt: skip
    answer = httpx.post(f"{gateway}/v2/models/{MODEL}/infer", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert_same_logits(np.asarray(answer.json()["outputs"][0]["data"], np.float32)[None], expected[:1])


def test_a_tensor_of_the_other_datatype_is_a_400_naming_the_expected_one(
    uint8_deployment: tuple[RuntimeSettings, str], gateway_url: str
) -> None:
    _, uint8_gateway = uint8_deployment
    to_uint8 = v2_binary(uint8_gateway, pixels("FP32")[None], "FP32")
    assert to_uint8.status_code == 400
    assert "datatype must be UINT8" in to_uint8.text and "got 'FP32'" in to_uint8.text
    to_fp32 = v2_binary(gateway_url, pixels("UINT8")[None], "UINT8")
    assert to_fp32.status_code == 400
    assert "datatype must be FP32" in to_fp32.text and "got 'UINT8'" in to_fp32.text


@pytest.mark.parametrize("transport", ["http", "http-shm", "tritonclient-http"])
def test_the_bench_transports_send_uint8_pixels_to_a_uint8_model(
    uint8_deployment: tuple[RuntimeSettings, str], transport: Transport
) -> None:
    runtime, _ = uint8_deployment
    url = f"http://{runtime.triton_host}:{runtime.triton_http_port}"
    client = make_client(transport, url, MODEL, max_batch=2)
    try:
        batch = np.stack([pixels("UINT8")] * 2)
        assert_same_logits(client.infer(batch), direct_logits(runtime, batch, "UINT8"))
    finally:
        client.close()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "torch"])
def test_in_process_baselines_feed_each_engine_what_it_takes(uint8_repository: Path, engine: Engine) -> None:
    (point,) = measure_inprocess(
        MODEL, uint8_repository, engine, batch_sizes=[2], threads=1, duration_s=0.2, layouts=[Layout(1, 1)]
    )
    assert point.throughput_img_s > 0 and point.batch_size == 2


def test_the_native_backend_serves_the_uint8_export_and_refuses_a_float_graph_under_a_uint8_config(
    uint8_repository: Path, model_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    native = ServingConfig(backend="deploylab_ort", input_dtype="uint8")
    shutil.copytree(uint8_repository / MODEL, repository / MODEL)
    write_model_files(repository, MODEL, 224, 1000, native)
    write_model_files(repository, "float_graph", 224, 1000, native)  # the fp32 export's graph under it
    shutil.copy(onnx_path(model_repository, MODEL), onnx_path(repository, "float_graph"))
    server = own_server(repository, tmp_path / "state")
    server.start()
    try:
        batch = np.stack([pixels("UINT8"), np.flip(pixels("UINT8"), axis=2)])
        served = direct_logits(server.settings, batch, "UINT8")
        assert_parity(served, in_process_logits(repository, MODEL, batch))
        assert served[0].argmax() == direct_logits(server.settings, batch[:1], "UINT8")[0].argmax()
        client = tritonhttp.InferenceServerClient(server.settings.triton_http_url.removeprefix("http://"))
        with pytest.raises(InferenceServerException, match="UINT8"):
            direct_logits(server.settings, pixels("FP32")[None], "FP32")
        refusal = "'input' is FLOAT in the ONNX model but TYPE_UINT8 in config.pbtxt"
        with pytest.raises(InferenceServerException, match=refusal):
            client.load_model("float_graph")
        assert client.is_model_ready(MODEL)  # still serving
    finally:
        server.stop()
