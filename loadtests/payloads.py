"""What the load test sends and how it decides an answer is right, independent of Locust.

Requests are built once per user (bodies are bytes, ready to send), and every response goes through a
`check_*` function that raises `InvalidResponseError` with a one-line reason: a 200 with the wrong
model, a short top-k list or a truncated tensor is a failure, not a success.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from deploylab.services.measure.images import SampleImage
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.repository import INPUT_NAME, NUMPY_DTYPES, OUTPUT_NAME

from .images import preprocess

Api = Literal["classify", "v2"]
APIS: tuple[Api, ...] = ("classify", "v2")

#: The KServe v2 binary-tensor extension: the JSON header's length, the raw tensor bytes follow it.
HEADER_LENGTH = "Inference-Header-Content-Length"


class InvalidResponseError(ValueError):
    """A response that arrived but is not the right answer; the message says what was wrong."""


@dataclass(frozen=True)
class Target:
    """The model a load test exercises: catalog name, variant, and the Triton model serving it."""

    model: str
    variant: str
    triton_model: str
    num_classes: int


def resolve_target(model: str, variant: str | None = None) -> Target:
    """The target for a catalog model (default variant when `variant` is empty); unknown names raise."""
    spec = get_spec(model)
    chosen = spec.variant(variant or None).name
    return Target(spec.name, chosen, spec.triton_name(chosen), spec.num_classes)


@dataclass(frozen=True)
class PreparedRequest:
    """One ready-to-send POST; `name` groups it in Locust's statistics (per model and variant)."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    name: str


def request_name(api: Api, target: Target) -> str:
    """Statistics name: `classify resnet50:default`, `v2 repvgg_a0_deploy`."""
    if api == "classify":
        return f"classify {target.model}:{target.variant}"
    return f"v2 {target.triton_model}"


def classify_requests(target: Target, images: Sequence[SampleImage], top_k: int) -> list[PreparedRequest]:
    """Raw-JPEG classify requests, one per image (the variant is pinned so routing can't change it)."""
    path = f"/v1/models/{target.model}/classify?top_k={top_k}&variant={target.variant}"
    headers = {"Content-Type": "image/jpeg"}
    name = request_name("classify", target)
    return [PreparedRequest(path, image.jpeg, headers, name) for image in images]


def v2_body(tensor: np.ndarray, datatype: str = "FP32") -> tuple[bytes, int]:
    """A binary-tensor infer body for one input of `datatype` (FP32, or UINT8 for a model that
    normalises in its graph) that asks for binary logits.

    Returns the body and the JSON header's length (the `Inference-Header-Content-Length` value).
    """
    data = np.ascontiguousarray(tensor, dtype=NUMPY_DTYPES[datatype]).tobytes()
    header = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": list(tensor.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(data)},
            }
        ],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    return encoded + data, len(encoded)


def input_datatype(config: Mapping[str, object]) -> str:
    """The datatype a served model's input takes, from its v2 model config (`GET .../config`)."""
    inputs = config.get("input")
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    return str(first.get("data_type", "TYPE_FP32")).removeprefix("TYPE_")


def v2_requests(
    target: Target, images: Sequence[SampleImage], datatype: str = "FP32"
) -> list[PreparedRequest]:
    """v2 infer requests carrying each image preprocessed exactly as the model expects (batch 1): the
    input `datatype` its config declares (`input_datatype`)."""
    spec = get_spec(target.model)
    name = request_name("v2", target)
    requests = []
    for image in images:
        body, header_length = v2_body(preprocess(image.jpeg, spec.preprocessing, datatype), datatype)
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(header_length)}
        requests.append(PreparedRequest(f"/v2/models/{target.triton_model}/infer", body, headers, name))
    return requests


def build_requests(
    api: Api, target: Target, images: Sequence[SampleImage], top_k: int, datatype: str = "FP32"
) -> list[PreparedRequest]:
    """The requests of `api`; v2 tensors in the input `datatype` the served model declares."""
    if api == "classify":
        return classify_requests(target, images, top_k)
    if api == "v2":
        return v2_requests(target, images, datatype)
    raise ValueError(f"unknown api {api!r}; use one of {', '.join(APIS)}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _status_error(status: int, body: bytes) -> InvalidResponseError:
    try:
        error = json.loads(body)["error"]
        detail = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = body[:200].decode(errors="replace")
    return InvalidResponseError(f"HTTP {status}: {detail}")


def check_classify(status: int, headers: Mapping[str, str], body: bytes, target: Target, top_k: int) -> None:
    """Raise unless this is a ClassifyResponse for one image from the expected model and variant."""
    if status != 200:
        raise _status_error(status, body)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise InvalidResponseError(f"classify answered non-JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidResponseError("classify answered JSON that is not an object")
    if (payload.get("model"), payload.get("variant")) != (target.model, target.variant):
        answered = f"{payload.get('model')}:{payload.get('variant')}"
        raise InvalidResponseError(f"answered by {answered}, expected {target.model}:{target.variant}")
    results = payload.get("results")
    if not isinstance(results, list) or len(results) != 1:
        raise InvalidResponseError(f"expected one result, got {results!r:.80}")
    predictions = results[0].get("top_k") if isinstance(results[0], dict) else None
    if not isinstance(predictions, list) or len(predictions) != min(top_k, target.num_classes):
        raise InvalidResponseError(f"expected top-{top_k}, got {predictions!r:.80}")
    scores = [p.get("score") for p in predictions]
    if not all(isinstance(s, int | float) and 0.0 <= s <= 1.0 for s in scores):
        raise InvalidResponseError(f"scores outside [0, 1]: {scores}")
    if any(a < b for a, b in zip(scores, scores[1:], strict=False)):
        raise InvalidResponseError(f"top-k not sorted by score: {scores}")
    served = _header(headers, "X-Deploylab-Model")
    if served is not None and served != target.triton_model:
        raise InvalidResponseError(f"X-Deploylab-Model {served}, expected {target.triton_model}")


def check_v2(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> None:
    """Raise unless this is a binary v2 response with finite FP32 logits of shape [1, num_classes]."""
    if status != 200:
        raise _status_error(status, body)
    length_text = _header(headers, HEADER_LENGTH)
    header_length = int(length_text) if length_text and length_text.isdigit() else len(body)
    try:
        header = json.loads(body[:header_length])
        output = next(o for o in header["outputs"] if o["name"] == OUTPUT_NAME)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise InvalidResponseError(f"v2 response has no {OUTPUT_NAME!r} output") from None
    if header.get("model_name") not in (None, target.triton_model):
        raise InvalidResponseError(f"answered by {header.get('model_name')}, expected {target.triton_model}")
    expected_shape = [1, target.num_classes]
    if output.get("shape") != expected_shape or output.get("datatype") != "FP32":
        raise InvalidResponseError(
            f"logits {output.get('datatype')}{output.get('shape')}, expected FP32{expected_shape}"
        )
    size = output.get("parameters", {}).get("binary_data_size")
    raw = body[header_length:]
    if size != 4 * target.num_classes or len(raw) != size:
        raise InvalidResponseError(f"logits carry {len(raw)} bytes, expected {4 * target.num_classes}")
    logits = np.frombuffer(raw, dtype=np.float32)
    if not all(math.isfinite(v) for v in (float(logits.min()), float(logits.max()))):
        raise InvalidResponseError("logits are not finite")
