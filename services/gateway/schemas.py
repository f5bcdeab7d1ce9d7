"""Response bodies of the gateway's own API (v1), with examples for the OpenAPI docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

#: What every route that reads a body and asks Triton may answer, whatever its own errors: the body
#: limits (middleware.py) and Triton's deadline.
BODY_AND_BACKEND_ERRORS = {
    408: "request body sent too slowly",
    413: "body over the size limit",
    504: "Triton did not answer in time",
}


def error_responses(body: type[BaseModel], descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's documented errors as OpenAPI `responses`: each status with `body`, in status order."""
    return {code: {"model": body, "description": descriptions[code]} for code in sorted(descriptions)}


def _example(example: JsonDict) -> ConfigDict:
    """A model config that shows `example` as the body's example in the OpenAPI document."""
    return ConfigDict(json_schema_extra={"examples": [example]})


class Prediction(BaseModel):
    index: int = Field(description="ImageNet-1k class index")
    label: str
    score: float = Field(description="softmax probability")


class ImageResult(BaseModel):
    top_k: list[Prediction]


class Timings(BaseModel):
    decode_preprocess_ms: float = Field(description="decode + resize/crop/normalize, all images")
    inference_ms: float = Field(description="Triton round trip")
    total_ms: float = Field(description="request received to response ready")


class ClassifyResponse(BaseModel):
    model_config = _example(
        {
            "route": "classifier",
            "model": "resnet50",
            "variant": "default",
            "triton_model": "resnet50",
            "version": "1",
            "results": [
                {
                    "top_k": [
                        {"index": 207, "label": "golden retriever", "score": 0.71},
                        {"index": 208, "label": "Labrador retriever", "score": 0.12},
                    ]
                }
            ],
            "timings": {"decode_preprocess_ms": 3.2, "inference_ms": 21.4, "total_ms": 25.9},
        }
    )

    route: str = Field(description="what the request named: a routing-table alias or a model")
    model: str = Field(description="catalog model that answered")
    variant: str
    triton_model: str
    version: str
    results: list[ImageResult] = Field(description="one entry per image, in request order")
    timings: Timings


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. model_not_found")
    message: str
    status: int
    details: dict[str, object] | None = None


class ErrorResponse(BaseModel):
    model_config = _example(
        {
            "error": {
                "code": "model_not_found",
                "message": "unknown model 'resnet51'",
                "status": 404,
                "details": {"known": ["classifier", "resnet50", "vgg16"]},
            }
        }
    )

    error: ErrorDetail


class V2ErrorResponse(BaseModel):
    """Errors on `/v2/…`: the Open Inference Protocol's `{"error": "<message>"}`, plus code and status."""

    model_config = _example(
        {
            "error": "input shape must be [N, 3, 224, 224] with N >= 1, got [1, 3, 32, 32]",
            "code": "invalid_tensor",
            "status": 400,
        }
    )

    error: str = Field(description="human-readable message (tritonclient raises with it verbatim)")
    code: str = Field(description="stable machine-readable code, e.g. invalid_tensor")
    status: int
    details: dict[str, object] | None = None


class VariantInfo(BaseModel):
    name: str
    triton_model: str
    precision: str = Field(
        "fp32", description="fp32 or int8: from the manifest once exported, else the catalog"
    )
    engine: str = Field(
        "onnxruntime",
        description="what runs the model in Triton: onnxruntime, openvino or deploylab_ort (from the "
        "manifest once exported, else the catalog variant's engine)",
    )
    exported: bool
    served: bool
    params: int | None = None
    gmacs: float | None = None
    onnx_bytes: int | None = None
    parity_max_abs_error: float | None = None


class ModelInfo(BaseModel):
    name: str
    family: str
    default_variant: str
    input_size: int
    preprocessing: dict[str, object]
    variants: list[VariantInfo]


class RouteBackendInfo(BaseModel):
    model: str
    variant: str
    weight: float


class RouteInfo(BaseModel):
    name: str
    backends: list[RouteBackendInfo]
    shadow: RouteBackendInfo | None = None


class ModelListResponse(BaseModel):
    models: list[ModelInfo]
    routes: list[RouteInfo]
    sticky_header: str


class HealthResponse(BaseModel):
    status: str
    triton: str | None = None
    models: dict[str, bool] | None = None
