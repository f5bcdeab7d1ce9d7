"""Classification through the real gateway and real Triton: answers, batches, variants, odd images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from deploylab.services.gateway.preprocess import decode_and_preprocess
from deploylab.services.modelzoo.catalog import get_spec, imagenet_labels
from deploylab.services.modelzoo.repository import onnx_path

from tests.support import images
from tests.support.http import classify, error_of


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


def test_raw_jpeg_png_webp_each_get_top_k(client: httpx.Client) -> None:
    for data, media in (
        (images.jpeg(), "image/jpeg"),
        (images.png(), "image/png"),
        (images.webp(), "image/webp"),
    ):
        response = classify(client, "resnet18", data, media, top_k=3)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["variant"], body["triton_model"], body["version"]) == (
            "resnet18",
            "default",
            "resnet18",
            "1",
        )
        (result,) = body["results"]
        scores = [p["score"] for p in result["top_k"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
        assert all(p["label"] == imagenet_labels()[p["index"]] for p in result["top_k"])
        timings = body["timings"]
        assert 0 < timings["decode_preprocess_ms"] < timings["total_ms"]
        assert 0 < timings["inference_ms"] < timings["total_ms"]
        assert response.headers["X-Deploylab-Model"] == "resnet18"


def test_answer_matches_in_process_onnxruntime(client: httpx.Client, model_repository: Path) -> None:
    data = images.jpeg(seed=5)
    batch = decode_and_preprocess(data, get_spec("resnet18").preprocessing, 10**8)[0][None]
    session = ort.InferenceSession(
        str(onnx_path(model_repository, "resnet18")), providers=["CPUExecutionProvider"]
    )
    logits = session.run(None, {"input": batch})[0][0]
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    expected = np.argsort(-probabilities)[:5]
    body = classify(client, "resnet18", data, top_k=5).json()
    got = [p["index"] for p in body["results"][0]["top_k"]]
    assert got == expected.tolist()
    np.testing.assert_allclose(
        [p["score"] for p in body["results"][0]["top_k"]], probabilities[expected], rtol=1e-4
    )


def test_multipart_batch_answers_in_order(client: httpx.Client) -> None:
    parts = [images.jpeg(seed=s) for s in (1, 2, 3)]
    response = client.post(
        "/v1/models/resnet18/classify",
        files=[("file", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(parts)],
    )
    assert response.status_code == 200, response.text
    batch = response.json()["results"]
    assert len(batch) == 3
    for data, result in zip(parts, batch, strict=True):
        single = classify(client, "resnet18", data).json()["results"][0]
        assert [p["index"] for p in result["top_k"]] == [p["index"] for p in single["top_k"]]


def test_batch_larger_than_max_batch_size_is_split(client: httpx.Client) -> None:
    parts = [images.jpeg(seed=s % 3) for s in range(11)]  # max_batch_size is 8
    response = client.post(
        "/v1/models/mobilenet_v3_small/classify",
        files=[("file", (f"{i}.jpg", d, "image/jpeg")) for i, d in enumerate(parts)],
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 11
    assert results[0]["top_k"] == results[3]["top_k"] == results[9]["top_k"]


def test_repvgg_deploy_and_train_agree_through_the_gateway(client: httpx.Client) -> None:
    for seed in range(3):
        data = images.jpeg(seed=seed)
        deploy = classify(client, "repvgg_a0", data, top_k=5).json()
        train = classify(client, "repvgg_a0", data, top_k=5, variant="train").json()
        assert (deploy["variant"], train["variant"]) == ("deploy", "train")
        assert train["triton_model"] == "repvgg_a0_train"
        assert [p["index"] for p in deploy["results"][0]["top_k"]] == [
            p["index"] for p in train["results"][0]["top_k"]
        ]
        np.testing.assert_allclose(
            [p["score"] for p in deploy["results"][0]["top_k"]],
            [p["score"] for p in train["results"][0]["top_k"]],
            rtol=1e-4,
        )


def top5(client: httpx.Client, data: bytes, media: str) -> list[int]:
    response = classify(client, "resnet18", data, media)
    assert response.status_code == 200, response.text
    return [p["index"] for p in response.json()["results"][0]["top_k"]]


def test_odd_images_are_handled_like_users_expect(client: httpx.Client) -> None:
    picture = images.pattern(seed=9)
    upright = top5(client, images.encode(picture, "JPEG", quality=95), "image/jpeg")
    assert top5(client, images.exif_rotated_jpeg(picture), "image/jpeg") == upright
    gray = picture.convert("L")
    assert top5(client, images.png_16bit(gray), "image/png") == top5(
        client, images.encode(gray, "PNG"), "image/png"
    )
    assert top5(client, images.encode(picture.convert("RGBA"), "PNG"), "image/png") == top5(
        client, images.encode(picture, "PNG"), "image/png"
    )
    assert len(top5(client, images.encode(picture.convert("CMYK"), "JPEG"), "image/jpeg")) == 5


def test_unknown_variant_and_bad_top_k_are_client_errors(client: httpx.Client) -> None:
    response = classify(client, "resnet18", variant="deploy")
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_input"
    response = classify(client, "resnet18", top_k=0)
    assert response.status_code == 422 and error_of(response)["code"] == "validation_error"


def test_alias_and_catalog_names_resolve(client: httpx.Client) -> None:
    body = classify(client, "classifier").json()
    assert (body["route"], body["model"]) == ("classifier", "resnet18")
