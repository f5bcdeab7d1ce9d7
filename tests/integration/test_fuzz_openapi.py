"""Fuzzing the gateway through its own OpenAPI schema (schemathesis): valid and invalid requests for every
documented operation, against the real session gateway and Triton. No 5xx, and every answer conforms
to the schema — status codes, content types, headers and bodies.

Both generation modes are on: positive cases fit the schema, negative ones break it on purpose (wrong
types, missing or extra parameters, bodies that are not objects). Each operation's test counts the
cases of each mode it sent and fails when either mode sent none, so "fuzzed" never quietly means
"sent only well-formed requests".

The schema is taken from the app in-process at collection time (schemathesis' lazy fixture loader does
not run under this pytest); the first test proves it is the one the running gateway serves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from deploylab.services.gateway.app import create_app
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import GatewayProcess
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from tests.conftest import TEST_ROUTING
from tests.support.http import classify

OPENAPI = create_app(GatewaySettings(routing_file=TEST_ROUTING)).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
schema.config.generation.update(modes=MODES)


def test_the_fuzzed_schema_is_the_one_the_gateway_serves(gateway_url: str) -> None:
    served = httpx.get(f"{gateway_url}/openapi.json", timeout=10).json()
    assert served == OPENAPI
    assert len(OPENAPI["paths"]) >= 12


@pytest.fixture
def sent(request: pytest.FixtureRequest) -> Iterator[Counter[GenerationMode]]:
    """Cases sent per generation mode, for one operation (a Hypothesis test is one pytest item).

    Checked after the last case: no other hook sees every case of an operation and then its end.
    """
    counts: Counter[GenerationMode] = Counter()
    yield counts
    print(f"{request.node.name}: " + ", ".join(f"{counts[mode]} {mode.value}" for mode in MODES))
    missing = [mode.value for mode in MODES if counts[mode] == 0]
    assert not missing, f"{request.node.name} sent no {' and no '.join(missing)} case: {dict(counts)}"


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
def test_gateway_answers_every_fuzzed_request_per_its_schema_and_never_5xx(
    case: schemathesis.Case, gateway_url: str, sent: Counter[GenerationMode]
) -> None:
    assert case.meta is not None, "schemathesis records how it generated every case"
    sent[case.meta.generation.mode] += 1
    case.call_and_validate(base_url=gateway_url, timeout=30)


def test_gateway_is_healthy_and_logged_no_unhandled_error_after_fuzzing(
    gateway_url: str, gateway_process: GatewayProcess
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        assert client.get("/readyz").status_code == 200
        assert classify(client, "resnet18").status_code == 200
    log = gateway_process.log_path.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
