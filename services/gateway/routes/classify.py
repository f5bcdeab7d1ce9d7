"""`POST /v1/models/{model}/classify`: images in, top-k ImageNet labels out."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..deps import ContextDep
from ..errors import InvalidImageError, InvalidInputError, UnsupportedMediaTypeError
from ..inference import infer_batch, top_k_results
from ..metrics import IMAGES_PER_REQUEST, PREPROCESS_DURATION
from ..preprocess import MEDIA_TYPES, decode_batch
from ..schemas import BODY_AND_BACKEND_ERRORS, ClassifyResponse, ErrorResponse, Timings, error_responses
from ..settings import GatewaySettings

router = APIRouter(tags=["classify"])

_BINARY = {"type": "string", "format": "binary"}
_REQUEST_BODY = {
    "required": True,
    "description": "One image as the raw body, or several as multipart/form-data file parts (a batch).",
    "content": {
        **{media: {"schema": _BINARY} for media in ("image/jpeg", "image/png", "image/webp")},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": _BINARY}},
                "required": ["file"],
            }
        },
    },
}
_ERRORS = error_responses(
    ErrorResponse,
    {
        400: "empty, corrupt, truncated or oversized image; unknown variant",
        404: "unknown model (the message lists the known ones)",
        415: "unsupported media type",
        422: "invalid query parameter",
        429: "too many requests in flight for this model (Retry-After)",
        503: "Triton or the model is unavailable (Retry-After)",
        **BODY_AND_BACKEND_ERRORS,
    },
)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _check_media_type(request: Request) -> None:
    """415 before anything else is done with the request."""
    media_type = _media_type(request)
    if media_type not in MEDIA_TYPES and media_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"unsupported content type {media_type or '(none)'!r}; send image/jpeg, image/png, "
            "image/webp or multipart/form-data",
            details={"supported": [*sorted(set(MEDIA_TYPES) - {"image/jpg"}), "multipart/form-data"]},
        )


async def read_images(request: Request, settings: GatewaySettings) -> list[bytes]:
    """The image bytes of a raw or multipart request; 415 for anything else."""
    media_type = _media_type(request)
    if media_type in MEDIA_TYPES:
        return [await request.body()]
    if media_type == "multipart/form-data":
        try:
            form = await request.form(
                max_files=settings.max_images_per_request, max_fields=settings.max_images_per_request
            )
        except StarletteHTTPException as exc:  # too many parts, malformed multipart
            raise InvalidInputError(f"multipart body refused: {exc.detail}") from None
        try:
            files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            if not files:
                raise InvalidImageError("multipart body holds no file parts")
            for upload in files:
                part_type = (upload.content_type or "").split(";")[0].strip().lower()
                if part_type and part_type not in MEDIA_TYPES and part_type != "application/octet-stream":
                    raise UnsupportedMediaTypeError(
                        f"file part {upload.filename!r} is {part_type}; send image/jpeg, image/png "
                        "or image/webp"
                    )
            return [await upload.read() for upload in files]
        finally:
            await form.close()
    raise UnsupportedMediaTypeError(
        f"unsupported content type {media_type or '(none)'!r}; send image/jpeg, image/png, image/webp "
        "or multipart/form-data",
        details={"supported": [*sorted(set(MEDIA_TYPES) - {"image/jpg"}), "multipart/form-data"]},
    )


@router.post(
    "/v1/models/{model}/classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Classify one image or a batch",
    description=(
        "`model` is a routing-table route (alias, weighted split, shadow) or a catalog model "
        "(`resnet50`, `repvgg_a0`, …). The header named by the routing table's `sticky_header` "
        "(default `X-Deploylab-Key`) pins a caller to one side of a weighted split."
    ),
)
async def classify(
    request: Request,
    model: str,
    context: ContextDep,
    top_k: Annotated[int, Query(ge=1, le=1000, description="labels per image")] = 5,
    variant: Annotated[
        str | None, Query(max_length=32, description="model variant, e.g. RepVGG `train` or `deploy`")
    ] = None,
) -> Response:
    started = time.perf_counter()
    settings = context.settings
    routing = context.routing
    resolution = routing.resolve(model, variant, request.headers.get(routing.sticky_header))
    target = resolution.target
    request.state.model, request.state.variant = target.model, target.variant

    _check_media_type(request)
    context.check_servable(target)
    context.limiter.try_admit(target.triton_model)  # shed overload before reading the body
    images = await read_images(request, settings)
    if len(images) > settings.max_images_per_request:
        raise InvalidInputError(f"at most {settings.max_images_per_request} images per request")
    with context.limiter.admit(target.triton_model):
        loop = asyncio.get_running_loop()
        # FP32: normalized here; UINT8: the model normalises in its graph and takes the pixels.
        datatype = await context.input_datatype(target.triton_model)
        decode_started = time.perf_counter()
        batch, _ = await loop.run_in_executor(
            context.executor,
            decode_batch,
            images,
            target.spec.preprocessing,
            settings.max_image_pixels,
            datatype,
        )
        decoded = time.perf_counter()
        PREPROCESS_DURATION.labels(target.model, target.variant).observe(decoded - decode_started)
        logits, version = await infer_batch(context, target, batch)
        inferred = time.perf_counter()
    IMAGES_PER_REQUEST.labels("classify", target.model).observe(len(images))

    shadow = resolution.shadow
    if shadow is not None:
        shadow_images, primary_top1 = images, np.argmax(logits, axis=1)

        async def run_shadow() -> np.ndarray:
            shadow_datatype = await context.input_datatype(shadow.triton_model)
            shadow_batch, _ = await loop.run_in_executor(
                context.executor,
                decode_batch,
                shadow_images,
                shadow.spec.preprocessing,
                settings.max_image_pixels,
                shadow_datatype,
            )
            shadow_logits, _ = await infer_batch(context, shadow, shadow_batch)
            return shadow_logits

        context.shadows.submit(target, shadow, primary_top1, run_shadow)

    body = ClassifyResponse(
        route=resolution.route,
        model=target.model,
        variant=target.variant,
        triton_model=target.triton_model,
        version=version,
        results=top_k_results(logits, top_k),
        timings=Timings(
            decode_preprocess_ms=round((decoded - decode_started) * 1e3, 3),
            inference_ms=round((inferred - decoded) * 1e3, 3),
            total_ms=round((time.perf_counter() - started) * 1e3, 3),
        ),
    )
    return Response(
        orjson.dumps(body.model_dump()),
        media_type="application/json",
        headers={"X-Deploylab-Model": target.triton_model, "X-Deploylab-Variant": target.variant},
    )
