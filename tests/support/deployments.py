"""A deployment beside the session's fp32 export, served by its own Triton and gateway: what the variant
tests (int8, OpenVINO) share, so each test file says only what its variant is."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.conftest import make_gateway_settings, running_gateway
from tests.support.ports import runtime_on_free_ports


def repository_with_variant(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory, model: str, variant: str
) -> Path:
    """A fresh repository holding the session's fp32 export of `model` and a new export of `variant`."""
    repository = tmp_path_factory.mktemp(f"{variant}-repository")
    shutil.copytree(model_repository / model, repository / model)
    outcome = export_model(get_spec(model), variant, repository, ExportOptions())
    assert outcome.status == "exported"
    return repository


@contextlib.contextmanager
def served_by_gateway(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[str]:
    """A Triton on free ports serving every model of `repository`, behind a gateway with no routes;
    yields the gateway's URL."""
    with served_deployment(repository, tmp_path_factory, label) as (_, url):
        yield url


@contextlib.contextmanager
def served_deployment(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[tuple[RuntimeSettings, str]]:
    """As `served_by_gateway`, yielding the Triton's settings (its ports) beside the gateway's URL."""
    runtime = runtime_on_free_ports(repository, tmp_path_factory.mktemp(f"{label}-state"))
    routing = tmp_path_factory.mktemp(f"{label}-routing") / "routing.yaml"
    routing.write_text("routes: []\n")
    server = TritonServer(runtime)
    server.start()
    try:
        settings = make_gateway_settings(runtime, routing_file=routing)
        with running_gateway(settings, tmp_path_factory.mktemp(f"{label}-logs")) as gateway:
            yield runtime, gateway.url
    finally:
        server.stop()
