"""Fuzzing the gateway through its own OpenAPI schema (schemathesis): valid and invalid requests for every
documented operation, against the real session gateway and Triton. No 5xx, and every answer conforms
to the schema — status codes, content types, headers and bodies.

The schema is taken from the app in-process at collection time (schemathesis' lazy fixture loader does
not run under this pytest); the first test proves it is the one the running gateway serves.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.stack import GatewayProcess
from tests.conftest import TEST_ROUTING
from tests.support.http import classify

OPENAPI = create_app(GatewaySettings(routing_file=TEST_ROUTING)).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_fuzzed_schema_is_the_one_the_gateway_serves(gateway_url: str) -> None:
    served = httpx.get(f"{gateway_url}/openapi.json", timeout=10).json()
    assert served == OPENAPI
    assert len(OPENAPI["paths"]) >= 12


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
def test_gateway_answers_every_fuzzed_request_per_its_schema_and_never_5xx(
    case: schemathesis.Case, gateway_url: str
) -> None:
    case.call_and_validate(base_url=gateway_url, timeout=30)


def test_gateway_is_healthy_and_logged_no_unhandled_error_after_fuzzing(
    gateway_url: str, gateway_process: GatewayProcess
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        assert client.get("/readyz").status_code == 200
        assert classify(client, "resnet18").status_code == 200
    log = gateway_process.log_path.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
