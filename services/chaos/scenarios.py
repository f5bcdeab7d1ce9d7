"""The chaos scenarios, as a table of specs: what each injects, how it loads, what it promises.

Each entry of `SCENARIOS` is a `ScenarioSpec` that the one runner (`engine.run_scenario`) executes:
it drives load through the gateway while the fault is injected, accounts for every request, and
judges the checks — the behaviour promised in docs/reliability.md, each with what was observed. The
tests assert the checks; `deploylab chaos` prints them as a table. Adding a scenario is adding an
entry here (and, if it injects something new, an `Injection`). To run one entry against a stack the
caller already has: `run_scenario(SPEC.with_load(...), Target...)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .checks import (
    Accounted,
    Bound,
    CheckSpec,
    Interval,
    LastFailure,
    Latency,
    Limit,
    Measure,
    Ref,
    RetryAfter,
    Select,
    Statuses,
)
from .engine import ScenarioResult, ScenarioSpec
from .injections import KillTriton, Sigterm, UnloadModel
from .observations import GatewayMemory, GatewaySlo, InFlightPeak, ReadyzProbes, Recovery, TritonQueue
from .plans import ClosedLoop, OpenLoop

__all__ = [
    "GATEWAY_SIGTERM",
    "MODEL_UNLOAD",
    "SCENARIOS",
    "SLOW_BACKEND",
    "TRITON_KILL",
    "OverloadPlan",
    "ScenarioResult",
    "ScenarioSpec",
    "overload_spec",
]

OK = frozenset({"200"})
SHED = Select(classes=frozenset({"429"}))
ERRORS = Select(classes=frozenset({"5xx"}))
TIMED_OUT = Select(classes=frozenset({"504"}))
NOT_READY = frozenset({"4xx", "5xx", "unanswered"})


def accounting(allowed: Iterable[str], wait_bound: Limit) -> tuple[CheckSpec, ...]:
    """The checks every scenario shares: nothing lost, only expected answers, nobody waits too long."""
    return (
        CheckSpec("every request answered exactly once", (Accounted(),)),
        CheckSpec("only expected answers", (Statuses(only=frozenset(allowed)),)),
        CheckSpec("no request waits past its timeout", (Latency(at_most=wait_bound, min_count=0),)),
    )


def served(select: Select) -> Statuses:
    """Normal service: every answer a 200 or an admission 429, and at least half of them 200."""
    return Statuses(select, only=frozenset({"200", "429"}), some=OK, share=0.5)


TRITON_KILL = ScenarioSpec(
    name="triton_kill",
    fault="kill -9 tritonserver under load",
    load=ClosedLoop(concurrency=8, before_s=2.0, after_s=2.0),
    inject=KillTriton(recovery_timeout_s=90.0),
    observe=(ReadyzProbes(period_s=0.1),),
    checks=(
        # 429: admission may shed the part of a closed loop above the bound; never an error.
        *accounting(
            {"200", "429 overloaded", "503 backend_unavailable", "503 model_not_ready"},
            Ref("request_timeout_s"),
        ),
        CheckSpec("errors are fast 503s", (Latency(ERRORS, q=50, at_most=0.25),)),
        CheckSpec(
            "/readyz turns false during the outage",
            (Statuses(Select("readyz", after="fault_at"), some=NOT_READY),),
        ),
        CheckSpec("Triton restarted by the supervisor", (Bound("triton_replaced", at_least=1),)),
        CheckSpec(
            "the same gateway process recovers",
            (served(Select(after="ready_at", after_s=0.5)), Bound("gateway_same_process", at_least=1)),
        ),
    ),
    measures=(Interval("ready_again_s", "fault_at", "ready_at"), LastFailure("recovery_s", "fault_at")),
    recovery="recovery_s",
)

MODEL_UNLOAD = ScenarioSpec(
    name="model_unload",
    fault="unload {model} mid-traffic for {outage_s:g}s, then load it",
    load=ClosedLoop(concurrency=6, before_s=1.5, after_s=2.0, client_timeout_s=180.0),
    inject=UnloadModel(outage_s=1.5),
    checks=(
        *accounting(
            {
                "200",
                "429 overloaded",
                "404 model_not_found",
                "503 model_not_ready",
                "503 backend_unavailable",
            },
            10.0,
        ),
        CheckSpec(
            "admin unload and load succeed",
            (Bound("unload_status", at_least=200, at_most=200), Bound("load_status", 200, 200)),
        ),
        CheckSpec(
            "while unloaded: clean 503/404, no 5xx of any other kind",
            (
                Statuses(
                    Select(after="fault_at", after_s=0.5, before="load_at"),
                    only=frozenset({"404", "429", "503"}),
                    some=frozenset({"404", "503"}),
                ),
            ),
        ),
        CheckSpec("service resumes after the load", (served(Select(after="loaded_at", after_s=0.5)),)),
    ),
    measures=(Interval("load_s", "load_at", "loaded_at"), LastFailure("recovery_s", "load_at", True)),
    recovery="recovery_s",
)

GATEWAY_SIGTERM = ScenarioSpec(
    name="gateway_sigterm",
    fault="SIGTERM to the gateway under load",
    load=ClosedLoop(concurrency=8, before_s=2.0, after_s=1.5),
    inject=Sigterm(),
    observe=(ReadyzProbes(period_s=0.05),),
    checks=(
        *accounting({"200", "503 shutting_down", "refused"}, Ref("drain_timeout_s")),
        # Client-side, "in flight" means sent before the signal; a request whose bytes the server had
        # not read yet is refused (503) rather than finished, which is just as clean.
        CheckSpec(
            "in-flight requests finish",
            (Statuses(Select(spanning="fault_at"), only=frozenset({"200", "503 shutting_down"}), some=OK),),
        ),
        CheckSpec(
            "new requests are refused",
            (Statuses(Select(after="fault_at"), only=frozenset({"503", "refused"})),),
        ),
        # Readiness after the signal: 503 (draining) while the port is open, then no answer at all.
        CheckSpec(
            "/readyz says not ready from the signal on",
            (
                Statuses(
                    Select("readyz", after="fault_at"),
                    only=frozenset({"503", "unanswered"}),
                    some=frozenset({"503"}),
                ),
            ),
        ),
        CheckSpec(
            "exit code 0 within the drain timeout",
            (Bound("exit_code", at_least=0, at_most=0), Bound("exit_s", at_most=Ref("drain_timeout_s"))),
        ),
    ),
    measures=(
        Interval("exit_s", "fault_at", "exit_at"),
        Measure("in_flight_at_sigterm", Select(spanning="fault_at"), "count"),
    ),
    stack="spare_gateway",
)

SLOW_BACKEND = ScenarioSpec(
    name="slow_backend",
    fault="backend slower than the {request_timeout_s:g}s timeout",
    # Nothing is injected: the stack's model is slower than the gateway's timeout all along. Clients
    # retry soon (0.2 s) after a 429, keeping pressure on the bound.
    load=ClosedLoop(concurrency=12, before_s=4.0, after_s=0.0, max_backoff_s=0.2),
    inject=None,
    observe=(InFlightPeak(period_s=0.05), TritonQueue(settle_s=1.5)),
    checks=(
        *accounting({"504 backend_timeout", "429 overloaded"}, Ref("request_timeout_s", plus=1.0)),
        CheckSpec(
            "504 at the configured timeout",
            (
                Latency(
                    TIMED_OUT,
                    at_least=Ref("request_timeout_s", scale=0.95),
                    at_most=Ref("request_timeout_s", plus=1.0),
                ),
            ),
        ),
        CheckSpec("in-flight bounded", (Bound("peak_in_flight", at_most=Ref("max_inflight_per_model")),)),
        CheckSpec("the excess is shed with 429 + Retry-After", (RetryAfter(SHED),)),
        CheckSpec(
            "Triton drops what the gateway gave up on (the deadline travels with the request)",
            (Bound("triton_rejected", at_least=1),),
            needs="triton_rejected",
        ),
    ),
    measures=(Measure("first_504_s", TIMED_OUT, "min"), Measure("last_504_s", TIMED_OUT, "max")),
    stack="slow",
)


@dataclass(frozen=True)
class OverloadPlan:
    """The overload scenario's knobs: arrivals, the capacity they are a multiple of, and the bounds."""

    factor: float = 4.0
    overload_s: float = 8.0
    capacity_concurrency: int = 32  # at or past the knee of the default layout (2 x 2 instances x 8)
    capacity_s: float = 4.0
    goodput_share: float = 0.9
    rss_growth_limit_mib: float = 64.0
    recovery_limit_s: float = 5.0


def overload_spec(plan: OverloadPlan | None = None) -> ScenarioSpec:
    """Open-loop arrivals at `factor` x measured capacity: goodput, accepted p99 vs the SLO the gateway
    publishes, memory, recovery."""
    plan = plan or OverloadPlan()
    accepted, unloaded = Select(classes=OK), Select("after", classes=OK)
    return ScenarioSpec(
        name="overload",
        fault="open-loop arrivals at {factor:g}x capacity for {duration_s:g}s",
        load=OpenLoop(plan.factor, plan.overload_s, plan.capacity_concurrency, plan.capacity_s),
        inject=None,  # the arrivals are the fault
        # After the load, in this order: recovery first (the gateway's backlog), then the readings.
        observe=(Recovery(limit_s=plan.recovery_limit_s), GatewaySlo(), GatewayMemory(period_s=0.25)),
        measures=(
            Measure("accepted_rps", accepted, "rate"),
            Measure("goodput_ratio", accepted, "rate", per="capacity_rps"),
            Measure("accepted_p50_ms", accepted, "p50", scale=1e3),
            Measure("accepted_p99_ms", accepted, "p99", scale=1e3),
            Measure("unloaded_p50_ms", unloaded, "p50", scale=1e3),
            Measure("unloaded_p99_ms", unloaded, "p99", scale=1e3),
            Measure("shed_fraction", SHED, "share"),
        ),
        checks=_overload_checks(plan),
        recovery="recovery_s",
    )


def _overload_checks(plan: OverloadPlan) -> tuple[CheckSpec, ...]:
    goodput = Bound("accepted_rps", at_least=Ref("capacity_rps", scale=plan.goodput_share))
    return (
        *accounting({"200", "429 overloaded"}, 10.0),
        CheckSpec(f"goodput at least {plan.goodput_share:g}x capacity", (goodput,)),
        CheckSpec(
            "accepted p99 within the gateway's SLO",
            (Latency(Select(classes=OK), q=99, at_most=Ref("slo_s"), min_count=50),),
        ),
        CheckSpec("the excess gets 429 + Retry-After", (RetryAfter(SHED),)),
        CheckSpec("gateway memory stays flat", (Bound("rss_growth_mib", at_most=plan.rss_growth_limit_mib),)),
        CheckSpec(
            f"normal service within {plan.recovery_limit_s:g}s after",
            (Bound("recovery_s", at_most=plan.recovery_limit_s),),
        ),
    )


#: Every scenario, in the order the chaos command runs them (kill -9 Triton last on the main stack:
#: it restarts the server under the main gateway).
SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec for spec in (overload_spec(), MODEL_UNLOAD, GATEWAY_SIGTERM, TRITON_KILL, SLOW_BACKEND)
}
