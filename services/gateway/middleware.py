"""Pure-ASGI middleware: body limits (size and pace), the shutdown drain, and per-request metrics.

Pure ASGI rather than BaseHTTPMiddleware: these run on every request, and wrapping `receive`/`send`
costs microseconds where a BaseHTTPMiddleware costs a task and a stream per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .drain import EXEMPT_PATHS, Drain
from .errors import (
    PayloadTooLargeError,
    RequestTimeoutError,
    ShuttingDownError,
    error_body,
    is_v2_path,
)
from .metrics import ERRORS, REQUEST_DURATION, REQUESTS

#: The rest of a body that was refused mid-way is not worth reading: answer, then drop the connection.
_CLOSE = {"Connection": "close"}


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

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, read_timeout_s: float, deadline_s: float = 60.0
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
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
        # Both a gap between chunks and the whole body are bounded: a slow drip of one byte a second
        # never trips the gap timeout, and would otherwise hold a connection for as long as it likes.
        deadline = time.monotonic() + self.deadline_s

        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # only http.disconnect can follow: no limits on waiting for it
                return await receive()
            left = deadline - time.monotonic()
            try:
                # asyncio.timeout, not wait_for: wait_for wraps every chunk in a new task.
                async with asyncio.timeout(min(timeout, max(left, 0.0))):
                    message = await receive()
            except TimeoutError:
                if left <= timeout:
                    raise RequestTimeoutError(
                        f"request body not complete within {self.deadline_s:g}s; send it at a normal pace",
                        details={"body_deadline_s": self.deadline_s},
                        headers=_CLOSE,
                    ) from None
                raise RequestTimeoutError(
                    f"no request body data for {timeout:g}s; send the body at a normal pace", headers=_CLOSE
                ) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(
                        f"request body exceeds the limit of {limit:,} bytes",
                        details={"max_body_bytes": limit},
                        headers=_CLOSE,
                    )
            return message

        await self.app(scope, limited_receive, send)


class DrainMiddleware:
    """During a drain: refuse new requests (503 shutting_down), close connections after responses.

    Counts the requests in progress so the server knows when the drain is done (see drain.py).
    """

    def __init__(self, app: ASGIApp, drain: Drain, retry_after_s: int) -> None:
        self.app = app
        self.drain = drain
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        drain = self.drain
        drain.enter()
        try:
            if drain.draining:
                scope.setdefault("state", {})["error_code"] = ShuttingDownError.code
                body = error_body(
                    503,
                    ShuttingDownError.code,
                    "the gateway is shutting down and takes no new requests; retry on another instance",
                    v2=is_v2_path(scope["path"]),
                )
                await _send_json(send, 503, body, close=True, extra=[(b"retry-after", self.retry_after)])
                return

            async def closing_send(message: Message) -> None:
                if message["type"] == "http.response.start" and drain.draining:
                    # Started before the drain: finish it, but don't keep the connection for more.
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
                await send(message)

            await self.app(scope, receive, closing_send)
        finally:
            drain.leave()


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


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length header; None when absent or not a number (chunked, malformed)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += extra or []
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
