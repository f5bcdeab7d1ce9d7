"""KServe v2 infer requests are checked before Triton sees them, with reasons."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonhttp
from deploylab.services.gateway.errors import InvalidTensorError
from deploylab.services.gateway.v2_validation import ALLOWED_PARAMETERS, validate_infer_request


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


# -- parameters -------------------------------------------------------------------------------------
def tritonclient_request(
    binary: bool = True, shm: str | None = None, class_count: int = 0, **options: Any
) -> tuple[bytes, int | None]:
    """The body tritonclient sends for one image, with whatever options a caller passes it."""
    tensor = tritonhttp.InferInput("input", [1, 3, 224, 224], "FP32")
    output = tritonhttp.InferRequestedOutput("logits", binary_data=binary, class_count=class_count)
    if shm == "input":
        tensor.set_shared_memory("deploylab_gw_1_abcdef_in1", 602112)
    else:
        tensor.set_data_from_numpy(np.zeros((1, 3, 224, 224), np.float32), binary_data=binary)
    if shm == "output":
        output.set_shared_memory("deploylab_gw_1_abcdef_out2", 4000)
    body, json_size = tritonhttp.InferenceServerClient.generate_request_body(
        [tensor], outputs=[output], **options
    )
    return body, json_size


def with_parameters(level: str, parameters: object, binary: bool = False) -> tuple[bytes, int | None]:
    """A valid request for one image with `parameters` set at `level` (request, input or output)."""
    array = np.zeros((1, 3, 224, 224), np.float32)
    tensor: dict[str, Any] = {"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32"}
    if binary:
        tensor["parameters"] = {"binary_data_size": array.nbytes}
    else:
        tensor["data"] = array.ravel().tolist()
    header: dict[str, Any] = {"inputs": [tensor], "outputs": [{"name": "logits"}]}
    owner = {"request": header, "input": tensor, "output": header["outputs"][0]}[level]
    if isinstance(parameters, dict) and isinstance(owner.get("parameters"), dict):
        owner["parameters"] = {**owner["parameters"], **parameters}
    else:
        owner["parameters"] = parameters
    encoded = json.dumps(header).encode()
    return (encoded + array.tobytes(), len(encoded)) if binary else (encoded, None)


def test_the_allow_list_is_data_and_holds_no_shared_memory_key() -> None:
    assert ALLOWED_PARAMETERS == {
        "request": frozenset({"binary_data_output", "timeout"}),
        "input": frozenset({"binary_data_size"}),
        "output": frozenset({"binary_data"}),
    }
    assert all(isinstance(names, frozenset) for names in ALLOWED_PARAMETERS.values())
    assert not [n for names in ALLOWED_PARAMETERS.values() for n in names if n.startswith("shared_memory")]


@pytest.mark.parametrize(
    "options",
    [{}, {"binary": False}, {"timeout": 2_000_000}, {"request_id": "r-1", "timeout": 0}],
    ids=["binary", "json", "timeout", "id-timeout-0"],
)
def test_what_tritonclient_sends_by_default_passes(options: dict[str, Any]) -> None:
    assert check(*tritonclient_request(**options)) == 1


def test_binary_data_output_passes_without_outputs() -> None:
    body = json.loads(json_request(np.zeros((1, 3, 224, 224)).tolist(), [1, 3, 224, 224]))
    body["parameters"] = {"binary_data_output": True}
    assert check(json.dumps(body).encode()) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shm": "input"}, "input parameter 'shared_memory_region' is not accepted"),
        ({"shm": "output"}, "output parameter 'shared_memory_region' is not accepted"),
        ({"shm": "output", "binary": False}, "output parameter 'shared_memory_region' is not accepted"),
        ({"class_count": 3}, "output parameter 'classification' is not accepted"),
        ({"priority": 1}, "request parameter 'priority' is not accepted"),
        ({"sequence_id": 7, "sequence_start": True}, "request parameter 'sequence_id' is not accepted"),
        ({"parameters": {"delay_ms": "5000"}}, "request parameter 'delay_ms' is not accepted"),
    ],
    ids=["shm-input", "shm-output", "shm-output-json", "classification", "priority", "sequence", "custom"],
)
def test_what_tritonclient_can_send_beyond_the_allow_list_is_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTensorError, match=message) as info:
        check(*tritonclient_request(**options))
    assert info.value.code == "invalid_tensor" and info.value.status == 400


SHARED_MEMORY_KEYS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("level", ["request", "input", "output"])
@pytest.mark.parametrize("key", [*SHARED_MEMORY_KEYS, "priority", "x"])
def test_every_key_outside_its_level_allow_list_is_refused_naming_key_and_level(
    key: str, level: str, binary: bool
) -> None:
    value: object = "deploylab_gw_1_abcdef_out2" if key == "shared_memory_region" else 4
    with pytest.raises(InvalidTensorError, match=rf"^{level} parameter '{key}' is not accepted; "):
        check(*with_parameters(level, {key: value}, binary))


@pytest.mark.parametrize(
    ("level", "key"),
    [("request", "binary_data_output"), ("request", "timeout"), ("input", "binary_data_size"),
     ("output", "binary_data")],
)  # fmt: skip
def test_an_allowed_key_is_refused_at_another_level(level: str, key: str) -> None:
    for other in {"request", "input", "output"} - {level}:
        with pytest.raises(InvalidTensorError, match=f"{other} parameter '{key}' is not accepted"):
            check(*with_parameters(other, {key: 1}))


def test_the_answer_does_not_depend_on_the_region_named() -> None:
    """No oracle: a real-looking region name and nonsense get the same refusal."""
    messages = set()
    for region in ("deploylab_gw_4242_a1b2c3_out2", "deploylab_gw_1_000000_in1", "nope", ""):
        with pytest.raises(InvalidTensorError) as info:
            check(
                *with_parameters("output", {"shared_memory_region": region, "shared_memory_byte_size": 4000})
            )
        messages.add(info.value.message)
    assert len(messages) == 1 and "deploylab_gw" not in messages.pop()


@pytest.mark.parametrize(
    ("level", "parameters", "message"),
    [
        (
            "request",
            {"binary_data_output": "yes"},
            "request parameter 'binary_data_output' must be true or false",
        ),
        ("request", {"timeout": -1}, "request parameter 'timeout' must be a non-negative integer"),
        ("request", {"timeout": True}, "must be a non-negative integer"),
        ("request", {"timeout": 1.5}, "must be a non-negative integer"),
        ("output", {"binary_data": 1}, "output parameter 'binary_data' must be true or false"),
        (
            "input",
            {"binary_data_size": "602112"},
            "input parameter 'binary_data_size' must be a non-negative",
        ),
        ("request", None, "request 'parameters' must be an object"),
        ("input", ["binary_data_size"], "input 'parameters' must be an object"),
        ("output", "binary_data", "output 'parameters' must be an object"),
    ],
)
def test_allowed_parameters_of_the_wrong_type_are_refused(
    level: str, parameters: object, message: str
) -> None:
    with pytest.raises(InvalidTensorError, match=message):
        check(*with_parameters(level, parameters))


def test_parameters_are_checked_before_the_tensor() -> None:
    """A region in place of data is refused for the region, not for the missing data."""
    body = json.dumps({
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 602112}}],
    }).encode()  # fmt: skip
    with pytest.raises(InvalidTensorError, match="input parameter 'shared_memory_region'"):
        check(body)


def test_long_parameter_names_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidTensorError) as info:
        check(*with_parameters("request", {"k" * 10_000: 1}))
    assert len(info.value.message) < 200


def check_uint8(body: bytes, header_length: int | None = None) -> int:
    return validate_infer_request(
        body, header_length, input_size=224, max_batch_size=8, datatype="UINT8"
    ).batch_size


def test_a_uint8_model_takes_uint8_pixels_binary_or_json() -> None:
    assert check_uint8(*binary_request(np.full((2, 3, 224, 224), 255, np.uint8), "UINT8")) == 2
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "UINT8",
                                   "data": np.full((1, 3, 224, 224), 7).tolist()}]}).encode()  # fmt: skip
    assert check_uint8(body) == 1


def test_a_datatype_other_than_the_models_is_refused_naming_the_expected_one() -> None:
    with pytest.raises(InvalidTensorError, match=r"datatype must be UINT8 \(.*pixels 0-255.*got 'FP32'"):
        check_uint8(*binary_request(np.zeros((1, 3, 224, 224), np.float32)))
    with pytest.raises(InvalidTensorError, match=r"datatype must be FP32 \(.*got 'UINT8'"):
        check(*binary_request(np.zeros((1, 3, 224, 224), np.uint8), "UINT8"))


def test_uint8_sizes_and_json_values_are_checked_as_uint8() -> None:
    body, length = binary_request(np.zeros((1, 3, 224, 224), np.uint8), "UINT8")
    with pytest.raises(InvalidTensorError, match="binary bytes"):
        check_uint8(body[:-1], length)
    for value in (256, -1, 1.5):
        data = np.full((1, 3, 224, 224), 0.0).tolist()
        data[0][0][0][0] = value
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "UINT8",
                                       "data": data}]}).encode()  # fmt: skip
        with pytest.raises(InvalidTensorError, match=r"integers 0\.\.255"):
            check_uint8(body)
