"""Gateway settings refuse nonsense at start-up and read the environment."""

from __future__ import annotations

import pytest
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import gateway_env
from pydantic import ValidationError


def test_defaults_are_sane() -> None:
    settings = GatewaySettings()
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.admin_api_key is None and settings.cors_origins == []


def test_every_admitted_request_gets_a_shared_memory_slot_unless_told_otherwise() -> None:
    assert GatewaySettings().shared_memory_slots == GatewaySettings().max_inflight_per_model == 64
    assert GatewaySettings(max_inflight_per_model=200).shared_memory_slots == 200
    assert GatewaySettings(max_inflight_per_model=200, triton_shared_memory_slots=8).shared_memory_slots == 8
    assert GatewaySettings(triton_shared_memory_slots=0).shared_memory_slots == 0  # off


@pytest.mark.parametrize(
    "values",
    [
        {"port": 0},
        {"triton_url": "not a url"},
        {"admin_api_key": "short"},
        {"connect_timeout_s": 5, "request_timeout_s": 1},
        {"max_body_bytes": 10},
    ],
)
def test_nonsense_is_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings.model_validate(values)


def test_triton_url_accepts_a_scheme() -> None:
    assert GatewaySettings(triton_url="http://triton:8000/").triton_url == "triton:8000"


def test_environment_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    original = GatewaySettings(
        port=9123, cors_origins=["https://a.example"], admin_api_key="0123456789abcdef0123"
    )  # type: ignore[arg-type]
    for key, value in gateway_env(original).items():
        monkeypatch.setenv(key, value)
    loaded = GatewaySettings()
    assert loaded.port == 9123 and loaded.cors_origins == ["https://a.example"]
    assert loaded.admin_api_key is not None
    assert loaded.admin_api_key.get_secret_value() == "0123456789abcdef0123"
