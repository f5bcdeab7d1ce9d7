"""What the load test sends and how it judges answers: a wrong answer must be a failure."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from deploylab.loadtests.images import preprocess
from deploylab.loadtests.payloads import (
    HEADER_LENGTH,
    InvalidResponseError,
    check_classify,
    check_v2,
    classify_requests,
    request_name,
    resolve_target,
    v2_body,
    v2_requests,
)
from deploylab.services.measure.images import sample_images
from deploylab.services.modelzoo.catalog import get_spec
from PIL import Image

TARGET = resolve_target("repvgg_a0", "train")


def classify_body(
    model: str = "repvgg_a0", variant: str = "train", k: int = 5, scores: list[float] | None = None
) -> bytes:
    scores = scores or [0.5, 0.2, 0.1, 0.05, 0.01][:k]
    top = [{"index": i, "label": f"class {i}", "score": s} for i, s in enumerate(scores)]
    return json.dumps({"model": model, "variant": variant, "results": [{"top_k": top}]}).encode()


def v2_response(logits: np.ndarray, model: str = "repvgg_a0_train") -> tuple[dict[str, str], bytes]:
    raw = logits.astype(np.float32).tobytes()
    header = {
        "model_name": model,
        "outputs": [
            {
                "name": "logits",
                "datatype": "FP32",
                "shape": list(logits.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
    }
    encoded = json.dumps(header).encode()
    return {HEADER_LENGTH: str(len(encoded))}, encoded + raw


def test_resolve_target_uses_the_default_variant_and_triton_name() -> None:
    assert resolve_target("repvgg_a0") == resolve_target("repvgg_a0", "deploy")
    assert resolve_target("repvgg_a0").triton_model == "repvgg_a0_deploy"
    assert resolve_target("resnet50").variant == "default"


def test_sample_images_are_photo_jpegs_of_distinct_content_at_their_sizes() -> None:
    images = sample_images(4)
    assert all(image.jpeg.startswith(b"\xff\xd8") for image in images)
    assert len({image.jpeg for image in images}) == 4
    for image in images:
        with Image.open(io.BytesIO(image.jpeg)) as opened:
            assert opened.size == (image.width, image.height) and opened.mode == "RGB"


def test_preprocess_gives_a_normalized_nchw_tensor_of_the_crop_size() -> None:
    tensor = preprocess(sample_images(1)[0].jpeg, get_spec("resnet50").preprocessing)
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == np.float32
    assert -3.0 < float(tensor.mean()) < 3.0 and float(tensor.std()) > 0.1


def test_v2_body_puts_the_tensor_after_its_json_header() -> None:
    tensor = np.arange(6, dtype=np.float32).reshape(1, 6)
    body, header_length = v2_body(tensor)
    header = json.loads(body[:header_length])
    assert header["inputs"][0]["shape"] == [1, 6]
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 24
    assert np.array_equal(np.frombuffer(body[header_length:], dtype=np.float32), tensor.ravel())


def test_requests_are_named_per_model_and_variant() -> None:
    images = sample_images(2)
    classify = classify_requests(TARGET, images, top_k=3)
    v2 = v2_requests(TARGET, images)
    assert {r.name for r in classify} == {request_name("classify", TARGET)} == {"classify repvgg_a0:train"}
    assert classify[0].path == "/v1/models/repvgg_a0/classify?top_k=3&variant=train"
    assert {r.name for r in v2} == {"v2 repvgg_a0_train"}
    assert v2[0].path == "/v2/models/repvgg_a0_train/infer"
    assert int(v2[0].headers[HEADER_LENGTH]) < len(v2[0].body)


def test_check_classify_accepts_a_correct_answer() -> None:
    check_classify(200, {"X-Deploylab-Model": "repvgg_a0_train"}, classify_body(), TARGET, top_k=5)


@pytest.mark.parametrize(
    ("status", "headers", "body", "reason"),
    [
        (
            503,
            {},
            b'{"error": {"code": "backend_unavailable", "message": "down"}}',
            "HTTP 503: backend_unavailable",
        ),
        (200, {}, b"not json", "non-JSON"),
        (200, {}, classify_body(variant="deploy"), "expected repvgg_a0:train"),
        (200, {}, classify_body(k=3), "expected top-5"),
        (200, {}, classify_body(scores=[0.1, 0.5, 0.1, 0.05, 0.01]), "not sorted"),
        (200, {}, classify_body(scores=[1.5, 0.2, 0.1, 0.05, 0.01]), "outside [0, 1]"),
        (200, {"x-deploylab-model": "resnet50"}, classify_body(), "X-Deploylab-Model"),
    ],
)
def test_check_classify_rejects_wrong_answers(
    status: int, headers: dict[str, str], body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidResponseError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        check_classify(status, headers, body, TARGET, top_k=5)


def test_check_v2_accepts_finite_logits_of_the_right_shape() -> None:
    headers, body = v2_response(np.zeros((1, 1000)))
    check_v2(200, headers, body, TARGET)


def test_check_v2_rejects_truncated_nonfinite_or_foreign_logits() -> None:
    headers, body = v2_response(np.zeros((1, 1000)))
    with pytest.raises(InvalidResponseError, match="carry"):
        check_v2(200, headers, body[:-4], TARGET)
    headers, body = v2_response(np.full((1, 1000), np.nan))
    with pytest.raises(InvalidResponseError, match="not finite"):
        check_v2(200, headers, body, TARGET)
    headers, body = v2_response(np.zeros((1, 1000)), model="resnet50")
    with pytest.raises(InvalidResponseError, match="answered by resnet50"):
        check_v2(200, headers, body, TARGET)
    headers, body = v2_response(np.zeros((1, 10)))
    with pytest.raises(InvalidResponseError, match="expected FP32"):
        check_v2(200, headers, body, TARGET)
