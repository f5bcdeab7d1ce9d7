"""Routing through the real gateway: an 80/20 split, sticky keys, shadows that never touch the primary.

The module has a gateway of its own, so the shadow counters it reads move only with its own requests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images
from tests.support.http import classify
from tests.support.metrics import scrape


@pytest.fixture(scope="module")
def client(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    settings = make_gateway_settings(runtime_settings)
    with (
        running_gateway(settings, tmp_path_factory.mktemp("routing-logs")) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        yield client


def test_80_20_split_over_1000_requests_lands_within_5_percent(client: httpx.Client) -> None:
    counts: Counter[str] = Counter()
    for _ in range(1000):
        response = client.get("/v2/models/ab/ready")
        assert response.status_code == 200
        counts[response.headers["X-Deploylab-Model"]] += 1
    assert set(counts) == {"resnet18", "mobilenet_v3_small"}
    assert abs(counts["resnet18"] / 1000 - 0.80) <= 0.05, counts


def test_split_applies_to_real_inference_too(client: httpx.Client) -> None:
    models = Counter(classify(client, "ab", images.jpeg(seed=i % 3)).json()["model"] for i in range(60))
    assert (
        set(models) == {"resnet18", "mobilenet_v3_small"}
        and models["resnet18"] > models["mobilenet_v3_small"]
    )


def test_sticky_key_keeps_a_caller_on_one_side(client: httpx.Client) -> None:
    sides = set()
    for user in ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"):
        seen = {
            client.get("/v2/models/ab/ready", headers={"X-Deploylab-Key": user}).headers["X-Deploylab-Model"]
            for _ in range(15)
        }
        assert len(seen) == 1, (user, seen)
        sides |= seen
    assert len(sides) == 2


def shadow_counts(client: httpx.Client) -> Counter[str]:
    samples = scrape(client.get("/metrics").text, "deploylab_gateway_shadow_requests_total")
    return Counter({s.labels["outcome"]: int(s.value) for s in samples if s.labels["model"] == "repvgg_a0"})


def test_shadow_never_changes_the_primary_answer_and_records_agreement(client: httpx.Client) -> None:
    before = shadow_counts(client)
    for seed in range(5):
        data = images.jpeg(seed=seed)
        shadowed = classify(client, "repvgg", data).json()
        plain = classify(client, "repvgg_a0", data).json()
        assert shadowed["results"] == plain["results"]
        assert (shadowed["route"], shadowed["triton_model"]) == ("repvgg", "repvgg_a0_deploy")
    deadline = time.monotonic() + 10  # a wait that ends once the five shadows are counted
    while time.monotonic() < deadline:
        after = shadow_counts(client)
        if after["agree"] + after["disagree"] + after["error"] - sum(before.values()) >= 5:
            break
        time.sleep(0.2)
    assert after["agree"] - before["agree"] == 5  # deploy == train: exact fusion agrees on top-1
    assert after["error"] == before["error"]
