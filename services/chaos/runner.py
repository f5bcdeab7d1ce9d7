"""Stand up real stacks for the chaos scenarios, run them in a safe order, tear everything down.

Order matters: overload and unload run first on a fresh stack; SIGTERM hits a second gateway in front
of the same Triton (the main one must live on); kill -9 Triton comes last because it restarts the
server under the main gateway. The slow backend needs its own Triton with a sleeping model.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import GatewayProcess, ServingStack
from deploylab.services.measure.images import sample_jpeg
from deploylab.services.measure.names import served_model
from deploylab.services.measure.ports import free_ports, runtime_on_free_ports
from deploylab.services.runtime.settings import RuntimeSettings

from .context import Target
from .engine import ScenarioResult, ScenarioSpec, run_scenario
from .load import RequestTemplate
from .repository import ensure_exported, write_slow_model
from .scenarios import SCENARIOS as TABLE
from .scenarios import OverloadPlan, overload_spec

#: Scenario names, in the order they run.
SCENARIOS = tuple(TABLE)


@dataclass(frozen=True)
class ChaosPlan:
    model: str = "mobilenet_v3_small"
    repository: Path = Path("model_repository")
    scenarios: tuple[str, ...] = SCENARIOS
    overload: OverloadPlan = OverloadPlan()
    slow_delay_s: float = 3.0
    slow_timeout_s: float = 1.0
    slow_bound: int = 4

    def specs(self) -> list[ScenarioSpec]:
        """The scenarios asked for, in table order, the overload one with this plan's knobs."""
        table = {**TABLE, "overload": overload_spec(self.overload)}
        return [spec for name, spec in table.items() if name in self.scenarios]


def _gateway(runtime: RuntimeSettings, routing: Path, **overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "port": free_ports(1)[0],
        "triton_url": f"{runtime.triton_host}:{runtime.triton_http_port}",
        "model_repository": runtime.model_repository,
        "routing_file": routing,
        "health_interval_s": 0.25,
        "request_timeout_s": 2.0,
        "drain_timeout_s": 10.0,
    }
    values.update(overrides)
    return GatewaySettings.model_validate(values)


def run_chaos(
    plan: ChaosPlan, on_result: Callable[[ScenarioResult], None] | None = None
) -> list[ScenarioResult]:
    """Every scenario in `plan.scenarios`, each against freshly started real processes."""
    unknown = sorted(set(plan.scenarios) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    triton_names = ensure_exported(plan.repository, [plan.model])
    request = RequestTemplate.classify(plan.model, sample_jpeg())
    results: list[ScenarioResult] = []

    def record(result: ScenarioResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    specs = plan.specs()
    workdir = Path(tempfile.mkdtemp(prefix="deploylab-chaos-"))
    try:
        routing = workdir / "routing.yaml"
        routing.write_text("routes: []\n")
        main = [s for s in specs if s.stack in ("main", "spare_gateway")]
        if main:
            _run_main_stack(plan, main, triton_names, request, workdir, routing, record)
        slow = [s for s in specs if s.stack == "slow"]
        if slow:
            _run_slow_stack(plan, slow, request, workdir, routing, record)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _run_main_stack(
    plan: ChaosPlan,
    specs: list[ScenarioSpec],
    triton_names: list[str],
    request: RequestTemplate,
    workdir: Path,
    routing: Path,
    record: Callable[[ScenarioResult], None],
) -> None:
    runtime = runtime_on_free_ports(plan.repository, workdir / "main")
    admin_key = secrets.token_urlsafe(24)
    settings = _gateway(runtime, routing, admin_api_key=admin_key)  # slo admission: the default
    logs = workdir / "main" / "logs"
    with ServingStack(runtime, settings, triton_names, log_dir=logs) as stack:
        target = Target.of_stack(stack, request, triton_names[0], admin_key=admin_key)
        for spec in specs:
            if spec.stack == "main":
                record(asyncio.run(run_scenario(spec, target)))
                continue
            # A fault that ends the gateway hits a second one in front of the same Triton.
            spare = GatewayProcess(_gateway(runtime, routing, admission="static"), logs / "spare.log")
            spare.start()
            try:
                record(asyncio.run(run_scenario(spec, Target.of_gateway(spare, request, triton_names[0]))))
            finally:
                spare.stop()


def _run_slow_stack(
    plan: ChaosPlan,
    specs: list[ScenarioSpec],
    request: RequestTemplate,
    workdir: Path,
    routing: Path,
    record: Callable[[ScenarioResult], None],
) -> None:
    repository = workdir / "slow_repository"
    spec_name = served_model(plan.model).triton_model
    write_slow_model(repository, spec_name, plan.slow_delay_s)
    runtime = runtime_on_free_ports(repository, workdir / "slow")
    settings = _gateway(
        runtime,
        routing,
        admission="static",
        max_inflight_per_model=plan.slow_bound,
        request_timeout_s=plan.slow_timeout_s,
        connect_timeout_s=min(0.5, plan.slow_timeout_s),
    )
    with ServingStack(runtime, settings, [spec_name], log_dir=workdir / "slow" / "logs") as stack:
        target = Target.of_stack(stack, request, spec_name)
        for slow in specs:
            record(asyncio.run(run_scenario(slow, target)))
