"""After traffic, /metrics carries the right names, labels and counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from deploylab.services.gateway.metrics import ROUTES
from deploylab.services.modelzoo.catalog import CATALOG
from deploylab.services.runtime.settings import RuntimeSettings

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images
from tests.support.http import classify
from tests.support.metrics import scrape, value


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


def metrics(client: httpx.Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_requests_latency_and_images_are_counted_with_labels(client: httpx.Client) -> None:
    before = metrics(client)
    for _ in range(3):
        assert classify(client, "mobilenet_v3_small").status_code == 200
    response = client.post(
        "/v1/models/mobilenet_v3_small/classify",
        files=[("file", (f"{i}.png", images.png(seed=i), "image/png")) for i in range(4)],
    )
    assert response.status_code == 200
    after = metrics(client)
    labels = {"route": "classify", "model": "mobilenet_v3_small", "variant": "default"}

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("deploylab_gateway_requests_total", status="200") == 4
    assert delta("deploylab_gateway_request_duration_seconds_count") == 4
    assert value(after, "deploylab_gateway_request_duration_seconds_bucket", **labels, le="10.0") >= 4
    for name in (
        "deploylab_gateway_preprocess_duration_seconds_count",
        "deploylab_gateway_inference_duration_seconds_count",
    ):
        assert (
            value(after, name, model="mobilenet_v3_small", variant="default")
            - value(before, name, model="mobilenet_v3_small", variant="default")
            == 4
        )
    images_sum = "deploylab_gateway_images_per_request_sum"
    assert (
        value(after, images_sum, route="classify", model="mobilenet_v3_small")
        - value(before, images_sum, route="classify", model="mobilenet_v3_small")
        == 7
    )
    assert value(after, "deploylab_gateway_in_flight_requests", model="mobilenet_v3_small") == 0
    assert value(after, "deploylab_gateway_triton_up") == 1


def test_histogram_buckets_span_1ms_to_10s(client: httpx.Client) -> None:
    classify(client, "resnet18")
    buckets = {
        s.labels["le"] for s in scrape(metrics(client), "deploylab_gateway_request_duration_seconds_bucket")
    }
    assert {"0.001", "0.01", "0.1", "1.0", "10.0", "+Inf"} <= buckets


def test_errors_are_counted_by_kind_and_status(client: httpx.Client) -> None:
    before = metrics(client)
    classify(client, "resnet51")
    classify(client, "resnet18", b"", "image/jpeg")
    classify(client, "resnet18", b"x", "text/plain")
    after = metrics(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("deploylab_gateway_errors_total", kind="model_not_found", model="unknown") == 1
    assert delta("deploylab_gateway_errors_total", kind="invalid_image", model="resnet18") == 1
    assert delta("deploylab_gateway_errors_total", kind="unsupported_media_type", model="resnet18") == 1
    assert delta("deploylab_gateway_requests_total", route="classify", status="404") == 1


def test_label_values_come_from_closed_sets(client: httpx.Client) -> None:
    classify(client, "../../etc/passwd")
    classify(client, "x" * 5000)
    text = metrics(client)
    # The session gateway also counts other modules' requests: any catalog name may appear, nothing else.
    for sample in scrape(text, "deploylab_gateway_requests_total"):
        assert sample.labels["model"] in {*CATALOG, "unknown"}
        assert sample.labels["route"] in ROUTES
    assert "passwd" not in text and "xxxxxxxx" not in text


def test_several_workers_report_one_aggregated_set_of_metrics(
    triton: object, runtime_settings: RuntimeSettings, tmp_path: Path
) -> None:
    """With 2 uvicorn workers every scrape, whichever worker answers it, counts all requests."""
    settings = make_gateway_settings(runtime_settings, workers=2)
    with running_gateway(settings, tmp_path) as gateway:
        for _ in range(12):
            with httpx.Client(base_url=gateway.url, timeout=30) as fresh:  # new connection each time
                response = classify(fresh, "mobilenet_v3_small")
                assert response.status_code == 200
        for _ in range(6):
            with httpx.Client(base_url=gateway.url, timeout=30) as fresh:
                text = fresh.get("/metrics").text
                labels = {"route": "classify", "model": "mobilenet_v3_small", "status": "200"}
                assert value(text, "deploylab_gateway_requests_total", **labels) == 12
                assert value(text, "deploylab_gateway_in_flight_requests", model="mobilenet_v3_small") == 0
        assert gateway.process is not None
        pids = {p.pid for p in psutil.Process(gateway.process.pid).children(recursive=True)}
        assert len(pids) >= 2, "expected two worker processes"
