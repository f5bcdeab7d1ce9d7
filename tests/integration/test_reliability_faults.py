"""Faults against real processes on loopback, under load, with every request accounted for.

One supervised stack (tritonserver + gateway) serves mobilenet_v3_small for the module; every test that
uses it starts once it is ready again, so the faults may run in any order (the supervisor restarts a
killed Triton, an unloaded model is loaded back). A second stack serves a deliberately slow model under
the same catalog name.
Each scenario returns named checks (services/chaos/scenarios.py); the assertions below name the
behaviour each test defines, and a failing check prints what was observed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.services.chaos.context import Target
from deploylab.services.chaos.engine import run_scenario
from deploylab.services.chaos.load import RequestTemplate
from deploylab.services.chaos.repository import write_slow_model
from deploylab.services.chaos.scenarios import (
    GATEWAY_SIGTERM,
    MODEL_UNLOAD,
    SLOW_BACKEND,
    TRITON_KILL,
    ScenarioResult,
)
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import ServingStack
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import http_ok

from tests.conftest import TEST_ADMIN_KEY, make_gateway_settings, running_gateway
from tests.support import images
from tests.support.ports import free_ports, runtime_on_free_ports
from tests.support.processes import descendants, groups_of, leftovers

MODEL = "mobilenet_v3_small"
REQUEST = RequestTemplate.classify(MODEL, images.jpeg())


@contextlib.contextmanager
def serving(runtime: RuntimeSettings, gateway: GatewaySettings, log_dir: Path) -> Iterator[ServingStack]:
    """A supervised stack; on the way out, nothing it started may still be running."""
    before = descendants()
    stack = ServingStack(runtime, gateway, [MODEL], log_dir=log_dir)
    stack.start()
    groups: set[int] = set()
    try:
        yield stack
    finally:
        groups = groups_of(descendants() - before)
        stack.stop()
    assert not leftovers(before, groups), "processes outlived the stack"


def assert_passed(result: ScenarioResult) -> None:
    assert result.passed, f"{result.name}: " + "; ".join(result.failures())


@pytest.fixture(scope="module")
def module_stack(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingStack]:
    runtime = runtime_on_free_ports(model_repository, tmp_path_factory.mktemp("faults-state"))
    gateway = make_gateway_settings(runtime, request_timeout_s=2.0, health_interval_s=0.25)
    with serving(runtime, gateway, tmp_path_factory.mktemp("faults-logs")) as started:
        yield started


@pytest.fixture
def stack(module_stack: ServingStack) -> ServingStack:
    """The module's stack, ready: whatever fault an earlier test injected, it has recovered from it."""
    deadline = time.monotonic() + 90  # a wait that ends once ready
    while not http_ok(f"{module_stack.gateway_url}/readyz"):
        assert time.monotonic() < deadline, "the module's stack did not become ready again"
        time.sleep(0.25)
    return module_stack


def test_slow_model_times_out_with_504_at_the_configured_timeout_and_bounded_in_flight(
    tmp_path: Path,
) -> None:
    repository = tmp_path / "slow_repository"
    write_slow_model(repository, MODEL, delay_s=3.0)  # slower than the gateway's 1 s timeout
    runtime = runtime_on_free_ports(repository, tmp_path / "state")
    gateway = make_gateway_settings(
        runtime, request_timeout_s=1.0, connect_timeout_s=0.5, max_inflight_per_model=4
    )
    with serving(runtime, gateway, tmp_path / "logs") as slow:
        # The checks read the timeout and the bound from the stack's own gateway settings.
        target = Target.of_stack(slow, REQUEST, MODEL)
        result = asyncio.run(run_scenario(SLOW_BACKEND.with_load(before_s=3.5), target))
    assert_passed(result)
    assert result.numbers["triton_rejected"] > 0, "the gateway's deadline must reach Triton's queue"
    assert result.summary.by_kind.get("504 backend_timeout", 0) >= 4
    assert result.numbers["peak_in_flight"] <= 4
    assert 0.95 <= result.numbers["first_504_s"] and result.numbers["last_504_s"] <= 2.0


def test_model_unloaded_mid_traffic_answers_clean_503s_then_serves_again(stack: ServingStack) -> None:
    target = Target(stack.gateway_url, REQUEST, MODEL, admin_key=TEST_ADMIN_KEY)
    result = asyncio.run(run_scenario(MODEL_UNLOAD.with_load(concurrency=4), target))
    assert_passed(result)
    assert result.summary.lost == 0
    assert result.summary.by_kind.get("503 model_not_ready", 0) > 0
    assert not {k for k in result.summary.by_kind if k.startswith("5")} - {"503 model_not_ready"}


def test_sigterm_under_load_finishes_in_flight_refuses_new_and_exits_0(
    stack: ServingStack, tmp_path: Path
) -> None:
    settings = stack.gateway_settings.model_copy(update={"port": free_ports(1)[0], "drain_timeout_s": 10.0})
    with running_gateway(settings, tmp_path) as gateway:
        spec = GATEWAY_SIGTERM.with_load(concurrency=6, before_s=1.5)
        result = asyncio.run(run_scenario(spec, Target.of_gateway(gateway, REQUEST, MODEL)))
        assert gateway.process is not None and gateway.process.returncode == 0
    assert_passed(result)
    assert result.numbers["in_flight_at_sigterm"] >= 1
    assert result.summary.lost == 0


def test_kill_9_triton_under_load_fails_fast_then_recovers_without_a_gateway_restart(
    stack: ServingStack,
) -> None:
    assert stack.triton is not None
    regions = stack.triton.python_shm_regions()
    assert regions, "the Python backend maps shared memory: the leak check below needs some"
    spec = TRITON_KILL.with_load(concurrency=8, before_s=1.5, after_s=1.5)
    result = asyncio.run(run_scenario(spec, Target.of_stack(stack, REQUEST, MODEL)))
    assert_passed(result)
    assert result.summary.sent == result.summary.answered, "a request went unanswered"
    assert result.summary.by_kind.get("503 backend_unavailable", 0) > 0
    assert result.recovery_s is not None and result.recovery_s < 60
    leaked = [r for r in regions if (Path("/dev/shm") / r).exists()]
    assert not leaked, f"the killed server's shared memory was left behind: {leaked}"
