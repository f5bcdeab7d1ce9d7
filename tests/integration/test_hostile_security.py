"""Security: who may do what, and what leaks where.

- admin endpoints answer only with the configured key (compared in constant time) and do not exist
  when no key is configured;
- CORS is off unless origins are listed, and then only for those;
- the gateway's log holds neither the admin key nor anything from request bodies, even at debug level;
- model names and versions from URLs are validated before they touch a Triton URL: a tap on the wire
  to the real Triton sees only catalog names, whatever the clients sent.
(Weights are loaded with `weights_only=True`: tests/unit/test_weights.py refuses a pickled payload.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from deploylab.services.gateway import deps
from deploylab.services.gateway.errors import UnauthorizedError
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.modelzoo.catalog import CATALOG
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer
from pydantic import SecretStr

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images
from tests.support.http import classify, error_of

ADMIN_CALLS = ("/admin/routing/reload", "/admin/models/resnet18/load", "/admin/models/resnet18/unload")
ORIGIN = "https://dashboard.example"


@pytest.fixture(scope="module")
def keyless_gateway(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Default security settings: no admin key, no CORS origins."""
    settings = make_gateway_settings(runtime_settings, admin_api_key=None)
    assert settings.admin_api_key is None and settings.cors_origins == []
    with running_gateway(settings, tmp_path_factory.mktemp("keyless-logs")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def admin_key() -> str:
    return "adm-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def guarded_gateway(
    triton: TritonServer,
    runtime_settings: RuntimeSettings,
    tmp_path_factory: pytest.TempPathFactory,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    """A random admin key, one CORS origin, and the most talkative log level."""
    settings = make_gateway_settings(
        runtime_settings, admin_api_key=admin_key, cors_origins=[ORIGIN], log_level="debug"
    )
    with running_gateway(settings, tmp_path_factory.mktemp("guarded-logs")) as gateway:
        yield gateway


# -- admin ------------------------------------------------------------------------------------------
def test_admin_endpoints_do_not_exist_without_a_configured_key(keyless_gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=keyless_gateway.url, timeout=30) as client:
        for path in ADMIN_CALLS:
            for headers in ({}, {"X-API-Key": "anything-at-all-0123456789"}):
                response = client.post(path, headers=headers)
                assert response.status_code == 404, response.text
                assert "disabled" in str(error_of(response)["message"])
        assert client.get("/readyz").status_code == 200  # nothing was unloaded
        assert classify(client, "resnet18").status_code == 200


def test_admin_endpoints_need_exactly_the_configured_key(
    guarded_gateway: GatewayProcess, admin_key: str
) -> None:
    wrong: list[dict[str, str | bytes]] = [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": admin_key[:-1]},
        {"X-API-Key": admin_key + "x"},
        {"X-API-Key": admin_key.upper()},
        {"X-API-Key": "x" * len(admin_key)},
        {"X-API-Key": (admin_key + "é").encode()},  # the key plus non-ASCII bytes
    ]
    with httpx.Client(base_url=guarded_gateway.url, timeout=60) as client:
        for headers in wrong:
            response = client.post("/admin/routing/reload", headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert error_of(response)["code"] == "unauthorized"
        assert client.post("/admin/models/resnet18/unload", headers={"X-API-Key": "nope"}).status_code == 401
        assert client.get("/readyz").status_code == 200
        applied = client.post("/admin/routing/reload", headers={"X-API-Key": admin_key})
        assert applied.status_code == 200 and applied.json()["status"] == "applied"


def test_admin_key_is_compared_with_a_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `require_admin` runs; the standard library's constant-time compare is watched, not
    replaced (the spy hands every call to it). Timing itself is not something a test may assert."""
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    key = "k" * 24
    context = SimpleNamespace(settings=GatewaySettings(admin_api_key=SecretStr(key)))
    asyncio.run(deps.require_admin(context, key))  # type: ignore[arg-type]
    with pytest.raises(UnauthorizedError):
        asyncio.run(deps.require_admin(context, "k" * 23 + "x"))  # type: ignore[arg-type]
    assert compared == [(key.encode(), key.encode()), (("k" * 23 + "x").encode(), key.encode())]


def test_short_admin_keys_are_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        GatewaySettings(admin_api_key=SecretStr("short"))


# -- CORS -------------------------------------------------------------------------------------------
def _preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options(
        "/v1/models/resnet18/classify",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )


def test_cors_is_off_by_default(keyless_gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=keyless_gateway.url, timeout=30) as client:
        preflight = _preflight(client, ORIGIN)
        simple = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405  # no CORS middleware: OPTIONS is just an unknown method
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_the_listed_origins(guarded_gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=guarded_gateway.url, timeout=30) as client:
        allowed = _preflight(client, ORIGIN)
        refused = _preflight(client, "https://evil.example")
        simple = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple.headers


# -- logs -------------------------------------------------------------------------------------------
def test_logs_hold_no_secrets_and_no_request_bodies(guarded_gateway: GatewayProcess, admin_key: str) -> None:
    marker = "MARKER" + secrets.token_hex(8)
    with httpx.Client(base_url=guarded_gateway.url, timeout=60) as client:
        client.post("/admin/routing/reload", headers={"X-API-Key": admin_key})
        client.post("/admin/routing/reload", headers={"X-API-Key": marker + "-wrong-key-0123"})
        classify(client, "resnet18", marker.encode() * 50)  # 400: not an image
        classify(client, "resnet18", images.jpeg() + marker.encode())  # 200: trailing bytes ignored
        client.post(
            "/v1/models/resnet18/classify",
            files=[("file", (f"{marker}.gif", marker.encode(), "image/gif"))],
            headers={"X-Deploylab-Key": marker},
        )
        client.post(
            "/v2/models/resnet18/infer",
            content=json.dumps({"inputs": [{"name": marker, "shape": [1], "datatype": "FP32", "data": [1]}]}),
            headers={"content-type": "application/json"},
        )
        client.post(f"/v1/models/{marker}/classify?variant={marker[:30]}", content=b"x")
    log = guarded_gateway.log_path.read_text()
    assert "DEBUG" in log or "INFO" in log, "the log must exist for this test to mean anything"
    assert admin_key not in log, "the admin key was logged"
    assert marker not in log, "request content (body, header, name or key) was logged"


# -- names and URLs ---------------------------------------------------------------------------------
class WireTap:
    """A TCP relay in front of the session's real tritonserver that keeps a copy of what the gateway sends.

    Not a stand-in: every byte goes on to Triton and every answer is Triton's own. It exists because
    Triton's request log (`--log-verbose`) shows paths without their query string or fragment, and a
    name smuggling `?x=` into a Triton URL is exactly what this must catch.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.streams: list[bytearray] = []  # what the gateway sent, one per connection
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def request_targets(self) -> list[str]:
        """The request-target of every HTTP request that went through, exactly as sent."""
        line = re.compile(rb"(?:GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (\S+) HTTP/1\.[01]\r\n")
        return [t.decode(errors="replace") for s in list(self.streams) for t in line.findall(bytes(s))]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        sent = bytearray()
        self.streams.append(sent)
        with client, socket.create_connection(self.upstream) as server:
            answers = threading.Thread(target=_pump, args=(server, client, None), daemon=True)
            answers.start()
            _pump(client, server, sent)
            answers.join(timeout=30)


def _pump(source: socket.socket, sink: socket.socket, copy: bytearray | None) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 16):
            if copy is not None:
                copy += chunk
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


TRITON_NAMES = "|".join(sorted({s.triton_name(v) for s in CATALOG.values() for v in s.variant_names}))
ALLOWED_PATH = re.compile(
    rf"^/v2(/health/(live|ready)|/repository/index|/repository/models/({TRITON_NAMES})/(load|unload)"
    rf"|/models/({TRITON_NAMES})(/versions/[1-9][0-9]*)?(/ready|/config|/stats|/infer)?"
    r"|/systemsharedmemory/region/deploylab_gw_[0-9]+_[0-9a-f]{6}_(in|out)[0-9]+/(register|unregister))?$"
)


@pytest.fixture
def wire_tap(triton: TritonServer, runtime_settings: RuntimeSettings) -> Iterator[WireTap]:
    tap = WireTap((runtime_settings.triton_host, runtime_settings.triton_http_port))
    yield tap
    tap.close()


def test_model_names_are_validated_before_they_touch_a_triton_url(
    wire_tap: WireTap, runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    key = "names-key-" + secrets.token_hex(8)
    settings = make_gateway_settings(runtime_settings, triton_url=wire_tap.address, admin_api_key=key)
    hostile = ["..%2F..%2Fetc%2Fpasswd", "a" * 10_000, "résnet18", "resnet18%00", "resnet18%3Fx%3D1",
               "%2E%2E", "resnet18%23frag", "-x", "resnet18%2Funload"]  # fmt: skip
    versions = ["1%3Fx%3Dy", "%2E%2E", "1%2F..%2F..", "-1", "0", "1e3", "%F0%9F%92%A5", "1%23x"]
    with running_gateway(settings, tmp_path) as gateway, httpx.Client(base_url=gateway.url, timeout=30) as c:
        for name in hostile:
            assert c.post(f"/v1/models/{name}/classify", content=images.jpeg(),
                          headers={"content-type": "image/jpeg"}).status_code == 404  # fmt: skip
            for suffix in ("", "/ready", "/config"):
                assert c.get(f"/v2/models/{name}{suffix}").status_code == 404
            assert c.post(f"/v2/models/{name}/infer", content=b"{}").status_code == 404
            for action in ("load", "unload"):
                assert c.post(f"/admin/models/{name}/{action}", headers={"X-API-Key": key}).status_code == 404
        for version in versions:  # 400: not a version number; 404: a decoded "/" matches no route
            for suffix in ("", "/ready", "/config"):
                assert c.get(f"/v2/models/resnet18/versions/{version}{suffix}").status_code in (400, 404)
            infer = c.post(f"/v2/models/resnet18/versions/{version}/infer", content=b"{}")
            assert infer.status_code in (400, 404)
        # Legitimate names do reach Triton through the tap, and Triton answers them.
        assert c.get("/v2/models/resnet18/versions/1/ready").status_code == 200
        assert c.get("/v2/models/classifier/config").json()["name"] == "resnet18"
    targets = wire_tap.request_targets()
    assert "/v2/models/resnet18/versions/1/ready" in targets and "/v2/models/resnet18/config" in targets
    strays = sorted({t for t in targets if not ALLOWED_PATH.match(t)})
    assert not strays, f"paths built from client input reached Triton: {strays[:5]}"
