"""int8 as a deployment: exported with its fidelity recorded, served beside fp32, picked by ?variant=int8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import onnx
import pytest
from deploylab.services.modelzoo.manifest import read_repository

from tests.support import images
from tests.support.deployments import repository_with_variant, served_by_gateway

MODEL = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def int8_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's fp32 export of MODEL beside a fresh export of its int8 variant."""
    return repository_with_variant(model_repository, tmp_path_factory, MODEL, "int8")


@pytest.fixture(scope="module")
def gateway_url(int8_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_by_gateway(int8_repository, tmp_path_factory, "int8") as url:
        yield url


def test_int8_export_is_quantized_with_its_fidelity_recorded(int8_repository: Path) -> None:
    manifests = read_repository(int8_repository)
    fp32, int8 = manifests[MODEL], manifests[f"{MODEL}_int8"]
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert int8.onnx_bytes < fp32.onnx_bytes / 2  # int8 weights
    graph = onnx.load(str(int8_repository / f"{MODEL}_int8" / "1" / "model.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert int8.quantization is not None
    fidelity = int8.quantization["fidelity_vs_fp32"]
    assert isinstance(fidelity, dict) and set(fidelity) == {"calibration", "held_out"}
    for measured in fidelity.values():
        assert measured["images"] > 0 and 0 <= measured["top1_agreement"] <= 1
        assert 0 < measured["top5_overlap"] <= 1 and measured["max_logit_error"] >= 0


def test_int8_is_served_like_any_variant(gateway_url: str) -> None:
    photo = images.encode(images.photo("chelsea", (500, 375)), "JPEG", quality=90)
    answers = {}
    for variant in ("default", "int8"):
        response = httpx.post(
            f"{gateway_url}/v1/models/{MODEL}/classify",
            params={"variant": variant},
            content=photo,
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        answers[variant] = response.json()
    assert answers["int8"]["triton_model"] == f"{MODEL}_int8"
    assert answers["default"]["triton_model"] == MODEL
    listed = httpx.get(f"{gateway_url}/v1/models", timeout=10).json()
    (entry,) = [m for m in listed["models"] if m["name"] == MODEL]
    precisions = {v["name"]: (v["precision"], v["served"]) for v in entry["variants"]}
    assert precisions == {"default": ("fp32", True), "int8": ("int8", True)}
