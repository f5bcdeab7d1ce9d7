"""Admission under load: goodput, refusals and accepted p99 of the default policy beside `static`.

For each model one Triton (its repository's config) serves two gateways in turn, each with every
setting at its default except `admission` (`slo`, the default, then `static`). Each gateway gets:

- closed-loop points at 1 … 256 connections over plain HTTP (binary KServe v2, batch 1), half of the
  clients waiting Retry-After after a 429 and half retrying at once, measured by the project's client
  and again by wrk (C, no project code on the client side);
- (`slo` only) an open-loop overload at `overload_factor` × the best `static` goodput, then a recovery
  phase of well-behaved clients: how long until nothing is refused.

Gateway CPU per answer comes from its process times; the cost of one 429 is estimated by subtracting
the served answers at the CPU cost measured where nothing was refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from deploylab.benchmarks.wrk import HttpRequest, request_for, run_wrk
from deploylab.services.measure.http_load import LoadClient, RequestTemplate, closed_loop, open_loop
from deploylab.services.measure.outcomes import Outcome
from deploylab.services.measure.percentiles import percentile
from deploylab.services.measure.server_stats import fetch_metrics, fetch_model_stats
from deploylab.services.perf.triton_admin import model_config

Log = Callable[[str], None]

#: Answers a client may get; anything else is an error the point reports.
SERVED, REFUSED_STATUS = 200, 429
#: The gauge the gateway publishes its admission objective in (services/gateway/metrics.py).
SLO_METRIC = "deploylab_gateway_admission_slo_seconds"


@dataclass(frozen=True)
class AdmissionOptions:
    repository: Path
    state_dir: Path
    models: tuple[str, ...] = ("resnet50", "mobilenet_v3_large")
    concurrencies: tuple[int, ...] = (1, 4, 16, 64, 256)
    duration_s: float = 8.0
    warmup_s: float = 2.0
    overload_factor: float = 4.0
    overload_s: float = 15.0
    recovery_s: float = 8.0
    wrk: bool = True
    modes: tuple[str, ...] = ("slo", "static")


@dataclass
class PointSummary:
    """One closed-loop point as one client measured it."""

    client: str
    goodput_per_s: float
    refused_share: float
    accepted_p50_ms: float
    accepted_p99_ms: float
    answers: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, client: str, statuses: dict[int, int], accepted_s: list[float], seconds: float
    ) -> PointSummary:
        total = sum(statuses.values()) or 1
        return cls(
            client=client,
            goodput_per_s=statuses.get(SERVED, 0) / seconds,
            refused_share=statuses.get(REFUSED_STATUS, 0) / total,
            accepted_p50_ms=1000 * percentile(accepted_s, 50),
            accepted_p99_ms=1000 * percentile(accepted_s, 99),
            answers={str(k): v for k, v in sorted(statuses.items())},
        )


def run_admission(options: AdmissionOptions, log: Log = print) -> dict[str, Any]:
    """Every model, both policies; the JSON record of the run."""
    from deploylab.benchmarks.bench import BenchOptions, _triton, ensure_exported

    record: dict[str, Any] = {"options": _jsonable(options.__dict__), "models": {}}
    for model in options.models:
        ensure_exported(model, options.repository, log)
        served = BenchOptions(repository=options.repository, state_dir=options.state_dir)
        with _triton(model, served) as (_, runtime):
            record["models"][model] = _bench_model(model, runtime.triton_http_url, options, log)
    record["targets"] = check_targets(record)
    return record


def _bench_model(model: str, triton_url: str, options: AdmissionOptions, log: Log) -> dict[str, Any]:
    from deploylab.services.gateway.model_profile import batch_slots

    config = model_config(triton_url, model)
    slots = batch_slots(config)  # as the gateway's admission counts them
    knee = 2 * slots * max(1, int(config.get("max_batch_size", 1)))
    result: dict[str, Any] = {"knee": knee, "policies": {}}
    log(f"{model}: knee {knee} (2 × {slots} batch slots × max batch {config.get('max_batch_size')})")
    for mode in sorted(options.modes, key=lambda m: m != "static"):  # static first: overload needs it
        with _gateway(model, mode, triton_url, options) as (url, pid):
            result["policies"][mode] = _bench_policy(model, mode, url, pid, triton_url, result, options, log)
    return result


def _bench_policy(
    model: str,
    mode: str,
    url: str,
    pid: int,
    triton_url: str,
    so_far: dict[str, Any],
    options: AdmissionOptions,
    log: Log,
) -> dict[str, Any]:
    request = request_for(url, model)
    points = []
    for concurrency in options.concurrencies:
        point = _closed_point(model, url, pid, triton_url, request, concurrency, options)
        points.append(point)
        own = point["clients"][0]
        log(
            f"  {model} {mode:6s} c={concurrency:3d}: goodput {own['goodput_per_s']:7.1f}/s, 429 "
            f"{own['refused_share']:6.1%}, accepted p99 {own['accepted_p99_ms']:7.1f} ms, "
            f"batch {point['mean_executed_batch']:.2f}"
            + (f"; wrk {point['clients'][1]['goodput_per_s']:7.1f}/s" if len(point["clients"]) > 1 else "")
        )
    policy: dict[str, Any] = {"points": points, "slo_ms": _slo_ms(url, model)}
    policy["cpu"] = _cpu_costs(points)
    if mode != "static" and "static" in so_far["policies"]:
        capacity = max(p["clients"][0]["goodput_per_s"] for p in so_far["policies"]["static"]["points"])
        policy["overload"] = _overload(url, request, capacity, options, log)
    return policy


def _closed_point(
    model: str,
    url: str,
    pid: int,
    triton_url: str,
    request: HttpRequest,
    concurrency: int,
    options: AdmissionOptions,
) -> dict[str, Any]:
    honouring, immediate = (concurrency + 1) // 2, concurrency // 2
    before_stats, before_cpu, before_own = fetch_model_stats(triton_url, model), _cpu_s(pid), _own_cpu_s()
    outcomes = asyncio.run(_closed(url, request, honouring, immediate, options))
    cpu_s, own_cpu_s = _cpu_s(pid) - before_cpu, _own_cpu_s() - before_own
    after_stats = fetch_model_stats(triton_url, model)
    measured = [o for o in outcomes if options.warmup_s <= o.sent_at < options.warmup_s + options.duration_s]
    statuses = _statuses(measured)
    own = PointSummary.of(
        "deploylab", statuses, [o.latency_s for o in measured if o.status == SERVED], options.duration_s
    )
    clients = [own.__dict__]
    if options.wrk:
        wrk = run_wrk(url, request, honouring=honouring, immediate=immediate, duration_s=options.duration_s)
        clients.append(PointSummary.of("wrk", dict(wrk.statuses), wrk.accepted_s, wrk.duration_s).__dict__)
    executed = after_stats - before_stats
    return {
        "concurrency": concurrency,
        "honouring": honouring,
        "immediate": immediate,
        "clients": clients,
        "mean_executed_batch": (
            executed.inference_count / executed.execution_count if executed.execution_count else 0.0
        ),
        "gateway_cpu_s": cpu_s,
        # The own client shares the cores it measures: past about half a core its goodput reads low
        # (requests wait on the client, not the server), which is when wrk and it disagree.
        "own_client_cores": own_cpu_s / (options.warmup_s + options.duration_s),
        "answers_all": {str(k): n for k, n in _statuses(outcomes).items()},  # JSON keys
    }


async def _closed(
    url: str, request: HttpRequest, honouring: int, immediate: int, options: AdmissionOptions
) -> list[Outcome]:
    template = RequestTemplate("POST", request.path, request.body, request.headers)
    async with LoadClient(url, connections=honouring + immediate + 8) as client:
        end = options.warmup_s + options.duration_s

        def stop() -> bool:
            return client.now() >= end

        runs = [closed_loop(client, template, concurrency=honouring, stop=stop)]
        if immediate:
            runs.append(
                closed_loop(client, template, concurrency=immediate, stop=stop, honour_retry_after=False)
            )
        return [o for outcomes in await asyncio.gather(*runs) for o in outcomes]


def _overload(
    url: str, request: HttpRequest, capacity: float, options: AdmissionOptions, log: Log
) -> dict[str, Any]:
    """Open loop at `overload_factor` × capacity, then 4 well-behaved clients: recovery time."""
    rate = options.overload_factor * capacity
    outcomes, recovery = asyncio.run(_overload_run(url, request, rate, options))
    served = [o for o in outcomes if o.status == SERVED]
    statuses = _statuses(outcomes)
    refused_after = [o.sent_at for o in recovery if o.status != SERVED]
    recovered_s = (max(refused_after) - options.overload_s) if refused_after else 0.0
    summary = PointSummary.of(
        "deploylab", statuses, [o.latency_s for o in served], options.overload_s
    ).__dict__
    result = {
        "rate_per_s": rate,
        "capacity_per_s": capacity,
        "goodput_share": summary["goodput_per_s"] / capacity if capacity else 0.0,
        "recovery_s": max(0.0, recovered_s),
        **summary,
    }
    log(
        f"  overload {options.overload_factor:.0f}× ({rate:.0f}/s): goodput {result['goodput_share']:.2f}× "
        f"capacity, accepted p99 {summary['accepted_p99_ms']:.1f} ms, "
        f"recovered in {result['recovery_s']:.1f} s"
    )
    return result


async def _overload_run(
    url: str, request: HttpRequest, rate: float, options: AdmissionOptions
) -> tuple[list[Outcome], list[Outcome]]:
    template = RequestTemplate("POST", request.path, request.body, request.headers)
    async with LoadClient(url, connections=int(rate * 2) + 64) as client:
        start = client.now()
        outcomes = await open_loop(client, template, rate_per_s=rate, duration_s=options.overload_s)
        end = start + options.overload_s + options.recovery_s

        def stop() -> bool:
            return client.now() >= end

        recovery = await closed_loop(client, template, concurrency=4, stop=stop)
    shifted = [Outcome(o.sent_at - start, o.latency_s, o.status, o.code, o.transport_error) for o in recovery]
    return outcomes, shifted


def _cpu_costs(points: list[dict[str, Any]]) -> dict[str, float]:
    """Gateway CPU ms per served answer (points with no refusal) and per 429 (the rest, by subtraction)."""
    quiet = [p for p in points if not p["answers_all"].get(str(REFUSED_STATUS))]
    served_ms = (
        1000
        * sum(p["gateway_cpu_s"] for p in quiet)
        / max(1, sum(p["answers_all"].get(str(SERVED), 0) for p in quiet))
        if quiet
        else float("nan")
    )
    busy = [p for p in points if p["answers_all"].get(str(REFUSED_STATUS), 0) > 100]
    if not busy or served_ms != served_ms:
        return {"served_ms": served_ms, "refused_ms": float("nan"), "refused_over_served": float("nan")}
    cpu_s = sum(p["gateway_cpu_s"] for p in busy)
    served = sum(p["answers_all"].get(str(SERVED), 0) for p in busy)
    refused = sum(p["answers_all"].get(str(REFUSED_STATUS), 0) for p in busy)
    refused_ms = max(0.0, 1000 * cpu_s - served * served_ms) / refused
    return {"served_ms": served_ms, "refused_ms": refused_ms, "refused_over_served": refused_ms / served_ms}


def check_targets(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The admission targets, per model: what was measured, the bound, and whether it held.

    Goodput is held at every concurrency to 0.9× the best `static` goodput of any point with as many
    clients or fewer; p99s are of accepted (200) answers; the CPU share is one 429's over one 200's.
    """
    targets: dict[str, dict[str, Any]] = {}
    for model, result in record["models"].items():
        policies = result["policies"]
        if "slo" not in policies or "static" not in policies:
            continue
        slo = policies["slo"]
        worst = min(
            p["clients"][0]["goodput_per_s"] / _best_static(policies["static"]["points"], p["concurrency"])
            for p in slo["points"]
        )
        below_knee = [p for p in slo["points"] if p["concurrency"] <= result["knee"]]
        refused_below = max((p["clients"][0]["refused_share"] for p in below_knee), default=0.0)
        p99 = max(p["clients"][0]["accepted_p99_ms"] for p in slo["points"])
        agreement = (
            max(
                abs(p["clients"][1]["goodput_per_s"] / p["clients"][0]["goodput_per_s"] - 1)
                for p in slo["points"] + policies["static"]["points"]
                if len(p["clients"]) > 1 and p["clients"][0]["goodput_per_s"]
            )
            if any(len(p["clients"]) > 1 for p in slo["points"])
            else float("nan")
        )
        rows = {
            # Below the knee neither policy refuses anything: the two runs of the same point differ only
            # by the machine's drift between them, the spread any sequential comparison here carries.
            "same_point_spread": (_same_point_spread(policies), float("nan"), True),
            "goodput_vs_best_static": (worst, 0.9, worst >= 0.9),
            "refused_share_below_knee": (refused_below, 0.0, refused_below == 0.0),
            "accepted_p99_ms_vs_slo": (p99, slo["slo_ms"], p99 <= slo["slo_ms"]),
            "refusal_cpu_share": (
                slo["cpu"]["refused_over_served"],
                0.05,
                slo["cpu"]["refused_over_served"] <= 0.05,
            ),
            "wrk_vs_own_client_goodput": (agreement, 0.05, agreement <= 0.05),
        }
        if "overload" in slo:
            overload = slo["overload"]
            rows["overload_goodput_share"] = (
                overload["goodput_share"],
                0.9,
                overload["goodput_share"] >= 0.9,
            )
            rows["overload_accepted_p99_ms"] = (
                overload["accepted_p99_ms"],
                slo["slo_ms"],
                overload["accepted_p99_ms"] <= slo["slo_ms"],
            )
            rows["recovery_s"] = (overload["recovery_s"], 5.0, overload["recovery_s"] <= 5.0)
        for name, (value, bound, held) in rows.items():
            targets[f"{model}.{name}"] = {"value": value, "bound": bound, "met": bool(held)}
    return targets


def _same_point_spread(policies: dict[str, Any]) -> float:
    """The largest |slo / static - 1| of goodput over points where neither policy refused a request."""
    static = {p["concurrency"]: p for p in policies["static"]["points"]}
    spreads = [
        abs(p["clients"][0]["goodput_per_s"] / static[p["concurrency"]]["clients"][0]["goodput_per_s"] - 1)
        for p in policies["slo"]["points"]
        if p["concurrency"] in static
        and not p["answers_all"].get(str(REFUSED_STATUS))
        and not static[p["concurrency"]]["answers_all"].get(str(REFUSED_STATUS))
        and static[p["concurrency"]]["clients"][0]["goodput_per_s"]
    ]
    return max(spreads, default=float("nan"))


def _best_static(points: list[dict[str, Any]], concurrency: int) -> float:
    """The best `static` goodput any point with at most `concurrency` clients reached: one client cannot
    fill a batching server, so each point is held to what the same number of clients can get."""
    return max(p["clients"][0]["goodput_per_s"] for p in points if p["concurrency"] <= concurrency) or 1.0


def markdown_table(record: dict[str, Any]) -> str:
    """concurrency × goodput × 429 share × accepted p99, default (`slo`) beside `static`, per model."""
    lines = []
    for model, result in record["models"].items():
        slo_ms = result["policies"].get("slo", {}).get("slo_ms", float("nan"))
        lines += [
            f"**{model}** (knee {result['knee']}; SLO p99 {slo_ms:.0f} ms)",
            "",
            "| clients | policy | goodput/s (own · wrk) | 429 share | accepted p99 ms | executed batch |",
            "|---|---|---|---|---|---|",
        ]
        for mode, policy in result["policies"].items():
            for p in policy["points"]:
                own, *others = p["clients"]
                wrk = f" · {others[0]['goodput_per_s']:.1f}" if others else ""
                lines.append(
                    f"| {p['concurrency']} | {mode} | {own['goodput_per_s']:.1f}{wrk} | "
                    f"{own['refused_share']:.1%} | {own['accepted_p99_ms']:.0f} | "
                    f"{p['mean_executed_batch']:.2f} |"
                )
        lines.append("")
    return "\n".join(lines)


# -- plumbing --------------------------------------------------------------------------------------


class _gateway:
    """A default gateway (only `admission` set) in front of `triton_url`, as (url, pid)."""

    def __init__(self, model: str, mode: str, triton_url: str, options: AdmissionOptions) -> None:
        from deploylab.services.gateway.settings import GatewaySettings
        from deploylab.services.gateway.stack import GatewayProcess
        from deploylab.services.measure.ports import free_ports

        routing = options.state_dir / "admission-routing.yaml"
        routing.parent.mkdir(parents=True, exist_ok=True)
        routing.write_text("routes: []\n")
        (port,) = free_ports(1)
        settings = GatewaySettings(
            port=port,
            triton_url=triton_url.removeprefix("http://"),
            model_repository=options.repository,
            routing_file=routing,
            admission=mode,  # type: ignore[arg-type]
        )
        self.process = GatewayProcess(settings, options.state_dir / "logs" / f"admission-{model}-{mode}.log")

    def __enter__(self) -> tuple[str, int]:
        self.process.start(ready_timeout_s=60.0)
        assert self.process.process is not None
        return self.process.url, self.process.process.pid

    def __exit__(self, *exc: object) -> None:
        self.process.stop()


def _cpu_s(pid: int) -> float:
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _statuses(outcomes: list[Outcome]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for o in outcomes:
        key = o.status if o.status is not None else 0
        counts[key] = counts.get(key, 0) + 1
    return counts


def _slo_ms(url: str, model: str) -> float:
    """The p99 objective the gateway publishes for `model` (NaN before it knows one)."""
    seconds = fetch_metrics(url + "/metrics", timeout_s=10).total(SLO_METRIC, model=model)
    return 1000 * seconds if seconds else float("nan")


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
