"""The stack a sweep measures: embedded Triton + the gateway on free ports, stopped whatever happens.

The sweep addresses models by catalog name and variant, so the gateway gets an empty routing table:
no alias, split or shadow can add requests that Locust did not send (the cross-checks would flag them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import ServingStack
from deploylab.services.measure.ports import free_ports, triton_ports
from deploylab.services.runtime.settings import RuntimeSettings

from .plan import Endpoints

#: Above the largest concurrency any profile drives (ramp 32 users, open loop 64 outstanding).
SWEEP_MAX_INFLIGHT = 128
SWEEP_REQUEST_TIMEOUT_S = 60.0

SWEEP_ROUTING = """\
# Written by the load-test sweep: models are addressed directly, no routes.
sticky_header: X-Deploylab-Key
routes: []
"""


def sweep_settings(repository: Path, run_dir: Path) -> tuple[RuntimeSettings, GatewaySettings]:
    """Runtime and gateway settings on fresh loopback ports (never 8000-8002/8080)."""
    *triton, gateway_port = free_ports(4)
    runtime = RuntimeSettings().model_copy(
        update={"model_repository": repository, "triton_host": "127.0.0.1", **triton_ports(triton)}
    )
    routing = run_dir / "routing.yaml"
    routing.write_text(SWEEP_ROUTING)
    base = GatewaySettings().model_dump()
    gateway = GatewaySettings.model_validate(
        {
            **base,
            "host": "127.0.0.1",
            "port": gateway_port,
            "model_repository": repository,
            "routing_file": routing,
            "triton_url": f"127.0.0.1:{runtime.triton_http_port}",
            "admin_api_key": None,
            # A capacity sweep measures how far the models go: a fixed in-flight bound above every
            # point's concurrency lets Triton's batcher see all requests (slo admission would shed
            # the points past the SLO as 429), and a long deadline measures latency instead of timeouts.
            "admission": "static",
            "max_inflight_per_model": max(base["max_inflight_per_model"], SWEEP_MAX_INFLIGHT),
            "request_timeout_s": max(base["request_timeout_s"], SWEEP_REQUEST_TIMEOUT_S),
        }
    )
    return runtime, gateway


@contextlib.contextmanager
def serving_stack(repository: Path, triton_models: list[str], run_dir: Path) -> Iterator[Endpoints]:
    """Start Triton (only `triton_models`) and the gateway; yield where they listen; stop both."""
    runtime, gateway = sweep_settings(repository, run_dir)
    with ServingStack(runtime, gateway, triton_models, log_dir=run_dir / "logs") as stack:
        yield Endpoints(
            triton_url=runtime.triton_http_url,
            triton_metrics_url=runtime.triton_metrics_url,
            gateway_url=stack.gateway_url,
            serving_pids=stack.pids(),
        )
