"""Pure-ASGI middleware: body limits (size and pace) and per-request metrics.

Pure ASGI rather than BaseHTTPMiddleware: these run on every request, and wrapping `receive`/`send`
costs microseconds where a BaseHTTPMiddleware costs a task and a stream per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLargeError, RequestTimeoutError, error_body, is_v2_path
from .metrics import ERRORS, REQUEST_DURATION, REQUESTS


def route_kind(path: str) -> str:
    """The `route` metric label for a path (a closed set, never the raw path)."""
    if path.startswith("/v1/models/") and path.endswith("/classify"):
        return "classify"
    if path.startswith("/v2/models/"):
        if path.endswith("/infer"):
            return "v2_infer"
        if path.endswith("/ready"):
            return "v2_model_ready"
        return "v2_model"
    if path == "/v2" or path.startswith("/v2/health"):
        return "v2_server"
    if path == "/v1/models":
        return "models"
    if path in ("/healthz", "/readyz", "/metrics"):
        return "health"
    if path.startswith("/admin/"):
        return "admin"
    return "other"


class BodyLimitMiddleware:
    """413 before reading when Content-Length is over the limit; 413/408 while reading otherwise."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            scope.setdefault("state", {})["error_code"] = PayloadTooLargeError.code
            await _send_json(
                send,
                413,
                error_body(
                    413,
                    PayloadTooLargeError.code,
                    f"request body of {declared:,} bytes exceeds the limit of {self.max_body_bytes:,}",
                    {"max_body_bytes": self.max_body_bytes},
                    v2=is_v2_path(scope["path"]),
                ),
                close=True,
            )
            return
        received = 0
        limit, timeout = self.max_body_bytes, self.read_timeout_s

        async def limited_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"no request body data for {timeout:g}s; send the body at a normal pace"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(
                        f"request body exceeds the limit of {limit:,} bytes",
                        details={"max_body_bytes": limit},
                    )
            return message

        await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Counts every response by route/model/variant/status and times it; handlers fill the labels."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = route_kind(scope["path"])
            model = state.get("model", "unknown")
            variant = state.get("variant", "unknown")
            if route not in ("health", "other", "models") or status >= 400:
                REQUESTS.labels(route, model, variant, str(status)).inc()
                REQUEST_DURATION.labels(route, model, variant).observe(time.perf_counter() - started)
            if status >= 400:
                ERRORS.labels(route, model, state.get("error_code", f"http_{status}")).inc()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
