"""Shared fixtures: a model repository exported once per session, and a real tritonserver on it.

Everything under tests/integration/ is marked `integration` automatically; those tests start real
processes and fail (never skip) with a message saying what to install when something is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import GatewayProcess
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.support.ports import free_ports, runtime_on_free_ports

#: The small models every integration test serves: cheap to export, cover all three families' paths.
SMALL_MODELS: tuple[tuple[str, str], ...] = (
    ("resnet18", "default"),
    ("mobilenet_v3_small", "default"),
    ("repvgg_a0", "train"),
    ("repvgg_a0", "deploy"),
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Triton model repository holding SMALL_MODELS, exported with the default serving config."""
    repository = tmp_path_factory.mktemp("model_repository")
    for name, variant in SMALL_MODELS:
        export_model(get_spec(name), variant, repository, ExportOptions())
    return repository


@pytest.fixture(scope="session")
def runtime_settings(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> RuntimeSettings:
    return runtime_on_free_ports(model_repository, tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def triton(runtime_settings: RuntimeSettings) -> Iterator[TritonServer]:
    """A real tritonserver serving SMALL_MODELS for the whole session."""
    server = TritonServer(runtime_settings)
    server.start()
    yield server
    server.stop()


TEST_ROUTING = Path(__file__).parent / "data" / "routing.yaml"
TEST_ADMIN_KEY = "test-admin-key-0123456789"


def make_gateway_settings(runtime: RuntimeSettings, **overrides: object) -> GatewaySettings:
    """Gateway settings for a test gateway in front of `runtime`'s Triton, on a free port."""
    values: dict[str, object] = {
        "port": free_ports(1)[0],
        "triton_url": f"{runtime.triton_host}:{runtime.triton_http_port}",
        "model_repository": runtime.model_repository,
        "routing_file": TEST_ROUTING,
        "admin_api_key": TEST_ADMIN_KEY,
        "drain_timeout_s": 5.0,
        "health_interval_s": 0.5,
        # Tests drive concurrency themselves; the adaptive bound is tested where it is the point.
        "admission": "static",
    }
    values.update(overrides)
    return GatewaySettings.model_validate(values)


@contextlib.contextmanager
def running_gateway(
    settings: GatewaySettings, log_dir: Path, wait_for: str = "/readyz"
) -> Iterator[GatewayProcess]:
    """A real gateway process (uvicorn) for the duration of the block."""
    gateway = GatewayProcess(settings, log_dir / f"gateway-{settings.port}.log")
    gateway.start(ready_timeout_s=60, wait_for=wait_for)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def gateway_settings(triton: TritonServer, runtime_settings: RuntimeSettings) -> GatewaySettings:
    return make_gateway_settings(runtime_settings)


@pytest.fixture(scope="session")
def gateway_process(
    gateway_settings: GatewaySettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with running_gateway(gateway_settings, tmp_path_factory.mktemp("gateway-logs")) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def gateway_url(gateway_process: GatewayProcess) -> str:
    """Base URL of the session's real gateway (routing: tests/data/routing.yaml)."""
    return gateway_process.url
