"""Domain errors and their one mapping to HTTP: every error body is `{"error": {code, message, …}}`.

Handlers raise these; `register_exception_handlers(app)` turns them into JSON with the right status
and headers, counts them by code, and never lets a stack trace reach the client.
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


class MethodNotAllowedError(GatewayError):
    status, code = 405, "method_not_allowed"


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


def error_body(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: GatewayError, retry_after_s: int = 1) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.code in RETRYABLE:
        headers.setdefault("Retry-After", str(retry_after_s))
    return JSONResponse(
        error_body(exc.status, exc.code, exc.message, exc.details), exc.status, headers=headers
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
        retry_after = getattr(request.app.state, "retry_after_s", 1)
        return error_response(exc, retry_after)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems) or "invalid request"
        return JSONResponse(error_body(422, "validation_error", message, {"errors": problems}), 422)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal_error", "internal error"), 500)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
