"""KServe v2 (Open Inference Protocol) over HTTP, forwarded to Triton through the routing table.

An unmodified `tritonclient.http.InferenceServerClient` pointed at the gateway works: metadata,
readiness and infer (JSON or binary tensors) keep Triton's wire format; only `{model}` is resolved
(aliases, splits, variants) and infer bodies are validated first, their `parameters` included: only
the allow-listed ones in v2_validation.py reach Triton, so no client names a shared-memory region or
steers Triton's scheduler through the gateway. Infer is the only route here that forwards a body.
Errors use the gateway's JSON shape.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson
from deploylab.services.modelzoo.repository import NUMPY_DTYPES, OUTPUT_NAME
from fastapi import APIRouter, Request, Response
from fastapi.types import DecoratedCallable

from ..context import GatewayContext
from ..deps import ContextDep
from ..errors import (
    BackendUnavailableError,
    InvalidInputError,
    InvalidTensorError,
    ModelNotFoundError,
    ModelNotReadyError,
    UnsupportedMediaTypeError,
)
from ..metrics import IMAGES_PER_REQUEST, INFERENCE_DURATION, TENSOR_TRANSPORT
from ..middleware import declared_length
from ..routing import Resolution
from ..schemas import BODY_AND_BACKEND_ERRORS, V2ErrorResponse, error_responses
from ..triton_client import (
    HEADER_LENGTH,
    InferOutput,
    RawResponse,
    SharedInferRequest,
    SlotLease,
    parse_infer_response,
    triton_error,
)
from ..v2_validation import ALLOWED_PARAMETERS, validate_infer_request, wants_plain_binary_answer

router = APIRouter(tags=["kserve-v2"])

VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,18}$")

_PASSTHROUGH_HEADERS = ("content-type", HEADER_LENGTH.lower())
_ERRORS = error_responses(
    V2ErrorResponse,
    {
        400: "invalid tensor (shape, dtype, sizes, NaN/Inf), a parameter not accepted, or version",
        404: "unknown model",
        415: "compressed body",
        429: "too many requests in flight (Retry-After)",
        502: "Triton answered with an error that is not the client's",
        503: "Triton or the model is unavailable, or the gateway is shutting down (Retry-After)",
        **BODY_AND_BACKEND_ERRORS,
    },
)
_ACCEPTED_PARAMETERS = "; ".join(
    f"{level} " + ", ".join(f"`{name}`" for name in sorted(names))
    for level, names in ALLOWED_PARAMETERS.items()
)


def _relay(response: RawResponse, resolution: Resolution | None = None) -> Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() in _PASSTHROUGH_HEADERS}
    if resolution is not None:
        headers["X-Deploylab-Model"] = resolution.target.triton_model
        headers["X-Deploylab-Variant"] = resolution.target.variant
    return Response(response.body, status_code=response.status, headers=headers)


async def _forward_get(context: GatewayContext, path: str, resolution: Resolution | None = None) -> Response:
    """Relay Triton's 200; anything else becomes the gateway's error (v2 spelling, right status)."""
    model = resolution.target.triton_model if resolution else None
    if resolution is not None:
        context.check_servable(resolution.target)  # 404 not in the repository, 503 not loaded
    response = await context.client.forward("GET", path, None, {}, model)
    if response.status != 200:
        error = triton_error(response, model)
        version = path.split("/versions/")[1].split("/")[0] if "/versions/" in path else None
        if version and isinstance(error, ModelNotReadyError) and model in context.served_models():
            # The model is up; it is this version that Triton does not serve.
            raise ModelNotFoundError(f"model {model!r} has no served version {version!r}")
        raise error
    return _relay(response, resolution)


def _resolve(request: Request, context: GatewayContext, model: str) -> Resolution:
    routing = context.routing
    resolution = routing.resolve(model, None, request.headers.get(routing.sticky_header))
    request.state.model, request.state.variant = resolution.target.model, resolution.target.variant
    return resolution


def _health_route(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A health route: Triton's answer is 200 with an empty body, or the gateway's 503."""
    empty_ok = {"description": "ready/live (empty body)", "content": {"text/plain": {"schema": {}}}}
    responses = {200: empty_ok, 503: _ERRORS[503]}
    return router.get(path, summary=summary, response_class=Response, responses=responses)  # type: ignore[arg-type]


@router.get("/v2", summary="Server metadata (Triton's)", responses=_ERRORS)
async def server_metadata(context: ContextDep) -> Response:
    return await _forward_get(context, "/v2")


@_health_route("/v2/health/live", "Server liveness (Triton's)")
async def server_live(context: ContextDep) -> Response:
    return await _forward_get(context, "/v2/health/live")


@_health_route("/v2/health/ready", "Server readiness (Triton's)")
async def server_ready(context: ContextDep) -> Response:
    response = await context.client.forward("GET", "/v2/health/ready", None, {}, None)
    if response.status != 200:
        raise BackendUnavailableError("Triton is not ready")
    return _relay(response)


def _version_path(request: Request) -> str:
    """`/versions/<n>` for the versioned routes, only for a plain version number: nothing a client
    sends reaches Triton's URL unchecked (`1?x=y`, `..` or `%2F` would otherwise rewrite the path)."""
    version = request.path_params.get("version")
    if version is None:
        return ""
    if not VERSION_PATTERN.match(version):
        shown = version if len(version) <= 32 else version[:32] + "…"
        raise InvalidInputError(f"model version must be a positive integer, got {shown!r}")
    return f"/versions/{version}"


async def _forward_model_get(request: Request, context: GatewayContext, model: str, suffix: str) -> Response:
    """Triton's answer for `model` at `/v2/models/<its Triton name>[/versions/<n>]<suffix>`."""
    resolution = _resolve(request, context, model)
    path = f"/v2/models/{resolution.target.triton_model}{_version_path(request)}{suffix}"
    return await _forward_get(context, path, resolution)


@router.get("/v2/models/{model}", summary="Model metadata", responses=_ERRORS)
@router.get("/v2/models/{model}/versions/{version}", include_in_schema=False)
async def model_metadata(request: Request, model: str, context: ContextDep) -> Response:
    return await _forward_model_get(request, context, model, "")


@router.get("/v2/models/{model}/config", summary="Model configuration", responses=_ERRORS)
@router.get("/v2/models/{model}/versions/{version}/config", include_in_schema=False)
async def model_config(request: Request, model: str, context: ContextDep) -> Response:
    return await _forward_model_get(request, context, model, "/config")


@router.get("/v2/models/{model}/ready", summary="Model readiness", responses=_ERRORS)
@router.get("/v2/models/{model}/versions/{version}/ready", include_in_schema=False)
async def model_ready(request: Request, model: str, context: ContextDep) -> Response:
    return await _forward_model_get(request, context, model, "/ready")


@router.post(
    "/v2/models/{model}/infer",
    summary="Inference (JSON or binary tensors)",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": (
                "KServe v2 inference request: JSON, or JSON header + raw tensor bytes with "
                "`Inference-Header-Content-Length` (binary tensor extension). One input `input` "
                "[N, 3, S, S] of the datatype the model's config declares: FP32 (normalized pixels), or "
                "UINT8 (resized and cropped pixels 0-255) for a model exported with `--input uint8`; "
                "another datatype is a 400 naming the expected one. "
                f"Parameters accepted (any other is a 400): {_ACCEPTED_PARAMETERS}."
            ),
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "inputs": [
                            {
                                "name": "input",
                                "shape": [1, 3, 224, 224],
                                "datatype": "FP32",
                                "data": "… 150528 floats …",
                            }
                        ]
                    },
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
@router.post("/v2/models/{model}/versions/{version}/infer", include_in_schema=False)
async def infer(request: Request, model: str, context: ContextDep) -> Response:
    resolution = _resolve(request, context, model)
    target = resolution.target
    version_path = _version_path(request)
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaTypeError("compressed request bodies are not supported; send identity")
    context.check_servable(target)
    context.limiter.try_admit(target.triton_model)  # shed overload before reading the body
    header_length = _header_length(request)
    max_batch = await context.max_batch_size(target.triton_model)
    datatype = await context.input_datatype(target.triton_model)
    with _body_lease(request, context, resolution, header_length, max_batch, datatype) as lease:
        body = await _read_body(request, lease)
        with context.limiter.admit(target.triton_model):
            info = validate_infer_request(
                body,
                header_length,
                input_size=target.spec.input_size,
                max_batch_size=max_batch,
                datatype=datatype,
            )
            headers = {"Content-Type": request.headers.get("content-type", "application/json")}
            if header_length is not None:
                headers[HEADER_LENGTH] = str(header_length)
            path = f"/v2/models/{target.triton_model}{version_path}/infer"
            started = time.perf_counter()
            shared = None
            response = None
            if context.client.shm is not None and wants_plain_binary_answer(info):
                # Same host: hand Triton the tensor through shared memory and answer in the binary
                # format it would have used (see triton_shm.py); everything else goes byte for byte.
                request_id = info.header.get("id")
                request_id = request_id if isinstance(request_id, str) else None
                call = SharedInferRequest(
                    target.triton_model, info.shape, target.spec.num_classes, datatype, path, request_id
                )
                if lease is not None:  # the body is already in shared memory: no copy at all
                    offset = lease.offset + info.json_size
                    shared = await context.client.infer_leased(call, lease.lease, offset)
                else:
                    shared = await context.client.infer_shared(call, memoryview(body)[info.json_size :])
            if shared is None:
                TENSOR_TRANSPORT.labels(target.triton_model, "http").inc()
                payload = bytes(body) if isinstance(body, memoryview) else body
                response = await context.client.forward("POST", path, payload, headers, target.triton_model)
            INFERENCE_DURATION.labels(target.model, target.variant).observe(time.perf_counter() - started)
        if lease is not None:
            body = b""  # the slot goes back to the pool here: nothing may read it afterwards
    if response is not None and response.status != 200:
        raise triton_error(response, target.triton_model)
    IMAGES_PER_REQUEST.labels("v2_infer", target.model).observe(info.batch_size)
    shadow = resolution.shadow
    if shadow is not None:
        if shared is not None:
            logits = shared.logits
        else:
            assert response is not None
            logits = parse_infer_response(response, target.triton_model).logits
        primary_top1 = np.argmax(logits, axis=1)
        shadow_path = f"/v2/models/{shadow.triton_model}/infer"
        shadow_body = bytes(body)  # shadowed routes never read into a slot (_body_lease): no copy

        async def run_shadow() -> np.ndarray:
            model = shadow.triton_model
            answer = await context.client.forward("POST", shadow_path, shadow_body, headers, model)
            if answer.status != 200:
                raise triton_error(answer, model)
            return parse_infer_response(answer, model).logits

        context.shadows.submit(target, shadow, primary_top1, run_shadow)
    if shared is not None:
        request_id = info.header.get("id")
        return _binary_answer(target.triton_model, shared, request_id, resolution)
    assert response is not None
    return _relay(response, resolution)


@dataclass(frozen=True)
class _BodyLease:
    """A shared-memory slot the request body is read into: `offset` is where the body starts."""

    lease: SlotLease
    view: memoryview
    offset: int


@contextlib.contextmanager
def _body_lease(
    request: Request,
    context: GatewayContext,
    resolution: Resolution,
    header_length: int | None,
    max_batch_size: int,
    datatype: str,
) -> Iterator[_BodyLease | None]:
    """A slot to read a binary-tensor body straight into, when one fits; None: read it into memory.

    Reading into the slot saves joining the body's chunks and copying the tensor into shared memory
    afterwards (two copies of 602 KB per image). The body is placed so that the tensor, which
    follows the JSON header, starts 64-byte aligned. Not for shadowed routes: the shadow request is
    sent after the answer, when the slot may already hold the next request's body. Nor for a batch
    over the model's limit: that body gets its 400 after reading, and must not grow a slot first.
    """
    declared = declared_length(request.scope)
    per_image = 3 * resolution.target.spec.input_size**2 * np.dtype(NUMPY_DTYPES[datatype]).itemsize
    if (
        context.client.shm is None
        or resolution.shadow is not None
        or header_length is None
        or declared is None
        or not 0 < header_length < declared
        or (declared - header_length) % per_image
        or 0 < max_batch_size < (declared - header_length) // per_image
    ):
        yield None
        return
    offset = -header_length % 64
    output_bytes = (declared - header_length) // per_image * resolution.target.spec.num_classes * 4
    with context.client.lease_slot(offset + declared, output_bytes, count_miss=False) as lease:
        if lease is None:
            yield None
            return
        view = lease.slot.input.view()
        try:
            yield _BodyLease(lease, view[offset : offset + declared], offset)
        finally:
            view.release()


async def _read_body(request: Request, lease: _BodyLease | None) -> bytes | memoryview:
    """The request body: in the lease's slot when there is one, else joined in memory."""
    if lease is None:
        return await request.body()
    target, received = lease.view, 0
    async for chunk in request.stream():
        end = received + len(chunk)
        if end > len(target):  # more than Content-Length said: the server framing forbids this
            raise InvalidTensorError("request body is longer than its Content-Length")
        target[received:end] = chunk
        received = end
    if received != len(target):
        raise InvalidTensorError(f"request body ended after {received} of {len(target)} declared bytes")
    return target


def _binary_answer(model: str, output: InferOutput, request_id: object, resolution: Resolution) -> Response:
    """The answer Triton gives a binary-output request, built from logits read out of shared memory."""
    data = output.logits.tobytes()
    header: dict[str, object] = {}
    if isinstance(request_id, str) and request_id:
        header["id"] = request_id
    header["model_name"] = model
    header["model_version"] = output.model_version
    header["outputs"] = [
        {
            "name": OUTPUT_NAME,
            "datatype": "FP32",
            "shape": list(output.logits.shape),
            "parameters": {"binary_data_size": len(data)},
        }
    ]
    encoded = orjson.dumps(header)
    return Response(
        encoded + data,
        media_type="application/octet-stream",
        headers={
            HEADER_LENGTH: str(len(encoded)),
            "X-Deploylab-Model": resolution.target.triton_model,
            "X-Deploylab-Variant": resolution.target.variant,
        },
    )


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidTensorError(f"{HEADER_LENGTH} must be an integer, got {raw[:32]!r}") from None
