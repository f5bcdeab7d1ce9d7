"""Triton's URLs from its host and ports, spelled once for every class that carries them."""

from __future__ import annotations

from typing import TYPE_CHECKING


class TritonUrls:
    """The server's three URLs, for a class with `triton_host` and the three `triton_*_port` fields.

    Shared by `RuntimeSettings` and `TritonOptions`, so both spell Triton's addresses the same way.
    """

    if TYPE_CHECKING:  # fields of the class it is mixed into, named here for the type checker only
        triton_host: str
        triton_http_port: int
        triton_grpc_port: int
        triton_metrics_port: int

    @property
    def triton_http_url(self) -> str:
        return f"http://{self.triton_host}:{self.triton_http_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def triton_metrics_url(self) -> str:
        return f"http://{self.triton_host}:{self.triton_metrics_port}/metrics"
