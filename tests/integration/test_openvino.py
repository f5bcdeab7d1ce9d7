"""OpenVINO as a serving engine: exported with parity on OpenVINO, served beside ONNX Runtime, picked by
?variant=openvino, answering as the fp32 ONNX Runtime model does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.manifest import read_repository
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.repository import INPUT_NAME, OUTPUT_NAME, parse_triton_config

from tests.support import images
from tests.support.deployments import repository_with_variant, served_by_gateway
from tests.support.triton import assert_parity

MODEL = "mobilenet_v3_small"
OPENVINO = f"{MODEL}_openvino"


@pytest.fixture(scope="module")
def openvino_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's fp32 export of MODEL beside a fresh export of its openvino variant."""
    return repository_with_variant(model_repository, tmp_path_factory, MODEL, "openvino")


@pytest.fixture(scope="module")
def gateway_url(openvino_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_by_gateway(openvino_repository, tmp_path_factory, "openvino") as url:
        yield url


def test_openvino_export_checks_parity_on_openvino_and_records_the_engine(openvino_repository: Path) -> None:
    manifests = read_repository(openvino_repository)
    fp32, openvino = manifests[MODEL], manifests[OPENVINO]
    assert (fp32.engine, openvino.engine) == ("onnxruntime", "openvino")
    assert (openvino.precision, openvino.variant) == ("fp32", "openvino")
    assert openvino.onnx_sha256 == fp32.onnx_sha256  # the same file, another engine
    assert openvino.parity.max_scaled_error < openvino.parity.rtol
    assert openvino.versions["openvino"] != "absent"
    config = parse_triton_config((openvino_repository / OPENVINO / "config.pbtxt").read_text())
    assert config.backend == "python" and config.parameters["engine"].string_value == "openvino"


def test_openvino_answers_through_the_gateway_as_onnxruntime_does(gateway_url: str) -> None:
    photo = images.encode(images.photo("chelsea", (500, 375)), "JPEG", quality=90)
    answers = {}
    for variant in ("default", "openvino"):
        response = httpx.post(
            f"{gateway_url}/v1/models/{MODEL}/classify",
            params={"variant": variant, "top_k": 5},
            content=photo,
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        answers[variant] = response.json()
    assert (answers["default"]["triton_model"], answers["openvino"]["triton_model"]) == (MODEL, OPENVINO)
    (reference,), (served,) = answers["default"]["results"], answers["openvino"]["results"]
    assert [p["index"] for p in served["top_k"]] == [p["index"] for p in reference["top_k"]]
    np.testing.assert_allclose(
        [p["score"] for p in served["top_k"]], [p["score"] for p in reference["top_k"]], rtol=1e-6
    )


def test_openvino_logits_equal_onnxruntime_logits_for_batched_requests(gateway_url: str) -> None:
    client = tritonhttp.InferenceServerClient(gateway_url.removeprefix("http://"))
    try:
        batch = random_batch(3, get_spec(MODEL).input_size, seed=7)
        logits = {}
        for model in (MODEL, OPENVINO):
            tensor = tritonhttp.InferInput(INPUT_NAME, list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch, binary_data=True)
            result = client.infer(model, [tensor], outputs=[tritonhttp.InferRequestedOutput(OUTPUT_NAME)])
            logits[model] = result.as_numpy(OUTPUT_NAME)
    finally:
        client.close()
    assert_parity(logits[OPENVINO], logits[MODEL])


def test_the_openvino_variant_is_listed_once_exported(gateway_url: str) -> None:
    listed = httpx.get(f"{gateway_url}/v1/models", timeout=10).json()
    (entry,) = [m for m in listed["models"] if m["name"] == MODEL]
    variants = {
        v["name"]: (v["triton_model"], v["precision"], v["engine"], v["served"]) for v in entry["variants"]
    }
    assert variants == {
        "default": (MODEL, "fp32", "onnxruntime", True),
        "openvino": (OPENVINO, "fp32", "openvino", True),
    }
