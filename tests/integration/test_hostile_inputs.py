"""Hostile input battery: each attack gets its specific 4xx, fast, never a 5xx, with the gateway's memory
bounded while it handles it and the gateway healthy afterwards. "Fast" is an error-path bound, and a
generous one: each refusal within a few seconds (`Case.within_s`), where reading or decoding the
attack would take far longer or never end.

The gateway here runs with tight but realistic pace limits (body gaps 1 s, whole body 2.5 s, request
head 2 s) so the slow-drip cases finish quickly; everything else is the default configuration.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import psutil
import pytest
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer
from PIL import Image

from tests.conftest import TEST_ADMIN_KEY, make_gateway_settings, running_gateway
from tests.support import images
from tests.support.http import classify
from tests.support.raw_http import RawAnswer, raw_request

MB = 1024 * 1024
ELEMENTS = 3 * 224 * 224
#: Headroom over the gateway's resident memory before an attack (decoding one normal image, a
#: 10 MB body and its JSON parse fit; a decoded bomb — 30 GB — or a frame-by-frame GIF would not).
MEMORY_HEADROOM_MIB = 160


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None
    message: str
    seconds: float
    closed: bool = False


Attack = Callable[["Target"], Answer]


@dataclass(frozen=True)
class Target:
    client: httpx.Client
    port: int


@pytest.fixture(scope="module")
def gateway(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = make_gateway_settings(
        runtime_settings, body_read_timeout_s=1.0, body_deadline_s=2.5, head_timeout_s=2.0
    )
    with running_gateway(settings, tmp_path_factory.mktemp("hostile-logs")) as started:
        yield started


@pytest.fixture(scope="module")
def target(gateway: GatewayProcess) -> Iterator[Target]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield Target(client, gateway.settings.port)


# -- how attacks are sent and answers read ---------------------------------------------------------
def _answer(response: httpx.Response, seconds: float) -> Answer:
    try:
        body = response.json()
    except ValueError:
        return Answer(response.status_code, None, response.text[:200], seconds)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return Answer(response.status_code, error.get("code"), str(error.get("message")), seconds)
    if isinstance(error, str):
        return Answer(response.status_code, body.get("code"), error, seconds)
    return Answer(response.status_code, None, "", seconds)


def _raw(answer: RawAnswer) -> Answer:
    body = answer.body if isinstance(answer.body, dict) else {}
    error = body.get("error", {})
    if isinstance(error, dict):
        code, message = error.get("code"), str(error.get("message", ""))
    else:
        code, message = body.get("code"), str(error)
    return Answer(answer.status, code, message, answer.seconds, answer.closed)


def post(
    path: str,
    content: bytes | Iterator[bytes] = b"",
    media: str | None = None,
    headers: dict[str, str] | None = None,
) -> Attack:
    """POST `content` (an iterator is sent chunked, without Content-Length)."""
    chunks = None if isinstance(content, bytes) else list(content)

    def send(target: Target) -> Answer:
        sent = {**({"content-type": media} if media else {}), **(headers or {})}
        body = content if chunks is None else iter(chunks)
        started = time.perf_counter()
        response = target.client.post(path, content=body, headers=sent)
        return _answer(response, time.perf_counter() - started)

    return send


def get(path: str) -> Attack:
    def send(target: Target) -> Answer:
        started = time.perf_counter()
        response = target.client.get(path)
        return _answer(response, time.perf_counter() - started)

    return send


def multipart(files: list[tuple[str, tuple[str, bytes, str]]], data: dict[str, str] | None = None) -> Attack:
    def send(target: Target) -> Answer:
        started = time.perf_counter()
        response = target.client.post(CLASSIFY, files=files, data=data)
        return _answer(response, time.perf_counter() - started)

    return send


def raw(head: bytes, chunks: list[bytes] | None = None, pause_s: float = 0.0) -> Attack:
    def send(target: Target) -> Answer:
        return _raw(raw_request(target.port, head, chunks or [], pause_s))

    return send


# -- the payloads ------------------------------------------------------------------------------------
def gif_with_frames(frames: int) -> bytes:
    """An animated GIF of `frames` tiny frames (a frame bomb for anything that decodes them all)."""
    pictures = [Image.new("P", (64, 64), i % 256) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=10, loop=0)
    return buffer.getvalue()


def apng_with_frames(frames: int) -> bytes:
    pictures = [Image.new("RGB", (64, 64), (i % 256, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "PNG", save_all=True, append_images=pictures[1:])
    return buffer.getvalue()


def v2_json(data: object, shape: list[int] | None = None, datatype: str = "FP32") -> bytes:
    tensor = {"name": "input", "shape": shape or [1, 3, 224, 224], "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def v2_binary(values: np.ndarray) -> Attack:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 3, 224, 224],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ]
        }
    ).encode()
    body = header + values.astype("<f4").tobytes()
    return post(INFER, body, BINARY, {"Inference-Header-Content-Length": str(len(header))})


def json_literal_tensor(first: str) -> bytes:
    """A v2 JSON body whose first value is a non-JSON literal (NaN, Infinity, 1e999)."""
    zeros = ",0" * (ELEMENTS - 1)
    return (
        '{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":[' + first + zeros + "]}]}"
    ).encode()


JPEG = images.jpeg()
GIF = gif_with_frames(3000)
CLASSIFY = "/v1/models/resnet18/classify"
INFER = "/v2/models/resnet18/infer"
JSON, BINARY, JPG, PNG = "application/json", "application/octet-stream", "image/jpeg", "image/png"
ADMIN = {"X-API-Key": TEST_ADMIN_KEY}
HEAD = f"POST {CLASSIFY} HTTP/1.1\r\nHost: gateway\r\nContent-Type: image/jpeg\r\n".encode()
DRIP_BODY = [JPEG[i : i + 16] for i in range(0, 320, 16)]
FIELDS = [f"field{i}" for i in range(300)]


@dataclass(frozen=True)
class Case:
    id: str
    attack: Attack
    status: int
    code: str
    within_s: float = 3.0


BATTERY = [
    # images: empty, broken, bombs
    Case("empty-body", post(CLASSIFY, b"", JPG), 400, "invalid_image"),
    Case("zero-byte-file", multipart([("file", ("a.jpg", b"", JPG))]), 400, "invalid_image"),
    Case("truncated-jpeg", post(CLASSIFY, JPEG[:2000], JPG), 400, "invalid_image"),
    Case("png-bomb-100k-x-100k", post(CLASSIFY, images.png_bomb(), PNG), 400, "image_too_large"),
    Case("gif-3000-frames", post(CLASSIFY, GIF, "image/gif"), 415, "unsupported_media_type"),
    Case("gif-3000-frames-labelled-png", post(CLASSIFY, GIF, PNG), 400, "invalid_image"),
    Case("gif-3000-frames-multipart", multipart([("file", ("a.gif", GIF, "image/gif"))]), 415,
         "unsupported_media_type"),
    # bodies: size and type
    Case("body-over-limit-declared", post(CLASSIFY, b"\xff" * (11 * MB), JPG), 413, "payload_too_large", 5),
    Case("body-over-limit-chunked", post(CLASSIFY, iter([b"\xff" * MB] * 12), JPG), 413,
         "payload_too_large", 5),
    Case("wrong-content-type", post(CLASSIFY, JPEG, "text/plain"), 415, "unsupported_media_type"),
    Case("no-content-type", post(CLASSIFY, JPEG), 415, "unsupported_media_type"),
    Case("multipart-300-files", multipart([("file", (f"{i}.jpg", b"x", JPG)) for i in range(300)]), 400,
         "invalid_input"),
    Case("multipart-300-fields", multipart([("file", ("a.jpg", JPEG, JPG))], dict.fromkeys(FIELDS, "x")), 400,
         "invalid_input"),
    Case("multipart-malformed", post(CLASSIFY, b"--xx\r\nbroken", "multipart/form-data; boundary=xx"), 400,
         "invalid_image"),
    Case("multipart-no-boundary", post(CLASSIFY, b"abc", "multipart/form-data"), 400, "invalid_input"),
    # names and versions that must never reach a path or a URL
    Case("name-dotdot-raw-path", raw(b"POST /v1/models/../../etc/passwd/classify HTTP/1.1\r\nHost: g\r\n"
                                     b"Content-Length: 0\r\n\r\n"), 404, "not_found"),
    Case("name-dotdot-encoded", post("/v1/models/..%2F..%2Fetc%2Fpasswd/classify", JPEG, JPG), 404,
         "not_found"),
    Case("name-10kB", post(f"/v1/models/{'a' * 10_000}/classify", JPEG, JPG), 404, "model_not_found"),
    Case("name-unicode", post("/v1/models/résnet18/classify", JPEG, JPG), 404, "model_not_found"),
    Case("name-cjk", post("/v1/models/模型/classify", JPEG, JPG), 404, "model_not_found"),
    Case("name-nul", post("/v1/models/resnet18%00/classify", JPEG, JPG), 404, "model_not_found"),
    Case("v2-name-10kB", post(f"/v2/models/{'a' * 10_000}/infer", b"{}", JSON), 404, "model_not_found"),
    Case("v2-name-dotdot", get("/v2/models/..%2F..%2Fetc%2Fpasswd"), 404, "not_found"),
    Case("v2-version-query-injection", get("/v2/models/resnet18/versions/1%3Fx%3Dy/ready"), 400,
         "invalid_input"),
    Case("v2-version-dotdot", get("/v2/models/resnet18/versions/%2E%2E/ready"), 400, "invalid_input"),
    Case("admin-name-dotdot", post("/admin/models/..%2F..%2Fresnet18/unload", headers=ADMIN), 404,
         "not_found"),
    Case("admin-name-unknown", post("/admin/models/resnet18..x/unload", headers=ADMIN), 404,
         "model_not_found"),
    # tensors on v2
    Case("v2-nan-json-literal", post(INFER, json_literal_tensor("NaN"), JSON), 400, "invalid_tensor"),
    Case("v2-inf-json-literal", post(INFER, json_literal_tensor("1e999"), JSON), 400, "invalid_tensor"),
    Case("v2-nan-binary", v2_binary(np.full(ELEMENTS, np.nan, np.float32)), 400, "invalid_tensor"),
    Case("v2-inf-binary", v2_binary(np.full(ELEMENTS, np.inf, np.float32)), 400, "invalid_tensor"),
    Case("v2-wrong-shape", post(INFER, v2_json([0] * 12, [1, 3, 2, 2]), JSON), 400, "invalid_tensor"),
    Case("v2-wrong-dtype", post(INFER, v2_json([0] * ELEMENTS, datatype="INT64"), JSON), 400,
         "invalid_tensor"),
    Case("v2-strings-as-data", post(INFER, v2_json(["x"] * ELEMENTS), JSON), 400, "invalid_tensor"),
    Case("v2-huge-json-9MB", post(INFER, v2_json([0.1234567] * 900_000), JSON), 400, "invalid_tensor", 5),
    Case("v2-huge-json-12MB", post(INFER, b"[" + b"1," * 6_000_000 + b"1]", JSON), 413,
         "payload_too_large", 5),
    Case("v2-json-100k-deep", post(INFER, b"[" * 100_000 + b"]" * 100_000, JSON), 400, "invalid_tensor"),
    Case("v2-header-length-absurd", post(INFER, b"{}", BINARY, {"Inference-Header-Content-Length": "9" * 30}),
         400, "invalid_tensor"),
    # pace and shape of the HTTP exchange itself
    Case("slow-drip-body", raw(HEAD + b"Content-Length: %d\r\n\r\n" % len(JPEG), DRIP_BODY, pause_s=0.4),
         408, "request_timeout", 6),
    Case("slow-drip-head", raw(f"POST {CLASSIFY} HTTP/1.1\r\n".encode(), [b"X-Drip: 1\r\n"] * 12, 0.4), 408,
         "request_timeout", 6),
    Case("silent-connection", raw(b""), 408, "request_timeout", 6),
    Case("header-200kB", raw(b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
         431, "headers_too_large"),
    Case("garbage-request-line", raw(b"\x16\x03\x01\x02\x00 NOT HTTP\r\n\r\n"), 400, "invalid_request"),
]


class PeakMemory:
    """Peak RSS (MiB) of a process while a block runs, sampled every 5 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss / MB)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("case", BATTERY, ids=[case.id for case in BATTERY])
def test_hostile_input_gets_its_specific_4xx_fast_with_bounded_memory(
    gateway: GatewayProcess, target: Target, case: Case
) -> None:
    assert gateway.process is not None
    resting = psutil.Process(gateway.process.pid).memory_info().rss / MB
    with PeakMemory(gateway.process.pid) as memory:
        answer = case.attack(target)
    assert (answer.status, answer.code) == (case.status, case.code), answer
    assert answer.seconds <= case.within_s, f"answered after {answer.seconds:.2f}s, bound {case.within_s}s"
    assert len(answer.message) < 600, "the error must not echo the attack back"
    assert memory.peak - resting <= MEMORY_HEADROOM_MIB, f"RSS {resting:.0f} → peak {memory.peak:.0f} MiB"
    assert target.client.get("/healthz").status_code == 200
    assert classify(target.client, "resnet18").status_code == 200


def test_the_drip_and_oversized_attacks_lose_their_connection(target: Target) -> None:
    """A refused body or head is not read to the end: the connection is closed after the answer."""
    drip = raw(HEAD + b"Content-Length: %d\r\n\r\n" % len(JPEG), [JPEG[i : i + 16] for i in range(0, 64, 16)],
               pause_s=1.3)(target)  # fmt: skip
    assert drip.status == 408 and drip.closed
    assert raw(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")(target).closed


def test_frame_bomb_in_an_allowed_format_is_decoded_from_its_first_frame_only(target: Target) -> None:
    """The animation's answer is its first frame's answer: the first frame is what was classified."""
    animated = classify(target.client, "resnet18", apng_with_frames(2000), "image/png")
    still = classify(target.client, "resnet18", apng_with_frames(1), "image/png")
    assert animated.status_code == 200 and still.status_code == 200, (animated.text, still.text)
    assert animated.json()["results"] == still.json()["results"]


#: The attacks that would cost the gateway the most memory had it read or decoded them.
HEAVIEST = {"png-bomb-100k-x-100k", "gif-3000-frames", "body-over-limit-declared", "body-over-limit-chunked",
            "multipart-300-fields", "v2-huge-json-9MB", "v2-huge-json-12MB", "v2-json-100k-deep"}  # fmt: skip


def test_after_the_heaviest_attacks_the_gateway_is_healthy_and_its_memory_has_settled(
    gateway: GatewayProcess, target: Target
) -> None:
    assert gateway.process is not None
    for case in BATTERY:
        if case.id in HEAVIEST:
            assert case.attack(target).status == case.status, case.id
    assert target.client.get("/readyz").status_code == 200
    rss = psutil.Process(gateway.process.pid).memory_info().rss / MB
    assert rss < 400, f"gateway RSS {rss:.0f} MiB after the battery"
    assert "Traceback" not in gateway.log_path.read_text()
