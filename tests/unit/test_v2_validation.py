"""KServe v2 infer requests are checked before Triton sees them, with reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.gateway.errors import InvalidTensorError
from services.gateway.v2_validation import validate_infer_request


def binary_request(array: np.ndarray, datatype: str = "FP32", name: str = "input") -> tuple[bytes, int]:
    header = json.dumps({
        "inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype,
                    "parameters": {"binary_data_size": array.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    return header + array.tobytes(), len(header)


def json_request(data: object, shape: list[int]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]}
    ).encode()


def check(body: bytes, header_length: int | None = None, max_batch: int = 8) -> int:
    return validate_infer_request(body, header_length, input_size=224, max_batch_size=max_batch).batch_size


def test_valid_binary_and_json_requests_pass() -> None:
    assert check(*binary_request(np.zeros((3, 3, 224, 224), np.float32))) == 3
    assert check(json_request(np.zeros((1, 3, 224, 224)).tolist(), [1, 3, 224, 224])) == 1


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (np.zeros((1, 3, 100, 100), np.float32), {}, r"shape must be \[N, 3, 224, 224\]"),
        (np.zeros((1, 224, 224, 3), np.float32), {}, "shape must be"),
        (np.zeros((9, 3, 224, 224), np.float32), {}, "exceeds the model's max_batch_size 8"),
        (np.zeros((1, 3, 224, 224), np.int32), {"datatype": "INT32"}, "datatype must be FP32"),
        (np.zeros((1, 3, 224, 224), np.float32), {"name": "images"}, "must be named 'input'"),
        (np.full((1, 3, 224, 224), np.nan, np.float32), {}, "NaN/Inf"),
        (np.full((1, 3, 224, 224), np.inf, np.float32), {}, "NaN/Inf"),
    ],
    ids=["small", "nhwc", "batch", "dtype", "name", "nan", "inf"],
)
def test_bad_binary_tensors_are_refused(array: np.ndarray, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidTensorError, match=message):
        check(*binary_request(array, **kwargs))


def test_binary_size_mismatches_are_refused() -> None:
    body, length = binary_request(np.zeros((1, 3, 224, 224), np.float32))
    with pytest.raises(InvalidTensorError, match="binary bytes"):
        check(body[:-4], length)
    with pytest.raises(InvalidTensorError, match="does not fit"):
        check(body, len(body) + 10)
    with pytest.raises(InvalidTensorError, match="without Inference-Header-Content-Length"):
        check(body[:length], None)


def test_json_data_problems_are_refused() -> None:
    with pytest.raises(InvalidTensorError, match="holds 3 values"):
        check(json_request([1, 2, 3], [1, 3, 224, 224]))
    with pytest.raises(InvalidTensorError, match="list of numbers"):
        check(json_request(["a"] * 150528, [1, 3, 224, 224]))
    with pytest.raises(InvalidTensorError, match="not valid JSON"):
        check(b"{nope")
    with pytest.raises(InvalidTensorError, match="exactly one input"):
        check(b'{"inputs": []}')
    with pytest.raises(InvalidTensorError, match="only output is 'logits'"):
        check(
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 3, 224, 224],
                            "datatype": "FP32",
                            "data": [0.0] * 150528,
                        }
                    ],
                    "outputs": [{"name": "probs"}],
                }
            ).encode()
        )
