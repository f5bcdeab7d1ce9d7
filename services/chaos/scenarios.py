"""Fault and overload scenarios against real processes: inject, load, watch, and judge.

Each scenario drives load through the gateway while it injects one kind of fault, accounts for every
request (load.py), and returns a `ScenarioResult`: what was injected, requests sent and answered,
errors by class, the worst recovery time, and named checks — the behaviour promised in
docs/reliability.md, each with what was observed. The tests assert the checks; `deploylab chaos`
prints them as a table.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploylab.services.gateway.stack import GatewayProcess, ServingStack

from .load import (
    LoadClient,
    LoadSummary,
    Outcome,
    RequestTemplate,
    closed_loop,
    metric_value,
    open_loop,
    percentile,
    readiness_probe,
    rss_probe,
    sample_periodically,
)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: str


@dataclass
class ScenarioResult:
    name: str
    fault: str
    faults_injected: int
    summary: LoadSummary
    recovery_s: float | None
    checks: list[Check]
    numbers: dict[str, float] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.observed}" for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fault": self.fault,
            "faults_injected": self.faults_injected,
            "passed": self.passed,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
            "requests": self.summary.as_dict(),
            "checks": [{"name": c.name, "passed": c.passed, "observed": c.observed} for c in self.checks],
            "numbers": {k: round(v, 4) if math.isfinite(v) else None for k, v in self.numbers.items()},
        }


def _check(name: str, passed: bool, observed: str) -> Check:
    return Check(name, bool(passed), observed)


def _accounting_checks(outcomes: list[Outcome], allowed: set[str], max_latency_s: float) -> list[Check]:
    """The checks every scenario shares: nothing lost, only expected answers, nobody waits too long."""
    summary = LoadSummary.of(outcomes)
    unexpected = {k: n for k, n in summary.by_kind.items() if k not in allowed}
    worst = max((o.latency_s for o in outcomes), default=0.0)
    return [
        _check(
            "every request answered exactly once",
            summary.lost == 0 and summary.answered + summary.refused == summary.sent,
            f"sent {summary.sent}, answered {summary.answered}, refused {summary.refused}, "
            f"lost {summary.lost}",
        ),
        _check("only expected answers", not unexpected, f"unexpected: {unexpected or 'none'}"),
        _check(
            "no request waits past its timeout",
            worst <= max_latency_s,
            f"slowest {worst * 1e3:.0f} ms, bound {max_latency_s * 1e3:.0f} ms",
        ),
    ]


def _recovery(outcomes: list[Outcome], fault_at: float) -> float | None:
    """Seconds from the fault until the last failed request was answered (None: nothing failed).

    Failed: no answer, or a 5xx/404 — a 429 is admission doing its job, not the fault showing.
    """
    failed = [o.finished_at for o in outcomes if _failed(o) and o.sent_at >= fault_at - 1.0]
    return max(failed) - fault_at if failed else None


def _failed(outcome: Outcome) -> bool:
    return outcome.status is None or outcome.status >= 500 or outcome.status == 404


def _served(outcomes: list[Outcome]) -> bool:
    """Normal service: every answer a 200 or an admission 429, and most of them 200."""
    ok = sum(o.status == 200 for o in outcomes)
    return bool(outcomes) and all(o.status in (200, 429) for o in outcomes) and ok >= 0.5 * len(outcomes)


# -- Triton killed --------------------------------------------------------------------------------
async def triton_kill(
    stack: ServingStack,
    request: RequestTemplate,
    *,
    concurrency: int = 8,
    before_s: float = 2.0,
    after_s: float = 2.0,
    recovery_timeout_s: float = 90.0,
) -> ScenarioResult:
    """kill -9 Triton under load: fast 503s, /readyz false, supervisor restart, recovery in place."""
    triton, supervisor = stack.triton, stack.supervisor
    if triton is None or supervisor is None or triton.pid is None:
        raise ValueError("triton_kill needs a stack that started and supervises Triton")
    gateway_pid = stack.gateway.process.pid if stack.gateway.process else None
    timeout_s = stack.gateway_settings.request_timeout_s
    state: dict[str, Any] = {"done": False}

    async with LoadClient(stack.gateway_url) as client:

        async def inject() -> None:
            await asyncio.sleep(before_s)
            killed_pid, restarts = triton.pid, supervisor.restarts
            state["killed_pid"] = killed_pid
            state["fault_at"] = client.now()
            os.kill(killed_pid, signal.SIGKILL)  # type: ignore[arg-type]
            deadline = time.monotonic() + recovery_timeout_s
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if supervisor.restarts > restarts and triton.alive():
                    ready = await client.send(RequestTemplate("GET", "/readyz"))
                    if ready.status == 200:
                        state["ready_at"] = client.now()
                        break
            state["new_pid"] = triton.pid
            await asyncio.sleep(after_s)
            state["done"] = True

        stop: Callable[[], bool] = lambda: state["done"]  # noqa: E731
        outcomes, readiness, _ = await asyncio.gather(
            closed_loop(client, request, concurrency=concurrency, stop=stop),
            sample_periodically(client, readiness_probe(client), 0.1, stop),
            inject(),
        )
    fault_at = state["fault_at"]
    after = [o for o in outcomes if o.sent_at > fault_at]
    errors = [o for o in outcomes if o.status is not None and o.status >= 500]
    ready_at = state.get("ready_at")
    not_ready = [s for s in readiness if s.at > fault_at and s.value == 0.0]
    tail = [o for o in outcomes if ready_at is not None and o.sent_at > ready_at + 0.5]
    # 429: admission may shed the part of a closed loop above the bound; never an error.
    allowed = {"200", "429 overloaded", "503 backend_unavailable", "503 model_not_ready"}
    checks = _accounting_checks(outcomes, allowed, timeout_s)
    checks += [
        _check(
            "errors are fast 503s",
            bool(errors) and percentile([o.latency_s for o in errors], 50) <= 0.25,
            f"{len(errors)} errors, median {percentile([o.latency_s for o in errors], 50) * 1e3:.0f} ms, "
            f"slowest {max((o.latency_s for o in errors), default=0) * 1e3:.0f} ms",
        ),
        _check(
            "/readyz turns false during the outage",
            bool(not_ready),
            f"not ready for {len(not_ready) * 0.1:.1f}s of samples" if not_ready else "never false",
        ),
        _check(
            "Triton restarted by the supervisor",
            ready_at is not None and state["new_pid"] != state["killed_pid"],
            f"restarts {supervisor.restarts}, ready again after "
            + (f"{ready_at - fault_at:.1f}s" if ready_at else "never"),
        ),
        _check(
            "the same gateway process recovers",
            _served(tail) and stack.gateway.alive()
            and (stack.gateway.process.pid if stack.gateway.process else None) == gateway_pid,
            f"after recovery: {LoadSummary.of(tail).by_kind}",
        ),
    ]
    return ScenarioResult(
        name="triton_kill",
        fault="kill -9 tritonserver under load",
        faults_injected=1,
        summary=LoadSummary.of(outcomes),
        recovery_s=_recovery(after, fault_at),
        checks=checks,
        numbers={"ready_again_s": (ready_at - fault_at) if ready_at else math.nan},
        outcomes=outcomes,
    )


# -- model unloaded -------------------------------------------------------------------------------
async def model_unload(
    gateway_url: str,
    admin_key: str,
    model: str,
    request: RequestTemplate,
    *,
    concurrency: int = 6,
    before_s: float = 1.5,
    outage_s: float = 1.5,
    after_s: float = 2.0,
    timeout_s: float = 10.0,
) -> ScenarioResult:
    """Unload the model mid-traffic (admin API), then load it back: clean 503/404, then recovery."""
    headers = {"X-API-Key": admin_key}
    state: dict[str, Any] = {"done": False}

    async with LoadClient(gateway_url, timeout_s=180.0) as client:

        async def inject() -> None:
            await asyncio.sleep(before_s)
            state["fault_at"] = client.now()
            state["unload"] = await client.send(
                RequestTemplate("POST", f"/admin/models/{model}/unload", headers=headers)
            )
            await asyncio.sleep(outage_s)
            state["load_at"] = client.now()
            state["load"] = await client.send(
                RequestTemplate("POST", f"/admin/models/{model}/load", headers=headers)
            )
            await asyncio.sleep(after_s)
            state["done"] = True

        outcomes, _ = await asyncio.gather(
            closed_loop(client, request, concurrency=concurrency, stop=lambda: state["done"]), inject()
        )
    fault_at, load_at = state["fault_at"], state["load_at"]
    during = [o for o in outcomes if fault_at + 0.5 < o.sent_at < load_at]
    tail = [o for o in outcomes if o.sent_at > load_at + state["load"].latency_s + 0.5]
    allowed = {
        "200",
        "429 overloaded",
        "503 model_not_ready",
        "404 model_not_found",
        "503 backend_unavailable",
    }
    checks = _accounting_checks(outcomes, allowed, timeout_s)
    checks += [
        _check(
            "admin unload and load succeed",
            state["unload"].status == 200 and state["load"].status == 200,
            f"unload {state['unload'].status}, load {state['load'].status}",
        ),
        _check(
            "while unloaded: clean 503/404, no 5xx of any other kind",
            bool(during) and all(o.status in (404, 429, 503) for o in during)
            and any(o.status in (404, 503) for o in during),
            f"{len(during)} requests while unloaded: {LoadSummary.of(during).by_kind}",
        ),
        _check(
            "service resumes after the load", _served(tail), f"after the load: {LoadSummary.of(tail).by_kind}"
        ),
    ]
    return ScenarioResult(
        name="model_unload",
        fault=f"unload {model} mid-traffic for {outage_s:g}s, then load it",
        faults_injected=1,
        summary=LoadSummary.of(outcomes),
        recovery_s=_recovery([o for o in outcomes if o.sent_at > load_at], load_at) or 0.0,
        checks=checks,
        numbers={"load_s": state["load"].latency_s},
        outcomes=outcomes,
    )


# -- slow backend ---------------------------------------------------------------------------------
async def slow_backend(
    gateway_url: str,
    request: RequestTemplate,
    model: str,
    *,
    timeout_s: float,
    bound: int,
    concurrency: int = 12,
    duration_s: float = 4.0,
    triton_metrics_url: str | None = None,
) -> ScenarioResult:
    """A backend slower than the gateway's timeout: 504 at the timeout, in-flight never past the bound,
    and (given Triton's metrics URL) the abandoned requests dropped from Triton's queue, not computed."""
    state = {"done": False}

    async with LoadClient(gateway_url) as client:

        async def in_flight() -> float:
            return await metric_value(client, "deploylab_gateway_in_flight_requests", model=model)

        async def finish() -> None:
            await asyncio.sleep(duration_s)
            state["done"] = True

        stop = lambda: state["done"]  # noqa: E731
        outcomes, gauge, _ = await asyncio.gather(
            # Clients that retry soon (0.2 s) after a 429: pressure on the bound all along.
            closed_loop(client, request, concurrency=concurrency, stop=stop, max_backoff_s=0.2),
            sample_periodically(client, in_flight, 0.05, stop),
            finish(),
        )
    timeouts = [o for o in outcomes if o.status == 504]
    shed = [o for o in outcomes if o.status == 429]
    triton = await _triton_outcomes(triton_metrics_url, model) if triton_metrics_url else {}
    peak = max((s.value for s in gauge if not math.isnan(s.value)), default=math.nan)
    early = min((o.latency_s for o in timeouts), default=math.nan)
    late = max((o.latency_s for o in timeouts), default=math.nan)
    checks = _accounting_checks(outcomes, {"504 backend_timeout", "429 overloaded"}, timeout_s + 1.0)
    checks += [
        _check(
            "504 at the configured timeout",
            bool(timeouts) and early >= timeout_s * 0.95 and late <= timeout_s + 1.0,
            f"{len(timeouts)} x 504 after {early:.2f}-{late:.2f}s (timeout {timeout_s:g}s)",
        ),
        _check(
            "in-flight bounded",
            not math.isnan(peak) and peak <= bound,
            f"peak in-flight {peak:g}, bound {bound}",
        ),
        _check(
            "the excess is shed with 429 + Retry-After",
            bool(shed) and all(o.retry_after for o in shed),
            f"{len(shed)} x 429, all with Retry-After: {all(o.retry_after for o in shed)}",
        ),
    ]
    if triton:
        checks.append(
            _check(
                "Triton drops what the gateway gave up on (the deadline travels with the request)",
                triton["rejected"] > 0,
                f"Triton computed {triton['succeeded']:g} and dropped {triton['rejected']:g} from its queue "
                f"of the {len(timeouts)} requests that timed out",
            )
        )
    return ScenarioResult(
        name="slow_backend",
        fault=f"backend slower than the {timeout_s:g}s timeout",
        faults_injected=1,
        summary=LoadSummary.of(outcomes),
        recovery_s=None,
        checks=checks,
        numbers={
            "peak_in_flight": peak,
            "first_504_s": early,
            "last_504_s": late,
            **{f"triton_{k}": v for k, v in triton.items()},
        },
        outcomes=outcomes,
    )


async def _triton_outcomes(metrics_url: str, model: str, settle_s: float = 1.5) -> dict[str, float]:
    """Requests Triton completed vs rejected (queue timeout) for `model`, from its Prometheus metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    await asyncio.sleep(settle_s)  # queued requests past their deadline are swept periodically
    async with LoadClient(metrics_url.removesuffix("/metrics")) as client:
        text = await client.get_text("/metrics")
    totals = {"succeeded": 0.0, "rejected": 0.0}
    for family in text_string_to_metric_families(text):  # counters: samples are named <family>_total
        for sample in family.samples:
            if sample.labels.get("model") != model or sample.name != f"{family.name}_total":
                continue
            if family.name == "nv_inference_request_success":
                totals["succeeded"] += sample.value
            elif family.name == "nv_inference_request_failure" and sample.labels.get("reason") == "REJECTED":
                totals["rejected"] += sample.value
    return totals


# -- gateway SIGTERM ------------------------------------------------------------------------------
async def gateway_sigterm(
    gateway: GatewayProcess,
    request: RequestTemplate,
    *,
    concurrency: int = 8,
    before_s: float = 2.0,
    after_s: float = 1.5,
) -> ScenarioResult:
    """SIGTERM under load: in-flight requests finish, new ones are refused, the process exits 0."""
    process = gateway.process
    if process is None:
        raise ValueError("gateway_sigterm needs a started gateway")
    drain_s = gateway.settings.drain_timeout_s
    state: dict[str, Any] = {"done": False}

    async with LoadClient(gateway.url) as client:

        async def inject() -> None:
            await asyncio.sleep(before_s)
            state["fault_at"] = client.now()
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + drain_s + 10
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            state["exit_at"] = client.now()
            await asyncio.sleep(after_s)
            state["done"] = True

        async def watch_readiness() -> list[Outcome]:
            probes = []
            while not state["done"]:
                probes.append(await client.send(RequestTemplate("GET", "/readyz")))
                await asyncio.sleep(0.05)
            return probes

        outcomes, _, probes = await asyncio.gather(
            closed_loop(client, request, concurrency=concurrency, stop=lambda: state["done"]),
            inject(),
            watch_readiness(),
        )
    fault_at = state["fault_at"]
    # Readiness after the signal: 503 (draining) while the port is open, then no answer at all.
    draining = [o for o in probes if o.sent_at > fault_at]
    in_flight = [o for o in outcomes if o.sent_at < fault_at < o.finished_at]
    later = [o for o in outcomes if o.sent_at > fault_at]
    exit_s = state["exit_at"] - fault_at
    checks = _accounting_checks(outcomes, {"200", "503 shutting_down", "refused"}, drain_s)
    checks += [
        # Client-side, "in flight" means sent before the signal; a request whose bytes the server had
        # not read yet is refused (503) rather than finished, which is just as clean.
        _check(
            "in-flight requests finish",
            any(o.status == 200 for o in in_flight)
            and all(o.status == 200 or o.code == "shutting_down" for o in in_flight),
            f"in flight at SIGTERM: {LoadSummary.of(in_flight).by_kind}",
        ),
        _check(
            "new requests are refused",
            bool(later) and all(o.status == 503 or o.transport_error == "refused" for o in later),
            f"after SIGTERM: {LoadSummary.of(later).by_kind}",
        ),
        _check(
            "/readyz says not ready from the signal on",
            any(o.status == 503 for o in draining) and all(o.status in (None, 503) for o in draining),
            f"/readyz after SIGTERM: {LoadSummary.of(draining).by_kind}",
        ),
        _check(
            "exit code 0 within the drain timeout",
            process.returncode == 0 and exit_s <= drain_s,
            f"exit code {process.returncode} after {exit_s:.2f}s",
        ),
    ]
    return ScenarioResult(
        name="gateway_sigterm",
        fault="SIGTERM to the gateway under load",
        faults_injected=1,
        summary=LoadSummary.of(outcomes),
        recovery_s=None,
        checks=checks,
        numbers={"exit_s": exit_s, "in_flight_at_sigterm": len(in_flight)},
        outcomes=outcomes,
    )


# -- overload -------------------------------------------------------------------------------------
#: Sequential requests after an overload, for the unloaded latency reported beside it.
UNLOADED_SAMPLE = 100


@dataclass(frozen=True)
class OverloadPlan:
    factor: float = 4.0
    overload_s: float = 8.0
    capacity_concurrency: int = 32  # at or past the knee of the default layout (2 x 2 instances x 8)
    capacity_s: float = 4.0
    goodput_share: float = 0.9
    rss_growth_limit_mib: float = 64.0
    recovery_limit_s: float = 5.0


async def overload(
    gateway_url: str, gateway_pid: int, request: RequestTemplate, plan: OverloadPlan | None = None
) -> ScenarioResult:
    """Open-loop arrivals at `factor` x measured capacity: goodput, accepted p99 vs the SLO, memory, recovery.

    Capacity is the goodput of a closed loop at the knee, measured just before on the same machine.
    The SLO is the one the gateway holds for the model, read from its /metrics.
    """
    plan = plan or OverloadPlan()
    async with LoadClient(gateway_url) as client:
        for _ in range(20):  # warm-up: connections, caches
            await client.send(request)
        end = client.now() + plan.capacity_s
        measured = await closed_loop(
            client, request, concurrency=plan.capacity_concurrency, stop=lambda: client.now() > end
        )
        capacity = sum(o.status == 200 for o in measured) / plan.capacity_s
        rate = max(plan.factor * capacity, 1.0)
        rss = rss_probe(gateway_pid)
        rss_before = await rss()
        state = {"done": False}

        async def overload_window() -> list[Outcome]:
            try:
                return await open_loop(client, request, rate_per_s=rate, duration_s=plan.overload_s)
            finally:
                state["done"] = True

        started = client.now()
        outcomes, memory = await asyncio.gather(
            overload_window(), sample_periodically(client, rss, 0.25, lambda: state["done"])
        )
        ended = client.now()
        recovery_s, after = await _recover(client, request, plan, ended)
        slo_s = await gateway_slo_s(client, request)
    unloaded = [o.latency_s for o in after if o.status == 200]
    accepted = [o.latency_s for o in outcomes if o.status == 200]
    accepted_p99 = percentile(accepted, 99)
    goodput = len(accepted) / max(ended - started, 1e-9)
    shed = [o for o in outcomes if o.status == 429]
    rss_peak = max((s.value for s in memory if not math.isnan(s.value)), default=math.nan)
    rss_after = await rss()
    growth = rss_peak - rss_before
    checks = _accounting_checks(outcomes, {"200", "429 overloaded"}, 10.0)
    checks += [
        _check(
            f"goodput at least {plan.goodput_share:g}x capacity",
            goodput >= plan.goodput_share * capacity,
            f"{goodput:.1f} req/s served vs capacity {capacity:.1f} req/s "
            f"({goodput / max(capacity, 1e-9):.2f}x)",
        ),
        _check(
            "accepted p99 within the gateway's SLO",
            slo_s is not None and len(accepted) >= 50 and accepted_p99 <= slo_s,
            f"accepted p99 {accepted_p99 * 1e3:.1f} ms over {len(accepted)}, SLO "
            + (f"{slo_s * 1e3:.1f} ms" if slo_s is not None else "not published"),
        ),
        _check(
            "the excess gets 429 + Retry-After",
            bool(shed) and all(o.retry_after for o in shed),
            f"{len(shed)} of {len(outcomes)} shed ({len(shed) / max(len(outcomes), 1):.0%})",
        ),
        _check(
            "gateway memory stays flat",
            growth <= plan.rss_growth_limit_mib,
            f"RSS {rss_before:.0f} MiB before, peak {rss_peak:.0f}, after {rss_after:.0f} "
            f"(+{growth:.1f} MiB, limit {plan.rss_growth_limit_mib:g})",
        ),
        _check(
            f"normal service within {plan.recovery_limit_s:g}s after",
            recovery_s is not None and recovery_s <= plan.recovery_limit_s,
            f"normal again after {recovery_s:.2f}s" if recovery_s is not None else "never normal again",
        ),
    ]
    return ScenarioResult(
        name="overload",
        fault=f"open-loop arrivals at {plan.factor:g}x capacity for {plan.overload_s:g}s",
        faults_injected=1,
        summary=LoadSummary.of(outcomes),
        recovery_s=recovery_s,
        checks=checks,
        numbers={
            "capacity_rps": capacity,
            "offered_rps": rate,
            "accepted_rps": goodput,
            "goodput_ratio": goodput / max(capacity, 1e-9),
            "slo_ms": slo_s * 1e3 if slo_s is not None else math.nan,
            "unloaded_p50_ms": percentile(unloaded, 50) * 1e3,
            "unloaded_p99_ms": percentile(unloaded, 99) * 1e3,
            "accepted_p50_ms": percentile(accepted, 50) * 1e3,
            "accepted_p99_ms": accepted_p99 * 1e3,
            "shed_fraction": len(shed) / max(len(outcomes), 1),
            "rss_before_mib": rss_before,
            "rss_peak_mib": rss_peak,
            "rss_after_mib": rss_after,
        },
        outcomes=outcomes,
    )


async def _recover(
    client: LoadClient, request: RequestTemplate, plan: OverloadPlan, ended: float
) -> tuple[float | None, list[Outcome]]:
    """Sequential requests after the overload: when did 5 in a row answer 200? And a fresh sample."""
    streak, recovered_at = 0, None
    deadline = ended + max(plan.recovery_limit_s * 3, 10.0)
    while client.now() < deadline:
        outcome = await client.send(request)
        streak = streak + 1 if outcome.status == 200 else 0
        if streak == 5:
            recovered_at = outcome.finished_at
            break
    after = [await client.send(request) for _ in range(UNLOADED_SAMPLE)]
    return (None if recovered_at is None else recovered_at - ended), after


async def gateway_slo_s(client: LoadClient, request: RequestTemplate) -> float | None:
    """The p99 objective the gateway publishes for the model `request` names (None: not yet known)."""
    model = request.path.split("/")[3]
    for line in (await client.get_text("/metrics")).splitlines():
        if line.startswith(f'deploylab_gateway_admission_slo_seconds{{model="{model}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None
