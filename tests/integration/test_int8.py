"""int8 as a deployment: exported with its fidelity recorded, served beside fp32, picked by ?variant=int8."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import onnx
import pytest
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.modelzoo.manifest import read_repository
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images
from tests.support.ports import free_ports

MODEL = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def int8_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's fp32 export of MODEL beside a fresh int8 export of it."""
    repository = tmp_path_factory.mktemp("int8-repository")
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    outcome = export_model(get_spec(MODEL), "int8", repository, ExportOptions())
    assert outcome.status == "exported"
    return repository


@pytest.fixture(scope="module")
def gateway_url(int8_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    http, grpc, metrics = free_ports(3)
    runtime = RuntimeSettings(
        model_repository=int8_repository,
        state_dir=tmp_path_factory.mktemp("int8-state"),
        triton_http_port=http,
        triton_grpc_port=grpc,
        triton_metrics_port=metrics,
    )
    routing = tmp_path_factory.mktemp("int8-routing") / "routing.yaml"
    routing.write_text("routes: []\n")
    server = TritonServer(runtime)
    server.start()
    try:
        settings = make_gateway_settings(runtime, routing_file=routing)
        with running_gateway(settings, tmp_path_factory.mktemp("int8-logs")) as gateway:
            yield gateway.url
    finally:
        server.stop()


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
