"""What a scenario watches besides the load's own answers: probes during the load, readings after it.

Each observation may act `before` the load, `during` it (until `stop`) and `after` it, and leaves what
it saw on the `Run` — a probe series (`run.probes[...]`) or numbers — for the checks to judge.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .context import Run, Stop
from .load import LoadClient, RequestTemplate, metric_value, rss_probe, sample_periodically


class Observation:
    """Does nothing at every stage; an observation overrides the stages it needs."""

    async def before(self, run: Run) -> None:
        return None

    async def during(self, run: Run, stop: Stop) -> None:
        return None

    async def after(self, run: Run) -> None:
        return None


@dataclass(frozen=True)
class ReadyzProbes(Observation):
    """GET /readyz every `period_s` during the load; the answers become the `readyz` series."""

    period_s: float = 0.1

    async def during(self, run: Run, stop: Stop) -> None:
        probes = run.probes.setdefault("readyz", [])
        while not stop():
            probes.append(await run.client.send(RequestTemplate("GET", "/readyz")))
            await asyncio.sleep(self.period_s)


@dataclass(frozen=True)
class InFlightPeak(Observation):
    """The gateway's in-flight gauge for the target's model, sampled; number `peak_in_flight`."""

    period_s: float = 0.05

    async def during(self, run: Run, stop: Stop) -> None:
        async def in_flight() -> float:
            name = "deploylab_gateway_in_flight_requests"
            return await metric_value(run.client, name, model=run.target.model)

        samples = await sample_periodically(run.client, in_flight, self.period_s, stop)
        values = [s.value for s in samples if not math.isnan(s.value)]
        run.numbers["peak_in_flight"] = max(values, default=math.nan)


@dataclass(frozen=True)
class GatewayMemory(Observation):
    """The gateway's RSS (with children) before, at its peak during, and after the load, in MiB;
    `rss_growth_mib` is the peak over the value before."""

    period_s: float = 0.25

    def _probe(self, run: Run) -> Callable[[], Awaitable[float]]:
        if run.target.pid is None:
            raise ValueError("watching the gateway's memory needs its process id")
        return rss_probe(run.target.pid)

    async def before(self, run: Run) -> None:
        run.numbers["rss_before_mib"] = await self._probe(run)()

    async def during(self, run: Run, stop: Stop) -> None:
        samples = await sample_periodically(run.client, self._probe(run), self.period_s, stop)
        peak = max((s.value for s in samples if not math.isnan(s.value)), default=math.nan)
        run.numbers["rss_peak_mib"] = peak
        run.numbers["rss_growth_mib"] = peak - run.numbers["rss_before_mib"]

    async def after(self, run: Run) -> None:
        run.numbers["rss_after_mib"] = await self._probe(run)()


@dataclass(frozen=True)
class Recovery(Observation):
    """After the load, sequential requests until `streak` in a row answer 200: number `recovery_s`
    (from the load's end; NaN when it never comes within max(3 x limit_s, 10 s)); then `sample`
    more requests as the `after` series, the unloaded latency reported beside the overload's."""

    limit_s: float = 5.0
    streak: int = 5
    sample: int = 100

    async def after(self, run: Run) -> None:
        client, request, ended = run.client, run.target.request, run.marks["load_end"]
        streak, deadline = 0, ended + max(self.limit_s * 3, 10.0)
        run.numbers["recovery_s"] = math.nan
        while client.now() < deadline:
            outcome = await client.send(request)
            streak = streak + 1 if outcome.status == 200 else 0
            if streak == self.streak:
                run.numbers["recovery_s"] = outcome.finished_at - ended
                break
        run.probes["after"] = [await client.send(request) for _ in range(self.sample)]


@dataclass(frozen=True)
class GatewaySlo(Observation):
    """The p99 objective the gateway publishes for the request's model: numbers `slo_s` (absent while
    the gateway knows none) and `slo_ms` (NaN then)."""

    async def after(self, run: Run) -> None:
        slo_s = await gateway_slo_s(run.client, run.target.request)
        if slo_s is not None:
            run.numbers["slo_s"] = slo_s
        run.numbers["slo_ms"] = slo_s * 1e3 if slo_s is not None else math.nan


async def gateway_slo_s(client: LoadClient, request: RequestTemplate) -> float | None:
    """The p99 objective the gateway publishes for the model `request` names (None: not yet known)."""
    model = request.path.split("/")[3]
    for line in (await client.get_text("/metrics")).splitlines():
        if line.startswith(f'deploylab_gateway_admission_slo_seconds{{model="{model}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass(frozen=True)
class TritonQueue(Observation):
    """Requests Triton completed vs dropped from its queue (REJECTED) for the target's model, from its
    metrics after `settle_s` (queued requests past their deadline are swept periodically): numbers
    `triton_succeeded` and `triton_rejected`, absent when the target has no Triton metrics URL."""

    settle_s: float = 1.5

    async def after(self, run: Run) -> None:
        if run.target.triton_metrics_url is None:
            return
        await asyncio.sleep(self.settle_s)
        async with LoadClient(run.target.triton_metrics_url.removesuffix("/metrics")) as client:
            text = await client.get_text("/metrics")
        run.numbers.update(_triton_totals(text, run.target.model))


def _triton_totals(text: str, model: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"triton_succeeded": 0.0, "triton_rejected": 0.0}
    for family in text_string_to_metric_families(text):  # counters: samples are named <family>_total
        for sample in family.samples:
            if sample.labels.get("model") != model or sample.name != f"{family.name}_total":
                continue
            if family.name == "nv_inference_request_success":
                totals["triton_succeeded"] += sample.value
            elif family.name == "nv_inference_request_failure" and sample.labels.get("reason") == "REJECTED":
                totals["triton_rejected"] += sample.value
    return totals
