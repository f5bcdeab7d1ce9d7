"""Overload: open-loop arrivals at twice the measured capacity, against the default (adaptive) gateway.

Promise: the requests the gateway accepts keep a p99 within 2x of the unloaded p99 (the excess gets
429 + Retry-After instead of queueing), the gateway's memory stays flat, and normal service is back
within seconds. The unloaded p99 pools sequential requests before and after the overload; the
capacity is measured in the same run, on the same machine, just before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.chaos.load import RequestTemplate
from services.chaos.scenarios import OverloadPlan, overload
from services.gateway.stack import GatewayProcess
from services.runtime.settings import RuntimeSettings
from services.runtime.triton import TritonServer
from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images

MODEL = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def adaptive_gateway(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = make_gateway_settings(runtime_settings, admission="adaptive")
    assert settings.admission == "adaptive"
    with running_gateway(settings, tmp_path_factory.mktemp("overload-logs")) as gateway:
        yield gateway


def test_overload_at_twice_capacity_sheds_the_excess_and_keeps_accepted_latency(
    adaptive_gateway: GatewayProcess,
) -> None:
    assert adaptive_gateway.process is not None
    plan = OverloadPlan(factor=2.0, overload_s=6.0, unloaded_requests=300, capacity_s=3.0)
    request = RequestTemplate.classify(MODEL, images.jpeg())
    result = asyncio.run(overload(adaptive_gateway.url, adaptive_gateway.process.pid, request, plan))
    failures = result.failures()
    if failures and all(f.startswith("accepted p99") for f in failures):
        # NOTE: a p99 over a few hundred requests on 2 shared cores can be decided by one burst from
        # another tenant; a gateway that queues fails every run by 3-12x, so one fresh rerun may
        # clear a latency-only miss (everything else must pass the first time).
        result = asyncio.run(overload(adaptive_gateway.url, adaptive_gateway.process.pid, request, plan))
        assert result.passed, f"twice: {failures} then {result.failures()}"
    numbers = result.numbers
    assert result.passed, "; ".join(result.failures())
    assert numbers["offered_rps"] >= 1.9 * numbers["capacity_rps"]
    assert numbers["p99_ratio"] <= 2.0
    assert 0.0 < numbers["shed_fraction"] < 1.0  # some shed, some served
    assert result.summary.lost == 0 and result.summary.refused == 0
    assert result.recovery_s is not None and result.recovery_s <= 5.0
    assert numbers["rss_peak_mib"] - numbers["rss_before_mib"] <= 64


def test_gateway_log_has_no_errors_after_the_overload(adaptive_gateway: GatewayProcess) -> None:
    log = Path(adaptive_gateway.log_path).read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-2000:]
