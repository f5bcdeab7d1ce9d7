"""Free loopback ports for the servers a benchmark, sweep, tune or chaos run starts.

Ports come from the kernel's ephemeral range, so they never collide with the well-known 8000-8002 a
developer's own Triton may hold.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # pydantic: the GPU check's run step imports this module on hosts without it
    from deploylab.services.runtime.settings import RuntimeSettings


class TritonPorts(TypedDict):
    """One tritonserver's ports, by the names RuntimeSettings and TritonOptions give them."""

    triton_http_port: int
    triton_grpc_port: int
    triton_metrics_port: int


def free_port() -> int:
    """One port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago, sorted."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def triton_ports(ports: Sequence[int] | None = None) -> TritonPorts:
    """HTTP, gRPC and metrics ports for one tritonserver: these three, or three free ones."""
    http, grpc, metrics = free_ports(3) if ports is None else ports
    return {"triton_http_port": http, "triton_grpc_port": grpc, "triton_metrics_port": metrics}


def runtime_on_free_ports(repository: Path, state_dir: Path) -> RuntimeSettings:
    """Settings for a tritonserver of one's own serving `repository` on free loopback ports."""
    from deploylab.services.runtime.settings import RuntimeSettings

    return RuntimeSettings(model_repository=repository, state_dir=state_dir, **triton_ports())
