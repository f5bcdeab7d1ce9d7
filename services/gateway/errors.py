"""Domain errors and their one mapping to HTTP, with a stable JSON body.

Handlers raise these; `register_exception_handlers(app)` turns them into JSON with the right status
and headers, records the code for the metrics, and never lets a stack trace reach the client.

Two spellings of the same fields:
- the gateway's own API: `{"error": {"code", "message", "status", "details"?}}`
- `/v2/…` (Open Inference Protocol): `{"error": "<message>", "code", "status", "details"?}` — the
  protocol says `error` is a string, and tritonclient raises with it verbatim, so unmodified
  KServe clients show the message while the code stays machine-readable beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("deploylab.gateway")


class GatewayError(Exception):
    """Base: a status, a stable machine-readable code, a human message, optional details/headers."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.message


class InvalidInputError(GatewayError):
    status, code = 400, "invalid_input"


class InvalidImageError(GatewayError):
    status, code = 400, "invalid_image"


class ImageTooLargeError(GatewayError):
    """Declared pixel count over the limit: refused from the header, before any pixel is decoded."""

    status, code = 400, "image_too_large"


class InvalidTensorError(GatewayError):
    status, code = 400, "invalid_tensor"


class UnauthorizedError(GatewayError):
    status, code = 401, "unauthorized"


class ModelNotFoundError(GatewayError):
    status, code = 404, "model_not_found"


class NotFoundError(GatewayError):
    status, code = 404, "not_found"


class RequestTimeoutError(GatewayError):
    """The client sent its body too slowly (slow-drip): the connection is not held open for it."""

    status, code = 408, "request_timeout"


class PayloadTooLargeError(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaTypeError(GatewayError):
    status, code = 415, "unsupported_media_type"


class OverloadedError(GatewayError):
    """Too many requests in flight for a model: shed now rather than queue without bound."""

    status, code = 429, "overloaded"


class BackendUnavailableError(GatewayError):
    status, code = 503, "backend_unavailable"


class ModelNotReadyError(GatewayError):
    status, code = 503, "model_not_ready"


class ShuttingDownError(GatewayError):
    status, code = 503, "shutting_down"


class BackendTimeoutError(GatewayError):
    status, code = 504, "backend_timeout"


class BackendError(GatewayError):
    """Triton answered with an error that is not the client's fault."""

    status, code = 502, "backend_error"


#: Codes that mean "try again later": they carry Retry-After.
RETRYABLE = {OverloadedError.code, BackendUnavailableError.code, ModelNotReadyError.code,
             ShuttingDownError.code}  # fmt: skip


def is_v2_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_body(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    v2: bool = False,
) -> dict[str, Any]:
    if v2:
        body: dict[str, Any] = {"error": message, "code": code, "status": status}
        if details:
            body["details"] = details
        return body
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: GatewayError, retry_after_s: int = 1, *, v2: bool = False) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.code in RETRYABLE:
        headers.setdefault("Retry-After", str(retry_after_s))
    return JSONResponse(
        error_body(exc.status, exc.code, exc.message, exc.details, v2=v2), exc.status, headers=headers
    )


_HTTP_CODES = {
    400: "invalid_input",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def register_exception_handlers(app: FastAPI) -> None:
    """The single place where exceptions become HTTP responses."""

    async def on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        request.state.error_code = exc.code
        retry_after = getattr(request.app.state, "retry_after_s", 1)
        return error_response(exc, retry_after, v2=is_v2_path(request.url.path))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems) or "invalid request"
        request.state.error_code = "validation_error"
        body = error_body(
            422, "validation_error", message, {"errors": problems}, v2=is_v2_path(request.url.path)
        )
        return JSONResponse(body, 422)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        request.state.error_code = code
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail), v2=is_v2_path(request.url.path)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        request.state.error_code = "internal_error"
        body = error_body(500, "internal_error", "internal error", v2=is_v2_path(request.url.path))
        return JSONResponse(body, 500)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
