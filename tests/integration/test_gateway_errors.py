"""Hard edges: each bad request or backend fault gets its status and JSON error fast, and the gateway
keeps answering correctly afterwards."""

from __future__ import annotations

import concurrent.futures
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images
from tests.support.http import classify, error_of
from tests.support.ports import free_port

MB = 1024 * 1024


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def gateway_stays_healthy(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every hard-edge test the session gateway must still answer a normal request."""
    yield
    if "client" in request.fixturenames:
        client: httpx.Client = request.getfixturevalue("client")
        assert client.get("/healthz").status_code == 200
        response = classify(client, "resnet18")
        assert response.status_code == 200, response.text


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = error_of(response)
    assert error["code"] == code
    for fragment in fragments:
        assert fragment in str(error["message"])
    return error


def test_body_over_the_limit_is_413_before_reading(client: httpx.Client, gateway_url: str) -> None:
    assert_error(classify(client, "resnet18", b"\xff" * (11 * MB)), 413, "payload_too_large", "10,485,760")
    # Announce 11 MB, send 64 KB and stop: only a gateway that judges Content-Length before reading
    # the body can answer (one that reads first would wait for bytes that never come).
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        head = (
            "POST /v1/models/resnet18/classify HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: {11 * MB}\r\n\r\n"
        )
        raw.sendall(head.encode() + b"\xff" * (64 * 1024))
        status_line = raw.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(12):
            yield b"\xff" * MB

    response = client.post(
        "/v1/models/resnet18/classify", content=chunks(), headers={"content-type": "image/jpeg"}
    )
    assert_error(response, 413, "payload_too_large")


def test_unsupported_media_type_is_415(client: httpx.Client) -> None:
    assert_error(classify(client, "resnet18", b"GIF89a", "image/gif"), 415, "unsupported_media_type")
    assert_error(classify(client, "resnet18", b"{}", "application/json"), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("data", "code", "fragment"),
    [
        (b"", "invalid_image", "empty image"),
        (b"\x00garbage\x01" * 50, "invalid_image", "not a decodable image"),
        (images.jpeg()[:3000], "invalid_image", "truncated"),
        (images.encode(images.pattern(), "GIF"), "invalid_image", "not a decodable image"),
    ],
    ids=["empty", "corrupt", "truncated", "gif-as-jpeg"],
)
def test_bad_images_are_400(client: httpx.Client, data: bytes, code: str, fragment: str) -> None:
    assert_error(classify(client, "resnet18", data), 400, code, fragment)


def peak_rss_mib(pid: int) -> float:
    """Highest resident memory of a process and its children since they started (VmHWM), MiB."""
    root = psutil.Process(pid)
    total_kib = 0
    for process in (root, *root.children(recursive=True)):
        status = Path(f"/proc/{process.pid}/status").read_text()
        total_kib += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return total_kib / 1024


def test_decompression_bomb_is_refused_before_allocating(
    client: httpx.Client, gateway_process: GatewayProcess
) -> None:
    assert gateway_process.process is not None
    before = peak_rss_mib(gateway_process.process.pid)
    response = classify(client, "resnet18", images.png_bomb(), "image/png")
    error = assert_error(response, 400, "image_too_large", "100000x100000")
    assert error["details"] == {"width": 100_000, "height": 100_000, "max_pixels": 40_000_000}
    # Decoding it would need 30 GB; refused from the header, the gateway's peak memory does not move.
    assert peak_rss_mib(gateway_process.process.pid) - before < 64


def test_unknown_model_is_404_listing_known_ones(client: httpx.Client) -> None:
    error = assert_error(classify(client, "resnet51"), 404, "model_not_found", "resnet51")
    known = error["details"]["known"]  # type: ignore[index]
    assert "classifier" in known and "resnet50" in known


def test_v2_wrong_shape_and_dtype_are_400_with_the_reason(gateway_url: str, client: httpx.Client) -> None:
    triton = tritonhttp.InferenceServerClient(gateway_url.removeprefix("http://"))
    wrong_shape = tritonhttp.InferInput("input", [1, 3, 32, 32], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(tritonhttp.InferenceServerException, match=r"shape must be \[N, 3, 224, 224\]"):
        triton.infer("resnet18", [wrong_shape])
    wrong_dtype = tritonhttp.InferInput("input", [1, 3, 224, 224], "INT32")
    wrong_dtype.set_data_from_numpy(np.zeros((1, 3, 224, 224), np.int32))
    with pytest.raises(tritonhttp.InferenceServerException, match="datatype must be FP32"):
        triton.infer("resnet18", [wrong_dtype])


def test_too_many_in_flight_is_429_with_retry_after(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    settings = make_gateway_settings(runtime_settings, max_inflight_per_model=1)
    with running_gateway(settings, tmp_path) as gateway, httpx.Client(base_url=gateway.url, timeout=30) as c:
        batch = [("file", (f"{i}.jpg", images.jpeg(seed=i), "image/jpeg")) for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda _: c.post("/v1/models/resnet18/classify", files=batch), range(8))
            )
        statuses = sorted(r.status_code for r in responses)
        assert 200 in statuses and 429 in statuses, statuses
        rejected = next(r for r in responses if r.status_code == 429)
        assert_error(rejected, 429, "overloaded")
        assert rejected.headers["Retry-After"] == "1"
        assert classify(c, "resnet18").status_code == 200


def test_triton_down_is_503_with_retry_after_without_waiting_out_a_timeout(
    runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    # Long gateway timeouts and a shorter client one: a gateway that waited for either before
    # answering would make the client give up (httpx.ReadTimeout) instead of reading the 503.
    settings = make_gateway_settings(
        runtime_settings, triton_url=f"127.0.0.1:{dead}", connect_timeout_s=20.0, request_timeout_s=30.0
    )
    with (
        running_gateway(settings, tmp_path, wait_for="/healthz") as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as c,
    ):
        for path in ("/v1/models/resnet18/classify", "/v2/models/resnet18/infer"):
            response = c.post(path, content=images.jpeg(), headers={"content-type": "image/jpeg"})
            assert response.status_code == 503, response.text
            assert error_of(response)["code"] in {"backend_unavailable"}
            assert response.headers["Retry-After"] == "1"
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["triton"] == "unavailable"
        assert c.get("/healthz").status_code == 200


def test_inference_timeout_is_504(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    settings = make_gateway_settings(runtime_settings, request_timeout_s=0.002, connect_timeout_s=0.001)
    with (
        running_gateway(settings, tmp_path, wait_for="/healthz") as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as c,  # a hang fails as a client timeout
    ):
        batch = [("file", (f"{i}.jpg", images.jpeg(seed=i), "image/jpeg")) for i in range(8)]
        response = c.post("/v1/models/resnet18/classify", files=batch)
        assert_error(response, 504, "backend_timeout", "0.002s")
        assert c.get("/healthz").status_code == 200


def test_errors_never_leak_a_stack_trace(client: httpx.Client) -> None:
    for response in (
        classify(client, "resnet18", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),
        client.post(
            "/v2/models/resnet18/infer", content=b"\xff\xfe{", headers={"content-type": "application/json"}
        ),
        client.get("/v2/models/resnet18/versions/999/ready"),
    ):
        assert "Traceback" not in response.text and response.status_code < 500, response.text


def test_running_gateway_fixture_is_a_real_process(gateway_process: GatewayProcess) -> None:
    assert gateway_process.alive() and gateway_process.process is not None
    assert free_port() != gateway_process.settings.port
