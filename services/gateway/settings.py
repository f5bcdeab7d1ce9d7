"""Gateway settings: one typed class, env-overridable (`DEPLOYLAB_GATEWAY_*`), refused when nonsensical."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class GatewaySettings(BaseSettings):
    """Every knob of the gateway. Defaults are safe for a single host in front of embedded Triton."""

    model_config = SettingsConfigDict(env_prefix="DEPLOYLAB_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")

    triton_url: str = Field(
        "127.0.0.1:8000", description="Triton HTTP endpoint (host:port or http://host:port)"
    )
    model_repository: Path = Field(
        Path("model_repository"), description="read for manifests (facts) and the model list"
    )
    routing_file: Path = Field(Path("config/routing.yaml"), description="routing table (YAML)")

    max_body_bytes: int = Field(10 * MB, ge=1024, description="larger bodies get 413")
    body_read_timeout_s: float = Field(
        10.0, gt=0, description="max wait for the next body chunk; slower clients get 408"
    )
    body_deadline_s: float = Field(
        60.0, gt=0, description="max time for a whole request body, however it trickles in; then 408"
    )
    head_timeout_s: float = Field(
        10.0, gt=0, description="max time for a request's line and headers to arrive (slowloris); then 408"
    )
    max_head_bytes: int = Field(
        64 * 1024, ge=16 * 1024, description="request line + headers above this get 431"
    )
    max_image_pixels: int = Field(
        40_000_000, ge=10_000, description="declared width*height above this is refused before decoding"
    )
    max_images_per_request: int = Field(32, ge=1, description="multipart files per request")
    max_inflight_per_model: int = Field(
        64, ge=1, description="admitted inference requests per Triton model (slo admission: the ceiling)"
    )
    admission: Literal["slo", "static"] = Field(
        "slo",
        description="slo: admit while the accepted p99 stays within the model's latency SLO, never "
        "below the knee where Triton's batcher has full batches; static: a fixed bound, for capacity "
        "measurements",
    )
    slo_p99_ms: float | None = Field(
        None, gt=0, description="latency objective (accepted p99) for every model; default: measured"
    )
    model_slo_p99_ms: dict[str, float] = Field(
        default_factory=dict,
        description='objectives by Triton model name, JSON ({"resnet50": 800}); they win over slo_p99_ms',
    )
    slo_full_batch_multiple: float = Field(
        4.0,
        gt=1.0,
        description="measured SLO: this x the model's full-batch compute time (Triton's statistics)",
    )
    shed_rate_per_s: float = Field(
        200.0,
        gt=0,
        description="429s answered at once per second per worker; more wait their turn (up to "
        "shed_max_delay_s), so clients that retry at once cannot spend the CPU that serves requests",
    )
    shed_max_delay_s: float = Field(1.0, ge=0, description="longest a paced 429 waits before it is sent")
    request_timeout_s: float = Field(10.0, gt=0, description="Triton round trip limit; beyond it 504")
    connect_timeout_s: float = Field(0.5, gt=0, description="TCP connect to Triton; beyond it 503")
    retry_after_s: int = Field(
        1, ge=1, description="Retry-After on 503 (a 429's comes from the model's measured drain time)"
    )
    triton_pool_size: int = Field(128, ge=1, description="pooled keep-alive connections to Triton")
    triton_shared_memory_slots: int | None = Field(
        None,
        ge=0,
        description="requests in flight that pass tensors to a Triton on this host through system "
        "shared memory instead of HTTP bodies (default: max_inflight_per_model, so every request one "
        "model admits has one; 0: off; ignored for a remote Triton)",
    )
    health_interval_s: float = Field(1.0, gt=0, description="Triton health probe period")
    preprocess_threads: int = Field(
        0, ge=0, description="threads decoding images off the event loop (0: one per core)"
    )
    shadow_max_inflight: int = Field(
        16, ge=0, description="shadow requests in flight; beyond it shadows are dropped, never queued"
    )
    drain_timeout_s: float = Field(20.0, ge=0, description="SIGTERM: time for in-flight requests")
    drain_linger_s: float = Field(
        0.0,
        ge=0,
        description="SIGTERM: keep refusing new requests with 503 (readyz: draining) at least this long "
        "before closing the port, so load balancers notice (Kubernetes: a few seconds)",
    )

    triton_api_key: SecretStr | None = Field(
        None,
        description="sent to Triton as the deploylab-triton-key header: the key of a Triton whose "
        "model-repository API is restricted (the compose and Kubernetes deployments)",
    )
    admin_api_key: SecretStr | None = Field(
        None, description="enables /admin endpoints (X-API-Key); admin is off when unset"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS allow-list; empty: off")
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans and metrics (needs a configured provider); "
        "off, FastAPI skips its per-request provider checks. Prometheus metrics are always on",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("triton_url")
    @classmethod
    def _strip_scheme(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        for scheme in ("http://", "https://"):
            value = value.removeprefix(scheme)
        if not value or "/" in value or ":" not in value:
            raise ValueError(f"triton_url must look like host:port, got {value!r}")
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("admin_api_key must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> GatewaySettings:
        if self.connect_timeout_s > self.request_timeout_s:
            raise ValueError("connect_timeout_s must not exceed request_timeout_s")
        return self

    @field_validator("model_slo_p99_ms")
    @classmethod
    def _positive_slos(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {name: ms for name, ms in value.items() if not ms > 0}
        if bad:
            raise ValueError(f"model_slo_p99_ms must be positive milliseconds, got {bad}")
        return value

    @property
    def shared_memory_slots(self) -> int:
        """Slots in the shared-memory pool. A request that finds none free goes over HTTP, which costs
        Triton and the gateway ~0.5 ms of CPU more each: at 64 clients with 32 slots, half the requests
        did (mobilenet_v3_large on 2 cores: gateway 1.1 → 0.9 ms of CPU per request once each had a slot)."""
        if self.triton_shared_memory_slots is None:
            return self.max_inflight_per_model
        return self.triton_shared_memory_slots


@cache
def get_settings() -> GatewaySettings:
    """The process-wide settings (FastAPI dependency; tests override it or pass their own)."""
    return GatewaySettings()
