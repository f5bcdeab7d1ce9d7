"""Typed settings for the embedded Triton runtime and the model repository (env prefix `DEPLOYLAB_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .addresses import TritonUrls


class RuntimeSettings(BaseSettings, TritonUrls):
    """Where the model repository lives and how the embedded `tritonserver` is started.

    Every field can be set as `DEPLOYLAB_<FIELD>` (e.g. `DEPLOYLAB_TRITON_HTTP_PORT=9000`).
    """

    model_config = SettingsConfigDict(env_prefix="DEPLOYLAB_", extra="ignore")

    model_repository: Path = Path("model_repository")
    state_dir: Path = Field(Path(".deploylab"), description="prepared backend directory, logs, pid files")
    triton_binary: Path | None = Field(
        None, description="tritonserver to run; default: the one in the nvidia-pytriton wheel, then PATH"
    )
    triton_host: str = "127.0.0.1"
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    triton_model_control: Literal["explicit", "none", "poll"] = Field(
        "explicit", description="explicit: load the chosen models at start, load/unload at run time"
    )
    triton_startup_timeout_s: float = Field(180.0, gt=0)
    triton_exit_timeout_s: int = Field(10, ge=1)
    triton_log_verbose: int = Field(0, ge=0)
    triton_python_shm_mb: int = Field(
        16, ge=1, description="initial shared memory per Python-backend instance; grows on demand"
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> RuntimeSettings:
        ports = [self.triton_http_port, self.triton_grpc_port, self.triton_metrics_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"Triton HTTP, gRPC and metrics ports must differ, got {ports}")
        return self
