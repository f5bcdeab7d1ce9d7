"""Admin endpoints: API key, routing reload that keeps the old table on errors, model load/unload."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import TEST_ADMIN_KEY, TEST_ROUTING, make_gateway_settings, running_gateway
from tests.support.http import classify, error_of
from tests.support.metrics import value

KEY = {"X-API-Key": TEST_ADMIN_KEY}
#: Unloaded and loaded again in the session's Triton (every other test expects it served).
UNLOADED = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routing") / "routing.yaml"
    shutil.copy(TEST_ROUTING, path)
    return path


@pytest.fixture(scope="module")
def admin_gateway(
    triton: TritonServer,
    runtime_settings: RuntimeSettings,
    routing_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    settings = make_gateway_settings(runtime_settings, routing_file=routing_file, health_interval_s=60)
    with running_gateway(settings, tmp_path_factory.mktemp("admin-logs")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(admin_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_gateway.url, timeout=60) as client:
        yield client


def test_admin_needs_the_key(client: httpx.Client) -> None:
    assert client.post("/admin/routing/reload").status_code == 401
    response = client.post("/admin/routing/reload", headers={"X-API-Key": "wrong-key-wrong-key"})
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"


def test_admin_is_off_without_a_configured_key(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    settings = make_gateway_settings(runtime_settings, admin_api_key=None)
    with running_gateway(settings, tmp_path) as gateway:
        response = httpx.post(f"{gateway.url}/admin/routing/reload", headers=KEY)
        assert response.status_code == 404 and "disabled" in str(error_of(response)["message"])


def test_valid_reload_applies_and_invalid_reload_keeps_the_old_table(
    client: httpx.Client, routing_file: Path
) -> None:
    original = routing_file.read_text()
    try:
        routing_file.write_text(original.replace("model: resnet18\n", "model: mobilenet_v3_small\n", 1))
        response = client.post("/admin/routing/reload", headers=KEY)
        assert response.status_code == 200 and response.json()["status"] == "applied"
        assert classify(client, "classifier").json()["model"] == "mobilenet_v3_small"

        routing_file.write_text("routes: [{name: classifier, backends: [{model: resnet51}]}]")
        response = client.post("/admin/routing/reload", headers=KEY)
        assert response.status_code == 400
        assert "previous one stays in use" in str(error_of(response)["message"])
        assert "resnet51" in str(error_of(response)["message"])
        assert classify(client, "classifier").json()["model"] == "mobilenet_v3_small"
        text = client.get("/metrics").text
        assert value(text, "deploylab_gateway_routing_reloads_total", outcome="rejected") >= 1
        assert value(text, "deploylab_gateway_routing_reloads_total", outcome="applied") >= 1
    finally:
        routing_file.write_text(original)
        client.post("/admin/routing/reload", headers=KEY)


@pytest.fixture
def unloaded_model_restored(triton: TritonServer) -> Iterator[str]:
    """The model the test unloads from the session's Triton, loaded again afterwards whatever happened,
    through Triton's own API, so that no other test ever finds it missing."""
    yield UNLOADED
    server = tritonhttp.InferenceServerClient(triton.settings.triton_http_url.removeprefix("http://"))
    if not server.is_model_ready(UNLOADED):
        server.load_model(UNLOADED)  # returns once the model is loaded (or raises)
    assert server.is_model_ready(UNLOADED), f"{UNLOADED} could not be loaded back into the session's Triton"


def test_unload_makes_the_model_unavailable_and_load_brings_it_back(
    client: httpx.Client, unloaded_model_restored: str
) -> None:
    model = unloaded_model_restored
    assert classify(client, model).status_code == 200
    response = client.post(f"/admin/models/{model}/unload", headers=KEY)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 20  # a wait that ends on the first refusal
    while time.monotonic() < deadline:
        answer = classify(client, model)
        if answer.status_code != 200:
            break
        time.sleep(0.2)
    assert answer.status_code in (404, 503), answer.text
    assert error_of(answer)["code"] in {"model_not_ready", "model_not_found"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["models"][model] is False
    assert client.post(f"/admin/models/{model}/load", headers=KEY).status_code == 200
    assert classify(client, model).status_code == 200
    assert client.get("/readyz").status_code == 200
