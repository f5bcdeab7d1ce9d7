"""Validate a KServe v2 infer request before it reaches Triton, with a reason a client can act on.

Triton would refuse most bad requests too, but only after the body crossed another hop, and with
messages about its internals. Checking here gives a 400 naming the problem (shape, dtype, sizes,
NaN/Inf, a parameter this gateway does not pass on) and keeps garbage off the inference path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from deploylab.services.modelzoo.repository import INPUT_NAME, NUMPY_DTYPES, OUTPUT_NAME

from .errors import InvalidTensorError


@dataclass(frozen=True)
class InferRequestInfo:
    batch_size: int
    binary: bool
    shape: list[int]
    header: dict[str, Any]  # the parsed JSON part
    json_size: int  # where the binary tensor starts


#: The `parameters` a client may send, one set per level; every other key is refused (docs/contracts.md).
#: Triton acts on more than these: `shared_memory_*` makes it read or write a region by name (the
#: gateway's own regions included), `priority` and `sequence_*` steer its scheduler for everyone
#: sharing the model, `classification` replaces the FP32 logits this gateway promises with strings,
#: and any other key reaches the backend as a custom parameter. None of that is a client's to choose.
REQUEST_PARAMETERS = frozenset({"binary_data_output", "timeout"})
INPUT_PARAMETERS = frozenset({"binary_data_size"})
OUTPUT_PARAMETERS = frozenset({"binary_data"})
ALLOWED_PARAMETERS: dict[str, frozenset[str]] = {
    "request": REQUEST_PARAMETERS,
    "input": INPUT_PARAMETERS,
    "output": OUTPUT_PARAMETERS,
}

#: The JSON type each allowed parameter's value must have (bool is not an int here).
_PARAMETER_TYPES: dict[str, type] = {
    "binary_data_output": bool,
    "timeout": int,
    "binary_data_size": int,
    "binary_data": bool,
}

#: Request fields the shared-memory fast path knows how to carry over; anything else goes over HTTP.
_PLAIN_REQUEST_KEYS = {"id", "inputs", "outputs", "parameters"}
_PLAIN_REQUEST_PARAMETERS = {"binary_data_output", "timeout"}


def wants_plain_binary_answer(info: InferRequestInfo) -> bool:
    """True for a binary-tensor request asking for the logits as binary and nothing unusual.

    Those are the requests the gateway may run through shared memory and answer itself in the
    binary format Triton would have used; everything else is forwarded byte for byte.
    """
    header = info.header
    if not info.binary or set(header) - _PLAIN_REQUEST_KEYS:
        return False
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict) or set(parameters) - _PLAIN_REQUEST_PARAMETERS:
        return False
    if set(header["inputs"][0].get("parameters") or {}) - {"binary_data_size"}:
        return False
    outputs = header.get("outputs")
    if outputs is None:
        return parameters.get("binary_data_output") is True
    if len(outputs) != 1:
        return False
    output_parameters = outputs[0].get("parameters") or {}
    if not isinstance(output_parameters, dict) or set(output_parameters) - {"binary_data"}:
        return False
    return output_parameters.get("binary_data", parameters.get("binary_data_output")) is True


def _header(body: bytes | memoryview, header_length: int | None) -> tuple[dict[str, Any], int]:
    if header_length is not None and not 0 < header_length <= len(body):
        raise InvalidTensorError(
            f"Inference-Header-Content-Length {header_length} does not fit a {len(body)}-byte body"
        )
    raw = body if header_length is None else body[:header_length]
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidTensorError(f"request is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidTensorError("request JSON must be an object with 'inputs'")
    return header, len(raw)


#: What each input datatype carries, for the message that refuses another one.
_DATATYPE_MEANING = {
    "FP32": "normalized pixels (mean/std applied)",
    "UINT8": "resized and cropped pixels 0-255, normalized inside the model",
}


def validate_infer_request(
    body: bytes | memoryview,
    header_length: int | None,
    *,
    input_size: int,
    max_batch_size: int,
    datatype: str = "FP32",
) -> InferRequestInfo:
    """Check the one input tensor against the model's contract (its input `datatype` as Triton's config
    declares it: FP32, or UINT8 for a model that normalises in its graph); raise InvalidTensorError
    otherwise."""
    header, json_size = _header(body, header_length)
    check_parameters(header)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidTensorError(f"expected exactly one input tensor named {INPUT_NAME!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise InvalidTensorError(f"input must be named {INPUT_NAME!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != datatype:
        meaning = _DATATYPE_MEANING.get(datatype)
        raise InvalidTensorError(
            f"input datatype must be {datatype}{f' ({meaning})' if meaning else ''} for this model, "
            f"got {tensor.get('datatype')!r}"
        )
    shape = tensor.get("shape")
    expected_tail = [3, input_size, input_size]
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[1:] != expected_tail
        or shape[0] < 1
    ):
        raise InvalidTensorError(
            f"input shape must be [N, {', '.join(map(str, expected_tail))}] with N >= 1, got {shape!r}"
        )
    batch = shape[0]
    if max_batch_size > 0 and batch > max_batch_size:
        raise InvalidTensorError(f"batch of {batch} exceeds the model's max_batch_size {max_batch_size}")
    outputs = header.get("outputs")
    if outputs is not None:
        names = [o.get("name") for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []
        if not isinstance(outputs, list) or len(names) != len(outputs) or set(names) - {OUTPUT_NAME}:
            raise InvalidTensorError(f"the only output is {OUTPUT_NAME!r}, requested {outputs!r}")
    elements = math.prod(shape)
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    parameters = tensor.get("parameters") or {}
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        if header_length is None:
            raise InvalidTensorError("binary_data_size given without Inference-Header-Content-Length")
        if binary_size != elements * dtype.itemsize:
            raise InvalidTensorError(
                f"binary_data_size {binary_size} != {elements} {datatype} elements x {dtype.itemsize} "
                f"bytes for shape {shape}"
            )
        if len(body) - json_size != binary_size:
            raise InvalidTensorError(
                f"body carries {len(body) - json_size} binary bytes, header declares {binary_size}"
            )
        if dtype.kind == "f":
            _check_finite(np.frombuffer(body, dtype=dtype, count=elements, offset=json_size))
        return InferRequestInfo(batch, True, shape, header, json_size)
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InvalidTensorError("input has neither 'data' nor binary_data_size")
    try:
        values = np.asarray(data, dtype=np.float32 if dtype.kind == "f" else np.float64).ravel()
    except (ValueError, TypeError):
        raise InvalidTensorError("input 'data' must be a (nested) list of numbers") from None
    if values.size != elements:
        raise InvalidTensorError(f"input 'data' holds {values.size} values, shape {shape} needs {elements}")
    _check_finite(values)
    if dtype.kind == "u":
        _check_pixels(values, dtype)
    return InferRequestInfo(batch, False, shape, header, json_size)


def check_parameters(header: dict[str, Any]) -> None:
    """Refuse a `parameters` key outside its level's allow-list, or an allowed one of the wrong type.

    Only keys are named in the message, never values: a guessed shared-memory region name gets the
    same answer whether or not such a region exists.
    """
    _check_level(header, "request")
    for level in ("input", "output"):
        tensors = header.get(f"{level}s")
        for tensor in tensors if isinstance(tensors, list) else ():
            if isinstance(tensor, dict):
                _check_level(tensor, level)


def _check_level(owner: dict[str, Any], level: str) -> None:
    if "parameters" not in owner:
        return
    parameters, allowed = owner["parameters"], ALLOWED_PARAMETERS[level]
    if not isinstance(parameters, dict):
        raise InvalidTensorError(f"{level} 'parameters' must be an object")
    for key, value in parameters.items():
        shown = key if len(key) <= 64 else key[:64] + "…"
        if key not in allowed:
            raise InvalidTensorError(
                f"{level} parameter {shown!r} is not accepted; {level} parameters allowed: "
                f"{', '.join(sorted(allowed))}"
            )
        if _PARAMETER_TYPES[key] is bool:
            if not isinstance(value, bool):
                raise InvalidTensorError(f"{level} parameter {shown!r} must be true or false")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidTensorError(f"{level} parameter {shown!r} must be a non-negative integer")


def _check_pixels(values: np.ndarray, dtype: np.dtype[Any]) -> None:
    """JSON data for an unsigned-integer input: whole numbers within the type's range."""
    top = np.iinfo(dtype).max
    if not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= top):
        raise InvalidTensorError(f"input 'data' must hold integers 0..{top} for {dtype.name} pixels")


def _check_finite(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int(values.size - np.isfinite(values).sum())
        raise InvalidTensorError(f"input holds {bad} NaN/Inf values; send finite numbers")
