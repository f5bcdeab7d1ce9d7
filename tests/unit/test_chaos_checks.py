"""The chaos scenarios' checks judged on recorded runs: each promise passes on a clean record and fails
on the record that breaks it, with what was observed. No server: the records are built here."""

from __future__ import annotations

import json
import math

import pytest
from deploylab.services.chaos.checks import (
    Bound,
    Latency,
    Measure,
    Record,
    Ref,
    Select,
    Statuses,
    matches,
)
from deploylab.services.chaos.engine import ScenarioResult
from deploylab.services.chaos.load import Outcome
from deploylab.services.chaos.report import render_markdown, report_data
from deploylab.services.chaos.runner import SCENARIOS as RUN_ORDER
from deploylab.services.chaos.runner import ChaosPlan
from deploylab.services.chaos.scenarios import SCENARIOS, OverloadPlan, overload_spec

MODEL = "mobilenet_v3_small"


def ok(at: float, latency: float = 0.05) -> Outcome:
    return Outcome(sent_at=at, latency_s=latency, status=200)


def error(at: float, status: int, code: str, latency: float = 0.01, retry: str | None = None) -> Outcome:
    return Outcome(sent_at=at, latency_s=latency, status=status, code=code, retry_after=retry)


def refused(at: float) -> Outcome:
    return Outcome(sent_at=at, latency_s=0.001, transport_error="refused")


def failed(result: ScenarioResult) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


def judge(name: str, record: Record) -> ScenarioResult:
    return SCENARIOS[name].judge(record, MODEL)


# -- kill -9 Triton ---------------------------------------------------------------------------------
def triton_kill_record(error_latency: float = 0.02) -> Record:
    before = [ok(0.1 * i) for i in range(20)]  # 0.0-1.9 s
    outage = [error(2.0 + 0.1 * i, 503, "backend_unavailable", error_latency) for i in range(10)]
    after = [ok(3.5 + 0.1 * i) for i in range(20)]
    probes = [Outcome(1.9, 0.01, 200), Outcome(2.2, 0.01, 503, "not_ready"), Outcome(3.4, 0.01, 200)]
    return Record(
        outcomes=before + outage + after,
        probes={"readyz": probes},
        marks={"fault_at": 2.0, "ready_at": 3.0},
        numbers={"request_timeout_s": 2.0, "triton_replaced": 1.0, "gateway_same_process": 1.0},
    )


def test_triton_kill_passes_on_fast_503s_then_service_from_the_same_gateway() -> None:
    result = judge("triton_kill", triton_kill_record())
    assert result.passed, result.failures()
    assert result.recovery_s == pytest.approx(0.92)  # the last 503 (sent at 2.9 s) answered, from the kill
    assert result.numbers["ready_again_s"] == pytest.approx(1.0)
    assert result.summary.by_kind == {"200": 40, "503 backend_unavailable": 10}


def test_triton_kill_fails_slow_errors_and_a_restarted_gateway() -> None:
    record = triton_kill_record(error_latency=0.4)
    record.numbers["gateway_same_process"] = 0.0
    result = judge("triton_kill", record)
    assert failed(result) == {"errors are fast 503s", "the same gateway process recovers"}
    fast = {c.name: c for c in result.checks}["errors are fast 503s"]
    assert "p50 400 ms" in fast.observed and "at most 250 ms" in fast.observed


def test_triton_kill_that_never_recovers_has_no_requests_to_call_served() -> None:
    record = triton_kill_record()
    del record.marks["ready_at"]
    record.numbers["triton_replaced"] = 0.0
    result = judge("triton_kill", record)
    assert failed(result) == {"Triton restarted by the supervisor", "the same gateway process recovers"}
    assure = {c.name: c for c in result.checks}["the same gateway process recovers"]
    assert "0 requests" in assure.observed


# -- model unload -----------------------------------------------------------------------------------
def unload_record(during: list[Outcome]) -> Record:
    return Record(
        outcomes=[ok(0.1 * i) for i in range(15)] + during + [ok(4.0 + 0.1 * i) for i in range(15)],
        marks={"fault_at": 1.5, "load_at": 3.0, "loaded_at": 3.4},
        numbers={"unload_status": 200.0, "load_status": 200.0},
    )


def test_model_unload_passes_on_clean_503s_and_reports_zero_recovery_without_failures_after_the_load() -> (
    None
):
    result = judge(
        "model_unload", unload_record([error(2.0 + 0.1 * i, 503, "model_not_ready") for i in range(5)])
    )
    assert result.passed, result.failures()
    assert result.recovery_s == 0.0
    assert result.numbers["load_s"] == pytest.approx(0.4)
    assert result.fault == f"unload {MODEL} mid-traffic for 1.5s, then load it"


def test_model_unload_fails_on_a_500_while_unloaded() -> None:
    during = [error(2.0, 503, "model_not_ready"), error(2.2, 500, "internal_error")]
    result = judge("model_unload", unload_record(during))
    assert failed(result) == {
        "only expected answers",
        "while unloaded: clean 503/404, no 5xx of any other kind",
    }
    only = {c.name: c for c in result.checks}["only expected answers"]
    assert "unexpected: {'500 internal_error': 1}" in only.observed


def test_model_unload_fails_when_the_admin_load_is_refused() -> None:
    record = unload_record([error(2.2, 503, "model_not_ready")])
    record.numbers["load_status"] = 401.0
    assert failed(judge("model_unload", record)) == {"admin unload and load succeed"}


# -- gateway SIGTERM --------------------------------------------------------------------------------
def sigterm_record(**numbers: float) -> Record:
    in_flight = [ok(1.95, latency=0.1), error(1.98, 503, "shutting_down", latency=0.05)]
    later = [error(2.1, 503, "shutting_down"), refused(2.5), refused(3.0)]
    probes = [Outcome(1.9, 0.01, 200), Outcome(2.05, 0.01, 503, "draining"), refused(2.6)]
    return Record(
        outcomes=[ok(0.1 * i) for i in range(19)] + in_flight + later,
        probes={"readyz": probes},
        marks={"fault_at": 2.0, "exit_at": 2.4},
        numbers={"drain_timeout_s": 10.0, "exit_code": 0.0, **numbers},
    )


def test_gateway_sigterm_passes_on_a_clean_drain() -> None:
    result = judge("gateway_sigterm", sigterm_record())
    assert result.passed, result.failures()
    assert result.numbers["in_flight_at_sigterm"] == 2
    assert result.numbers["exit_s"] == pytest.approx(0.4)
    assert result.recovery_s is None


def test_gateway_sigterm_fails_on_a_dropped_request_and_a_nonzero_exit() -> None:
    record = sigterm_record(exit_code=1.0)
    record.outcomes.append(Outcome(sent_at=2.2, latency_s=0.01, transport_error="disconnected"))
    assert failed(judge("gateway_sigterm", record)) == {
        "every request answered exactly once",
        "only expected answers",
        "new requests are refused",
        "exit code 0 within the drain timeout",
    }


def test_gateway_sigterm_fails_when_readyz_still_says_ready() -> None:
    record = sigterm_record()
    record.probes["readyz"].append(Outcome(2.3, 0.01, 200))
    assert failed(judge("gateway_sigterm", record)) == {"/readyz says not ready from the signal on"}


# -- slow backend -----------------------------------------------------------------------------------
def slow_record(first_504_s: float = 1.01, **numbers: float) -> Record:
    timeouts = [error(0.1 * i, 504, "backend_timeout", latency=first_504_s + 0.01 * i) for i in range(4)]
    shed = [error(0.05 + 0.1 * i, 429, "overloaded", retry="1") for i in range(8)]
    return Record(
        outcomes=sorted(timeouts + shed, key=lambda o: o.sent_at),
        numbers={"request_timeout_s": 1.0, "max_inflight_per_model": 4.0, "peak_in_flight": 4.0, **numbers},
    )


def test_slow_backend_passes_and_skips_the_triton_check_without_triton_metrics() -> None:
    result = judge("slow_backend", slow_record())
    assert result.passed, result.failures()
    assert all("Triton drops" not in c.name for c in result.checks)
    assert result.numbers["first_504_s"] == pytest.approx(1.01)
    assert result.fault == "backend slower than the 1s timeout"


def test_slow_backend_fails_an_early_504_a_breached_bound_and_a_computed_queue() -> None:
    result = judge("slow_backend", slow_record(first_504_s=0.9, peak_in_flight=5.0, triton_rejected=0.0))
    assert failed(result) == {
        "504 at the configured timeout",
        "in-flight bounded",
        "Triton drops what the gateway gave up on (the deadline travels with the request)",
    }


def test_a_429_without_retry_after_fails_the_shedding_check() -> None:
    record = slow_record()
    record.outcomes.append(error(0.5, 429, "overloaded"))
    assert failed(judge("slow_backend", record)) == {"the excess is shed with 429 + Retry-After"}


# -- overload ---------------------------------------------------------------------------------------
def overload_record(served: int, slo_s: float | None = 0.1, recovery_s: float = 0.5) -> Record:
    accepted = [ok(i * 8.0 / served, latency=0.05) for i in range(served)]
    shed = [error(0.001 + i * 8.0 / 300, 429, "overloaded", retry="1") for i in range(300)]
    numbers = {"capacity_rps": 100.0, "offered_rps": 400.0, "load_s": 8.0, "rss_growth_mib": 10.0}
    return Record(
        outcomes=sorted(accepted + shed, key=lambda o: o.sent_at),
        probes={"after": [ok(9.0 + 0.01 * i, latency=0.02) for i in range(100)]},
        numbers={**numbers, "recovery_s": recovery_s, **({"slo_s": slo_s} if slo_s is not None else {})},
    )


def test_overload_passes_when_goodput_holds_and_reports_its_numbers() -> None:
    result = overload_spec(OverloadPlan(goodput_share=0.7)).judge(overload_record(served=720), MODEL)
    assert result.passed, result.failures()
    assert result.numbers["accepted_rps"] == pytest.approx(90.0)
    assert result.numbers["goodput_ratio"] == pytest.approx(0.9)
    assert result.numbers["shed_fraction"] == pytest.approx(300 / 1020)
    assert result.numbers["unloaded_p50_ms"] == pytest.approx(20.0)
    assert result.recovery_s == 0.5
    assert {c.name for c in result.checks} >= {
        "goodput at least 0.7x capacity",
        "the excess gets 429 + Retry-After",
    }
    assert result.fault == "open-loop arrivals at 4x capacity for 8s"


def test_overload_fails_low_goodput_an_unknown_slo_and_no_recovery() -> None:
    result = overload_spec().judge(overload_record(served=560, slo_s=None, recovery_s=math.nan), MODEL)
    assert failed(result) == {
        "goodput at least 0.9x capacity",
        "accepted p99 within the gateway's SLO",
        "normal service within 5s after",
    }
    assert result.recovery_s is None
    slo = {c.name: c for c in result.checks}["accepted p99 within the gateway's SLO"]
    assert "slo_s not known" in slo.observed


# -- the table and its report -----------------------------------------------------------------------
def test_the_table_runs_the_scenarios_in_a_safe_order_and_describes_each_fault() -> None:
    assert RUN_ORDER == ("overload", "model_unload", "gateway_sigterm", "triton_kill", "slow_backend")
    assert all(name == spec.name for name, spec in SCENARIOS.items())
    numbers = {"request_timeout_s": 2.0}
    assert all(spec.describe(numbers, MODEL) for spec in SCENARIOS.values())
    plan = ChaosPlan(scenarios=("slow_backend", "overload"), overload=OverloadPlan(factor=2.0))
    assert [s.name for s in plan.specs()] == ["overload", "slow_backend"]
    assert plan.specs()[0].describe({}, MODEL).startswith("open-loop arrivals at 2x")


def test_a_judged_run_renders_to_the_report_with_nan_as_null() -> None:
    result = judge("triton_kill", triton_kill_record())
    result.numbers["ready_again_s"] = math.nan
    data = report_data([result], {"model": MODEL})
    scenario = json.loads(json.dumps(data, allow_nan=False))["scenarios"][0]
    assert set(scenario) == {
        "name",
        "fault",
        "faults_injected",
        "passed",
        "recovery_s",
        "requests",
        "checks",
        "numbers",
    }
    assert scenario["numbers"]["ready_again_s"] is None
    assert "| triton_kill | kill -9 tritonserver under load | 1 | 50 | 50 | 0 | 0 |" in render_markdown(data)


# -- the pieces -------------------------------------------------------------------------------------
def test_status_classes_match_status_kind_family_and_transport() -> None:
    shutting = error(0.0, 503, "shutting_down")
    assert matches(shutting, "503") and matches(shutting, "503 shutting_down") and matches(shutting, "5xx")
    assert not matches(shutting, "503 model_not_ready") and not matches(shutting, "4xx")
    assert matches(refused(0.0), "refused") and matches(refused(0.0), "unanswered")
    assert not matches(ok(0.0), "unanswered")


def test_a_window_on_a_mark_the_run_never_reached_selects_nothing() -> None:
    record = Record([ok(1.0), ok(2.0)], marks={"fault_at": 1.5})
    assert Select(after="fault_at").pick(record) == [ok(2.0)]
    assert Select(after="ready_at").pick(record) == []
    assert Select(spanning="fault_at").pick(Record([ok(1.4, latency=0.2)], marks={"fault_at": 1.5})) != []
    assert Statuses(Select(after="ready_at")).judge(record)[0] is False


def test_bounds_read_limits_from_the_runs_numbers() -> None:
    record = Record([ok(0.0, latency=1.2)], numbers={"request_timeout_s": 1.0, "x": 3.0})
    assert Latency(at_most=Ref("request_timeout_s", plus=0.5)).judge(record)[0]
    assert not Latency(at_most=Ref("request_timeout_s")).judge(record)[0]
    assert Bound("x", at_least=Ref("request_timeout_s", scale=3.0)).judge(record)[0]
    assert not Bound("missing", at_most=10.0).judge(record)[0]
    assert Latency(Select(classes=frozenset({"504"})), min_count=0).judge(record)[0]
    with pytest.raises(ValueError, match="unknown statistic"):
        Measure("n", Select(), "mean")
