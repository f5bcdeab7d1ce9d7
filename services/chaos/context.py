"""What a scenario runs against (`Target`) and what a run accumulates while it goes (`Run`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.gateway.stack import GatewayProcess, ServingStack

from .checks import Record
from .load import LoadClient, Outcome, RequestTemplate

#: Whether a load or a watch should end now.
Stop = Callable[[], bool]


def settings_numbers(settings: GatewaySettings) -> dict[str, float]:
    """The gateway settings the checks judge against, as numbers a `Ref` can name."""
    return {
        "request_timeout_s": settings.request_timeout_s,
        "drain_timeout_s": settings.drain_timeout_s,
        "max_inflight_per_model": float(settings.max_inflight_per_model),
    }


@dataclass(frozen=True)
class Target:
    """A running gateway, the request the load repeats, and the handles an injection may need."""

    gateway_url: str
    request: RequestTemplate
    model: str  # the Triton model behind the request: admin API, metric labels
    gateway: GatewayProcess | None = None  # SIGTERM and the gateway's identity
    gateway_pid: int | None = None  # for memory; defaults to the gateway's process
    stack: ServingStack | None = None  # kill -9 Triton and watch its supervisor
    admin_key: str | None = None
    triton_metrics_url: str | None = None
    numbers: Mapping[str, float] = field(default_factory=dict)  # known before the run: timeouts, bounds

    @classmethod
    def of_stack(cls, stack: ServingStack, request: RequestTemplate, model: str, **kw: object) -> Target:
        """The stack's gateway, with its settings as numbers and Triton's metrics URL."""
        values: dict[str, object] = {
            "gateway": stack.gateway,
            "stack": stack,
            "triton_metrics_url": stack.runtime.triton_metrics_url,
            "numbers": settings_numbers(stack.gateway_settings),
            **kw,
        }
        return cls(stack.gateway_url, request, model, **values)  # type: ignore[arg-type]

    @classmethod
    def of_gateway(
        cls, gateway: GatewayProcess, request: RequestTemplate, model: str, **kw: object
    ) -> Target:
        """The gateway, with its settings as numbers."""
        values: dict[str, object] = {"gateway": gateway, "numbers": settings_numbers(gateway.settings), **kw}
        return cls(gateway.url, request, model, **values)  # type: ignore[arg-type]

    @property
    def pid(self) -> int | None:
        """The gateway's process id, when the target knows it."""
        if self.gateway_pid is not None:
            return self.gateway_pid
        process = self.gateway.process if self.gateway is not None else None
        return process.pid if process is not None else None


@dataclass
class Run:
    """One scenario under way: its client, and the marks, numbers and probe answers it collects."""

    target: Target
    client: LoadClient
    marks: dict[str, float] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    probes: dict[str, list[Outcome]] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        """Record that `name` happens now (seconds on the load's clock)."""
        self.marks[name] = self.client.now()
        return self.marks[name]

    def record(self, outcomes: list[Outcome]) -> Record:
        return Record(outcomes, dict(self.probes), dict(self.marks), {**self.target.numbers, **self.numbers})
