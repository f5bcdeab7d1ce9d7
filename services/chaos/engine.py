"""The one scenario runner: a `ScenarioSpec` (inject, load, checks as data) run against a `Target`.

The runner loads the gateway (`spec.load`), calls the injection mid-load, runs the observations beside
it, and hands the record to the spec's checks. Every scenario, whatever it injects, goes through
`run_scenario`; a new scenario is a new `ScenarioSpec`, not a new function.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .checks import Check, CheckSpec, Derived, Record, derive, finite_or_none, judge, rounded
from .context import Run, Target
from .injections import Injection
from .load import LoadClient, LoadSummary, Outcome
from .observations import Observation
from .plans import LoadPlan


@dataclass
class ScenarioResult:
    """What a scenario did and found: the fault, requests sent and answered, recovery, checks, numbers."""

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
            "numbers": rounded(self.numbers),
        }


@dataclass(frozen=True)
class ScenarioSpec:
    """A chaos scenario as data.

    `fault` describes the injection for the table; it is formatted with the load plan's and the
    injection's fields, the run's numbers and `model`. `recovery` names the number reported as the
    worst recovery. `stack` tells the chaos command what to run it against: the main stack, a spare
    gateway in front of the main Triton (for faults that end the gateway), or the slow-model stack.
    """

    name: str
    fault: str
    load: LoadPlan
    inject: Injection | None
    checks: tuple[CheckSpec, ...]
    observe: tuple[Observation, ...] = ()
    measures: tuple[Derived, ...] = ()
    recovery: str | None = None
    stack: Literal["main", "spare_gateway", "slow"] = "main"
    faults: int = 1

    def with_load(self, **changes: float) -> ScenarioSpec:
        """This scenario with some of its load plan's fields changed (a shorter or gentler run)."""
        return replace(self, load=replace(self.load, **changes))  # type: ignore[arg-type]

    def describe(self, numbers: dict[str, float], model: str) -> str:
        """The injected fault in words, for the table."""
        values: dict[str, Any] = {**numbers, "model": model}
        for part in (self.load, self.inject):
            if part is not None:
                values.update({f.name: getattr(part, f.name) for f in fields(part)})  # type: ignore[arg-type]
        return self.fault.format(**values)

    def judge(self, record: Record, model: str) -> ScenarioResult:
        """The result of a recorded run: derived numbers, each check's verdict, the recovery."""
        derive(record, self.measures)
        checks = judge(record, self.checks)
        numbers = dict(record.numbers)
        recovery = numbers.pop(self.recovery, math.nan) if self.recovery else math.nan
        return ScenarioResult(
            name=self.name,
            fault=self.describe(record.numbers, model),
            faults_injected=self.faults,
            summary=LoadSummary.of(record.outcomes),
            recovery_s=finite_or_none(recovery),
            checks=checks,
            numbers=numbers,
            outcomes=record.outcomes,
        )


async def run_scenario(spec: ScenarioSpec, target: Target) -> ScenarioResult:
    """Run `spec` against `target`, accounting for every request, and judge what happened."""
    if spec.inject is not None:
        spec.inject.require(target)
    async with LoadClient(target.gateway_url, timeout_s=spec.load.client_timeout_s) as client:
        run = Run(target, client)
        await spec.load.prepare(run)
        for observation in spec.observe:
            await observation.before(run)
        outcomes = await _under_load(spec, run)
        for observation in spec.observe:
            await observation.after(run)
    return spec.judge(run.record(outcomes), target.model)


async def _under_load(spec: ScenarioSpec, run: Run) -> list[Outcome]:
    """The load, the injection's timeline and the observations, together; marks `load_start`/`load_end`.

    A closed loop runs until the timeline ends (`before_s`, the injection, `after_s`); observations
    watch until the load ends.
    """
    timeline_done, load_done = asyncio.Event(), asyncio.Event()

    async def load() -> list[Outcome]:
        try:
            return await spec.load.drive(run, timeline_done.is_set)
        finally:
            load_done.set()

    async def timeline() -> None:
        try:
            await asyncio.sleep(spec.load.before_s)
            if spec.inject is not None:
                await spec.inject(run)
            await asyncio.sleep(spec.load.after_s)
        finally:
            timeline_done.set()

    started = run.mark("load_start")
    load_task = asyncio.ensure_future(load())
    await asyncio.gather(load_task, timeline(), *(o.during(run, load_done.is_set) for o in spec.observe))
    run.numbers["load_s"] = run.mark("load_end") - started
    return load_task.result()
