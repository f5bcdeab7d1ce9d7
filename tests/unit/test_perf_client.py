"""The perf clients speak the exporter's tensor names and parse URLs the way callers write them."""

from __future__ import annotations

import pytest

from services.modelzoo import repository
from services.perf import client
from services.perf.client import _host_port, make_client


def test_tensor_names_match_the_model_repository() -> None:
    assert (client.INPUT_NAME, client.OUTPUT_NAME) == (repository.INPUT_NAME, repository.OUTPUT_NAME)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://127.0.0.1:8123", ("127.0.0.1", 8123)), ("localhost:9000/", ("localhost", 9000))],
)
def test_urls_with_or_without_scheme_resolve(url: str, expected: tuple[str, int]) -> None:
    assert _host_port(url) == expected


def test_unknown_transport_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="http-shm"):
        make_client("carrier-pigeon", "http://127.0.0.1:1", "m")  # type: ignore[arg-type]
