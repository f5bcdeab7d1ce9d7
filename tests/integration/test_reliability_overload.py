"""Admission under load, against a gateway with default (slo) admission in front of a real Triton.

Promises: ordinary concurrency is never refused; open-loop arrivals far above capacity keep most of
the capacity as goodput, the excess gets 429 + Retry-After, the gateway's memory stays flat, and
normal service is back within seconds. Bounds here are generous (2 shared cores); the exact targets
are measured by `deploylab bench`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.services.chaos.context import Target
from deploylab.services.chaos.engine import run_scenario
from deploylab.services.chaos.load import LoadClient, RequestTemplate, closed_loop
from deploylab.services.chaos.scenarios import OverloadPlan, ScenarioResult, overload_spec
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import make_gateway_settings, running_gateway
from tests.support import images

#: The heaviest small model: its capacity is low enough that a Python client can offer 4x of it.
MODEL = "resnet18"


@pytest.fixture(scope="module")
def default_gateway(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = make_gateway_settings(runtime_settings, admission="slo")
    assert settings.admission == "slo" and settings.admission == type(settings)().admission
    with running_gateway(settings, tmp_path_factory.mktemp("overload-logs")) as gateway:
        yield gateway


def _classify() -> RequestTemplate:
    return RequestTemplate.classify(MODEL, images.jpeg())


async def _closed_loop(url: str, concurrency: int, seconds: float) -> list[int | None]:
    async with LoadClient(url) as client:
        end = client.now() + seconds
        stop = lambda: client.now() > end  # noqa: E731
        outcomes = await closed_loop(client, _classify(), concurrency=concurrency, stop=stop)
    return [o.status for o in outcomes]


def test_four_concurrent_clients_on_a_default_gateway_get_no_429(default_gateway: GatewayProcess) -> None:
    statuses = asyncio.run(_closed_loop(default_gateway.url, concurrency=4, seconds=5.0))
    assert len(statuses) >= 20, statuses
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


@pytest.fixture(scope="module")
def fourfold_overload(default_gateway: GatewayProcess) -> ScenarioResult:
    assert default_gateway.process is not None
    # 4x, not more: the load client shares the 2 cores, and at 10x (600 arrivals/s) its own CPU took the
    # server's goodput to 0.79-0.83x of capacity from run to run. A generous 0.7x here: the client's CPU
    # is the noise; the 0.9x target belongs to a measurement with the load generator off the server's cores.
    plan = OverloadPlan(factor=4.0, overload_s=20.0, capacity_s=5.0, goodput_share=0.7)
    target = Target(default_gateway.url, _classify(), MODEL, gateway_pid=default_gateway.process.pid)
    return asyncio.run(run_scenario(overload_spec(plan), target))


def test_fourfold_overload_keeps_goodput_and_sheds_the_excess_with_retry_after(
    fourfold_overload: ScenarioResult,
) -> None:
    numbers = fourfold_overload.numbers
    checks = {c.name: c for c in fourfold_overload.checks}
    goodput = checks["goodput at least 0.7x capacity"]
    assert goodput.passed, goodput.observed
    assert numbers["offered_rps"] >= 3.9 * numbers["capacity_rps"]
    shed = checks["the excess gets 429 + Retry-After"]
    assert shed.passed, shed.observed
    assert fourfold_overload.summary.lost == 0 and fourfold_overload.summary.refused == 0
    assert numbers["rss_peak_mib"] - numbers["rss_before_mib"] <= 64


def test_service_is_normal_within_5s_after_the_overload(fourfold_overload: ScenarioResult) -> None:
    """A generous error-path bound: the gateway holds no backlog once arrivals stop."""
    recovery_s = fourfold_overload.recovery_s
    assert recovery_s is not None and recovery_s <= 5.0, recovery_s


def test_gateway_log_has_no_errors_after_an_overload(
    fourfold_overload: ScenarioResult, default_gateway: GatewayProcess
) -> None:
    assert fourfold_overload.summary.sent > 0  # the overload ran in this gateway before the log is read
    log = Path(default_gateway.log_path).read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-2000:]
