"""The sweep: for each model, in-process baselines, then its Locust session; results saved after each point.

The orchestrator never imports Locust (gevent's monkey-patching would turn the baselines' threads into
greenlets); each model's points run in `python -m deploylab.loadtests.session`, whose JSON lines are
read here.
Ctrl-C stops the running session (and its workers) and keeps every finished point: the results file
is rewritten after each one and marked `interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploylab.loadtests.baselines import engines_for, measure_baselines
from deploylab.loadtests.live import SweepDisplay
from deploylab.loadtests.model_facts import collect_facts
from deploylab.loadtests.paired import estimate_seconds as estimate_paired
from deploylab.loadtests.paired import measure_pairs, pairs_among
from deploylab.loadtests.payloads import Target
from deploylab.loadtests.plan import (
    Endpoints,
    PointPlan,
    Profile,
    SessionPlan,
    estimated_seconds,
    plan_points,
)
from deploylab.services.measure.csv_files import write_csv_files
from deploylab.services.measure.machine import machine_info
from deploylab.services.measure.results import (
    DEFAULT_OBJECTIVE,
    Objective,
    PointResult,
    RampResult,
    RunResults,
    save_results,
)
from deploylab.services.runtime.processes import stop_process_group
from deploylab.services.runtime.triton import die_with_parent

PLANS_DIR = "plans"
SESSION_LOG = "locust.log"
#: Rough seconds to load a model into an in-process engine (for the progress estimate only).
ENGINE_LOAD_S = 3.0


class SweepError(RuntimeError):
    """A session that failed; the message carries its last words."""


@dataclass
class SweepConfig:
    targets: list[Target]
    profile: Profile
    endpoints: Endpoints
    repository: Path
    run_dir: Path
    workers: int = 0
    stop_timeout_s: float = 10.0
    inprocess: bool = True
    objective: Objective = field(default_factory=lambda: DEFAULT_OBJECTIVE.model_copy())
    settings: dict[str, object] = field(default_factory=dict)


def new_run_dir(parent: Path) -> Path:
    """`parent/<UTC timestamp>`, unique even when two runs start in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    candidate, suffix = parent / stamp, 1
    while candidate.exists():
        suffix += 1
        candidate = parent / f"{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    return candidate


def inprocess_estimate(profile: Profile) -> float:
    layouts = 2 if profile.inprocess_threads > 1 else 1
    per_engine = (
        layouts * len(profile.inprocess_batch_sizes) * (profile.inprocess_duration_s + 0.5) + ENGINE_LOAD_S
    )
    return per_engine * len(profile.inprocess_engines)


def session_plan(config: SweepConfig, target: Target) -> SessionPlan:
    return SessionPlan(
        model=target.model,
        variant=target.variant,
        triton_model=target.triton_model,
        endpoints=config.endpoints,
        points=plan_points(
            config.profile, target.model, target.variant, config.endpoints.gateway_url is not None
        ),
        workers=config.workers,
        stop_timeout_s=config.stop_timeout_s,
    )


@contextlib.contextmanager
def session_process(plan_path: Path, log_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The Locust session subprocess, in its own process group so Ctrl-C reaches only us; always ended."""
    with log_path.open("a") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "deploylab.loadtests.session", str(plan_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - if we are killed, the session stops too
        )
    try:
        yield process
    finally:
        stop_process_group(process, grace_s=15.0)  # it stops its users and workers; then the group
        if process.stdout is not None:
            process.stdout.close()


class Sweep:
    """Runs a SweepConfig, keeping `results` current on disk."""

    def __init__(self, config: SweepConfig, display: SweepDisplay) -> None:
        self.config = config
        self.display = display
        self.started = time.monotonic()
        self.results = RunResults(
            run_id=config.run_dir.name,
            profile=config.profile.name,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            settings={
                "profile": config.profile.model_dump(mode="json"),
                "endpoints": config.endpoints.model_dump(mode="json"),
                "locust_workers": config.workers,
                "stop_timeout_s": config.stop_timeout_s,
                **config.settings,
            },
            machine=machine_info(config.endpoints.triton_url),
            objective=config.objective,
        )
        self.done_s = 0.0

    def save(self) -> None:
        save_results(self.results, self.config.run_dir)
        write_csv_files(self.results, self.config.run_dir)

    def run(self) -> RunResults:
        config = self.config
        self.results.models = collect_facts(config.repository, [t.triton_model for t in config.targets])
        plans = [session_plan(config, target) for target in config.targets]
        per_model_inprocess = inprocess_estimate(config.profile) if config.inprocess else 0.0
        total = sum(estimated_seconds(plan.points) + per_model_inprocess + 2.0 for plan in plans)
        pairs = pairs_among([t.triton_model for t in config.targets]) if config.inprocess else []
        rounds, pair_s = config.profile.paired_rounds, config.profile.paired_duration_s
        paired_estimate = estimate_paired(pairs, rounds, pair_s) if pairs and rounds else 0.0
        self.display.plan(total + paired_estimate)
        self.save()
        try:
            if paired_estimate:
                self.run_paired(pairs, paired_estimate)
                self.done_s += paired_estimate
            for target, plan in zip(config.targets, plans, strict=True):
                if config.inprocess:
                    self.run_baselines(target)
                    self.done_s += per_model_inprocess
                self.run_session(plan)
                self.done_s += estimated_seconds(plan.points) + 2.0
                self.display.overall_done(self.done_s)
            self.results.status = "complete"
        except KeyboardInterrupt:
            self.results.status = "interrupted"
            self.results.notes.append("interrupted by the user; the results hold every point finished before")
            raise
        except BaseException as exc:
            self.results.status = "failed"
            self.results.notes.append(f"failed: {exc}")
            raise
        finally:
            self.results.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
            self.results.duration_s = round(time.monotonic() - self.started, 1)
            self.save()
        return self.results

    def run_paired(self, pairs: list[tuple[str, str]], estimate: float) -> None:
        """The claims' model pairs, in-process and interleaved, before anything is loaded by traffic."""
        profile = self.config.profile
        self.display.phase(f"interleaved in-process baselines for {len(pairs)} claim pairs", estimate)
        self.results.paired = measure_pairs(
            pairs,
            self.config.repository,
            profile.paired_rounds,
            profile.paired_duration_s,
            profile.inprocess_threads,
            progress=self.display.describe,
        )
        for pair in self.results.paired:
            self.display.note(
                f"{pair.fast} vs {pair.slow}: latency {pair.latency_ratio:.2f}×, "
                f"throughput {pair.throughput_ratio:.2f}× (interleaved, median of {pair.rounds})"
            )
        self.save()

    def run_baselines(self, target: Target) -> None:
        profile = self.config.profile
        engines = engines_for(self.results.facts_for(target.triton_model), profile.inprocess_engines)
        self.display.phase(
            f"{target.triton_model}: in-process baselines ({', '.join(engines)})",
            inprocess_estimate(profile),
        )
        baselines = measure_baselines(
            target.triton_model,
            self.config.repository,
            engines,
            profile.inprocess_batch_sizes,
            profile.inprocess_threads,
            profile.inprocess_duration_s,
        )
        self.results.inprocess.extend(baselines)
        best = max(baselines, key=lambda b: b.throughput_img_s)
        self.display.note(
            f"{target.triton_model}: in-process best {best.throughput_img_s:.1f} img/s "
            f"({best.engine}, batch {best.batch_size}, {best.layout})"
        )
        self.save()

    def run_session(self, plan: SessionPlan) -> None:
        run_dir = self.config.run_dir
        plans_dir = run_dir / PLANS_DIR
        plans_dir.mkdir(exist_ok=True)
        plan_path = plans_dir / f"{plan.triton_model}.json"
        plan_path.write_text(plan.model_dump_json(indent=2))
        estimates = {p.id: _point_estimate(p) for p in plan.points}
        session_started = time.monotonic()
        budget = estimated_seconds(plan.points)
        self.display.phase(f"{plan.triton_model}: starting Locust", None)
        last_error = ""
        with session_process(plan_path, run_dir / SESSION_LOG) as process:
            assert process.stdout is not None
            for line in process.stdout:
                message = _parse(line)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "point":
                    point = PointResult.model_validate(message["data"])
                    self.results.points.append(point)
                    self.display.point(point)
                    self.save()
                elif kind == "ramp":
                    ramp = RampResult.model_validate(message["data"])
                    self.results.ramps.append(ramp)
                    self.display.ramp(ramp)
                    self.save()
                elif kind == "skipped":
                    self.results.notes.append(f"{message['id']} skipped: {message['reason']}")
                elif kind == "error":
                    last_error = str(message.get("message"))
                else:
                    self.display.session_message(message, estimates)
                elapsed = min(time.monotonic() - session_started, budget)
                self.display.overall_done(self.done_s + elapsed)
            code = process.wait()
        if code != 0:
            detail = last_error or f"see {run_dir / SESSION_LOG}"
            raise SweepError(f"Locust session for {plan.triton_model} exited with code {code}: {detail}")


def _point_estimate(point: PointPlan) -> float:
    steps = len(point.users) if point.loop == "ramp" else 1
    return point.warmup_s + steps * point.window_s


def _parse(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def run_sweep(config: SweepConfig, display: SweepDisplay | None = None) -> RunResults:
    """Run the sweep; results are in `config.run_dir` whatever happens (complete, interrupted, failed)."""
    with display or SweepDisplay(enabled=False) as live:
        return Sweep(config, live).run()
