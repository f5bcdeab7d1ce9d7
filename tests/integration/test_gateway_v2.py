"""An unmodified tritonclient pointed at the gateway works: health, metadata, config, infer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.runtime.settings import RuntimeSettings


@pytest.fixture(scope="module")
def via_gateway(gateway_url: str) -> Iterator[tritonhttp.InferenceServerClient]:
    client = tritonhttp.InferenceServerClient(gateway_url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def direct(runtime_settings: RuntimeSettings) -> Iterator[tritonhttp.InferenceServerClient]:
    client = tritonhttp.InferenceServerClient(runtime_settings.triton_http_url.removeprefix("http://"))
    yield client
    client.close()


def infer(
    client: tritonhttp.InferenceServerClient, model: str, batch: np.ndarray, binary: bool = True
) -> tritonhttp.InferResult:
    tensor = tritonhttp.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    output = tritonhttp.InferRequestedOutput("logits", binary_data=binary)
    return client.infer(model, [tensor], outputs=[output])


def test_server_health_and_metadata(via_gateway: tritonhttp.InferenceServerClient) -> None:
    assert via_gateway.is_server_live() and via_gateway.is_server_ready()
    assert via_gateway.get_server_metadata()["name"] == "triton"


def test_model_metadata_config_and_readiness_resolve_routes(
    via_gateway: tritonhttp.InferenceServerClient,
) -> None:
    assert via_gateway.is_model_ready("resnet18")
    assert via_gateway.is_model_ready("classifier")  # alias → resnet18
    assert via_gateway.get_model_metadata("repvgg_a0")["name"] == "repvgg_a0_deploy"
    assert via_gateway.get_model_metadata("repvgg_a0_train")["name"] == "repvgg_a0_train"
    config = via_gateway.get_model_config("classifier")
    assert config["name"] == "resnet18" and config["max_batch_size"] == 8


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_through_the_gateway_equals_direct_triton(
    via_gateway: tritonhttp.InferenceServerClient, direct: tritonhttp.InferenceServerClient, binary: bool
) -> None:
    batch = random_batch(2, 224, seed=4)
    through = infer(via_gateway, "classifier", batch, binary).as_numpy("logits")
    straight = infer(direct, "resnet18", batch, binary).as_numpy("logits")
    np.testing.assert_array_equal(through, straight)


def test_response_names_the_model_that_answered(gateway_url: str) -> None:
    import httpx

    batch = random_batch(1, 224, seed=1)
    body = tritonhttp.InferenceServerClient.generate_request_body(
        [_input(batch)], outputs=[tritonhttp.InferRequestedOutput("logits", binary_data=True)]
    )
    response = httpx.post(
        f"{gateway_url}/v2/models/repvgg/infer",
        content=body[0],
        headers={"Inference-Header-Content-Length": str(body[1])},
    )
    assert response.status_code == 200
    assert response.headers["X-Deploylab-Model"] == "repvgg_a0_deploy"
    assert int(response.headers["Inference-Header-Content-Length"]) > 0


def _input(batch: np.ndarray) -> tritonhttp.InferInput:
    tensor = tritonhttp.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    return tensor


def test_nan_input_is_refused_with_a_readable_message(via_gateway: tritonhttp.InferenceServerClient) -> None:
    batch = random_batch(1, 224, seed=0)
    batch[0, 0, 0, 0] = np.nan
    with pytest.raises(tritonhttp.InferenceServerException) as info:
        infer(via_gateway, "resnet18", batch)
    assert "NaN/Inf" in str(info.value) and info.value.status() == "400"


def test_unknown_model_is_404_for_tritonclient(via_gateway: tritonhttp.InferenceServerClient) -> None:
    with pytest.raises(tritonhttp.InferenceServerException, match="unknown model 'resnet51'"):
        via_gateway.get_model_metadata("resnet51")


def triton_shm_regions(runtime_settings: RuntimeSettings) -> list[str]:
    import httpx

    status = httpx.get(f"{runtime_settings.triton_http_url}/v2/systemsharedmemory/status").json()
    return [region["name"] for region in status if region["name"].startswith("deploylab_gw_")]


def transport_counts(gateway_url: str, model: str) -> dict[str, float]:
    """The gateway's count of requests to Triton per tensor transport, and of slot misses."""
    import httpx

    from tests.support.metrics import value

    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    name = "deploylab_gateway_triton_tensor_transport_total"
    return {
        "shared_memory": value(text, name, triton_model=model, transport="shared_memory"),
        "http": value(text, name, triton_model=model, transport="http"),
        "misses": value(text, "deploylab_gateway_shared_memory_slot_misses_total"),
    }


def test_tensors_reach_a_local_triton_through_shared_memory(
    via_gateway: tritonhttp.InferenceServerClient,
    direct: tritonhttp.InferenceServerClient,
    runtime_settings: RuntimeSettings,
    gateway_url: str,
) -> None:
    batch = random_batch(3, 224, seed=8)
    before = transport_counts(gateway_url, "resnet18")
    through = infer(via_gateway, "resnet18", batch)
    after = transport_counts(gateway_url, "resnet18")
    assert {k: after[k] - before[k] for k in after} == {"shared_memory": 1, "http": 0, "misses": 0}
    assert triton_shm_regions(runtime_settings), "the gateway registered no shared memory with Triton"
    np.testing.assert_array_equal(
        through.as_numpy("logits"), infer(direct, "resnet18", batch).as_numpy("logits")
    )
    response = through.get_response()
    assert (response["model_name"], response["model_version"]) == ("resnet18", "1")


def test_without_shared_memory_tensors_travel_over_http(
    triton: object,
    runtime_settings: RuntimeSettings,
    direct: tritonhttp.InferenceServerClient,
    tmp_path: Path,
) -> None:
    import httpx

    from tests.conftest import make_gateway_settings, running_gateway
    from tests.support import images
    from tests.support.http import classify

    settings = make_gateway_settings(runtime_settings, triton_shared_memory_slots=0)
    with running_gateway(settings, tmp_path) as gateway:
        before = set(triton_shm_regions(runtime_settings))
        client = tritonhttp.InferenceServerClient(gateway.url.removeprefix("http://"))
        batch = random_batch(2, 224, seed=9)
        np.testing.assert_array_equal(
            infer(client, "resnet18", batch).as_numpy("logits"),
            infer(direct, "resnet18", batch).as_numpy("logits"),
        )
        with httpx.Client(base_url=gateway.url) as http:
            assert classify(http, "resnet18", images.jpeg()).status_code == 200
        assert set(triton_shm_regions(runtime_settings)) == before
        # Both went over HTTP, and with slots off that is not a miss: nothing to tune.
        assert transport_counts(gateway.url, "resnet18") == {"shared_memory": 0, "http": 2, "misses": 0}


def test_requests_that_find_every_slot_busy_go_over_http_and_are_counted(
    runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    import threading

    from tests.conftest import make_gateway_settings, running_gateway

    settings = make_gateway_settings(runtime_settings, triton_shared_memory_slots=1)
    with running_gateway(settings, tmp_path) as gateway:
        batch = random_batch(4, 224, seed=10)
        address = gateway.url.removeprefix("http://")
        expected = infer(tritonhttp.InferenceServerClient(address), "resnet18", batch)
        start = threading.Barrier(8)
        answers: list[np.ndarray] = []

        def one() -> None:
            client = tritonhttp.InferenceServerClient(address)
            start.wait()
            answers.append(infer(client, "resnet18", batch).as_numpy("logits"))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == 8
        for answer in answers:  # either path gives the same logits
            np.testing.assert_array_equal(answer, expected.as_numpy("logits"))
        counts = transport_counts(gateway.url, "resnet18")
        assert counts["shared_memory"] + counts["http"] == 9
        assert counts["misses"] >= 1 and counts["http"] == counts["misses"]


@pytest.mark.parametrize("request_id", ["", "a", "req-0042", "x" * 61], ids=lambda s: f"id{len(s)}")
def test_bodies_read_into_shared_memory_answer_like_direct_triton(
    gateway_url: str, direct: tritonhttp.InferenceServerClient, request_id: str
) -> None:
    """The body lands in a shared-memory slot with the tensor aligned after a JSON header of any
    length; slots are reused across batch sizes, so a stale byte would show as a wrong logit."""
    import httpx

    with httpx.Client(base_url=gateway_url) as http:
        for n, seed in ((1, 21), (4, 22), (2, 23)):
            batch = random_batch(n, 224, seed=seed)
            body, json_size = tritonhttp.InferenceServerClient.generate_request_body(
                [_input(batch)],
                outputs=[tritonhttp.InferRequestedOutput("logits", binary_data=True)],
                request_id=request_id,
            )
            response = http.post(
                "/v2/models/resnet18/infer",
                content=body,
                headers={"Inference-Header-Content-Length": str(json_size)},
            )
            assert response.status_code == 200, response.text
            result = tritonhttp.InferenceServerClient.parse_response_body(
                response.content, header_length=int(response.headers["Inference-Header-Content-Length"])
            )
            assert result.get_response().get("id", "") == request_id
            np.testing.assert_array_equal(
                result.as_numpy("logits"), infer(direct, "resnet18", batch).as_numpy("logits")
            )


def triton_inference_count(runtime_settings: RuntimeSettings, model: str) -> int:
    """Requests Triton itself counted for `model`, answered or failed."""
    import httpx

    stats = httpx.get(f"{runtime_settings.triton_http_url}/v2/models/{model}/stats", timeout=10).json()
    return sum(
        s["inference_stats"]["success"]["count"] + s["inference_stats"]["fail"]["count"]
        for s in stats["model_stats"]
    )


def test_a_client_cannot_steer_tritons_shared_memory_through_the_gateway(
    via_gateway: tritonhttp.InferenceServerClient,
    direct: tritonhttp.InferenceServerClient,
    runtime_settings: RuntimeSettings,
    gateway_process: GatewayProcess,
) -> None:
    """A request naming a region the gateway registered with Triton (read from Triton itself) is
    refused before Triton sees it, as is one naming no region at all: same answer, no oracle."""
    import httpx
    from deploylab.services.common.shm_regions import SHM_DIR

    infer(via_gateway, "resnet18", random_batch(1, 224, seed=30))  # the gateway's slots are registered
    own = f"deploylab_gw_{gateway_process.process.pid}_"
    regions = [name for name in triton_shm_regions(runtime_settings) if name.startswith(own)]
    assert regions, f"the gateway registered no region {own}* with Triton"
    region_in = next(name for name in regions if "_in" in name.removeprefix(own))
    region_out = next(name for name in regions if "_out" in name.removeprefix(own))
    logits_before = (SHM_DIR / region_out).read_bytes()  # input slots also receive bodies read in
    counted = triton_inference_count(runtime_settings, "resnet18")

    batch = random_batch(1, 224, seed=31)  # logits unlike anything the regions hold
    tensor = {"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32"}
    json_input = {**tensor, "data": batch.ravel().tolist()}
    stolen_input = {
        **tensor,
        "parameters": {"shared_memory_region": region_in, "shared_memory_byte_size": 602112},
    }
    binary_input = {**tensor, "parameters": {"binary_data_size": batch.nbytes}}

    def into(region: str) -> list[dict[str, object]]:
        return [
            {
                "name": "logits",
                "parameters": {"shared_memory_region": region, "shared_memory_byte_size": 4000},
            }
        ]

    attacks: list[tuple[str, bytes, dict[str, str], str]] = []  # path, body, headers, level refused
    for path in ("/v2/models/resnet18/infer", "/v2/models/resnet18/versions/1/infer"):
        for region in (region_out, "deploylab_gw_1_000000_out9"):  # a real region, then a made-up one
            body = orjson.dumps({"inputs": [json_input], "outputs": into(region)})
            attacks.append((path, body, {"content-type": "application/json"}, "output"))
        body = orjson.dumps({"inputs": [stolen_input]})  # would read another client's image
        attacks.append((path, body, {"content-type": "application/json"}, "input"))
        header = orjson.dumps({"inputs": [binary_input], "outputs": into(region_out)})
        length = {"Inference-Header-Content-Length": str(len(header))}
        attacks.append((path, header + batch.tobytes(), length, "output"))
    with httpx.Client(base_url=gateway_process.url, timeout=30) as http:
        answers = []
        for path, body, headers, level in attacks:
            response = http.post(path, content=body, headers=headers)
            assert response.status_code == 400, (path, level, response.text)
            error = response.json()
            assert error["code"] == "invalid_tensor"
            assert f"{level} parameter 'shared_memory_region' is not accepted" in error["error"]
            answers.append(response.content)
        assert answers[0] == answers[1], "a real region name and a made-up one must get the same answer"
        assert http.get("/readyz").status_code == 200

    assert triton_inference_count(runtime_settings, "resnet18") == counted, "a refused request reached Triton"
    assert (SHM_DIR / region_out).read_bytes() == logits_before, "Triton wrote into the gateway's region"
    np.testing.assert_array_equal(  # and the gateway serves as before
        infer(via_gateway, "resnet18", batch, binary=False).as_numpy("logits"),
        infer(direct, "resnet18", batch, binary=False).as_numpy("logits"),
    )
