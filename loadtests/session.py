"""One model's points in one Locust session, JSON lines out:
`python -m deploylab.loadtests.session PLAN.json`.

The sweep runs this as a subprocess so gevent's monkey-patching stays out of the orchestrator (whose
in-process baselines need real threads). Locust is driven through its library API: a local runner,
or a master with `workers` real worker processes on loopback.

Every measured window is bounded by *quiescent* moments: users are stopped gracefully (each finishes
the request it has in flight) and, with workers, a flush handshake pulls their last statistics before
the servers are scraped. So Locust's count and the servers' counters cover exactly the same requests,
and a difference above 5% means something really disagrees.

Output, one JSON object per line on stdout: `progress` (live numbers), `point`, `ramp`, `skipped`.
"""

from __future__ import annotations

# Locust monkey-patches the standard library for gevent when imported: it comes before everything else.
import locust

# isort: split
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gevent
from deploylab.loadtests import locustfile as scenarios
from deploylab.loadtests.payloads import request_name, resolve_target
from deploylab.loadtests.plan import PointPlan, SessionPlan
from deploylab.loadtests.server_metrics import (
    ServerSnapshot,
    check_flags,
    cross_checks,
    gateway_view,
    serving_cost,
    take_snapshot,
    triton_view,
)
from deploylab.services.measure.percentiles import percentile, summarize_ms
from deploylab.services.measure.ports import free_ports
from deploylab.services.measure.results import LatencyMs, PointResult, RampResult
from deploylab.services.measure.server_stats import ScrapeError
from deploylab.services.runtime.triton import die_with_parent
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, Runner
from locust.stats import StatsEntry

Emit = Callable[[dict[str, Any]], None]
WORKER_CONNECT_TIMEOUT_S = 60.0
FLUSH_TIMEOUT_S = 15.0
PROGRESS_INTERVAL_S = 1.0


class SessionError(RuntimeError):
    """The session could not run a point (workers missing, a flush unanswered, a server unreachable)."""


@dataclass(frozen=True)
class StatsMark:
    """Locust's counts for one request name at one instant, and how many raw latencies were recorded."""

    at: float
    requests: int
    failures: int
    samples: int

    @classmethod
    def of(cls, entry: StatsEntry) -> StatsMark:
        return cls(
            time.monotonic(),
            entry.num_requests,
            entry.num_failures,
            scenarios.LATENCIES.count(entry.name),
        )

    def successes_since(self, start: StatsMark) -> int:
        return (self.requests - self.failures) - (start.requests - start.failures)

    @classmethod
    def zero(cls) -> StatsMark:
        return cls(time.monotonic(), 0, 0, 0)


def latency_ms(samples_ms: Sequence[float]) -> LatencyMs:
    """The point's latency fields from raw samples (the measurement core's nearest-rank percentiles)."""
    if not samples_ms:
        return LatencyMs()
    return LatencyMs.model_validate(summarize_ms(samples_ms).rounded(2), from_attributes=True)


def latency_between(name: str, start: StatsMark, end: StatsMark) -> LatencyMs:
    """Latency of the requests named `name` recorded between two marks."""
    return latency_ms(scenarios.LATENCIES.between(name, start.samples, end.samples))


class LocustSession:
    """Drives a Locust runner through the plan's points; `workers > 0` uses real worker processes."""

    def __init__(self, plan: SessionPlan, emit: Emit) -> None:
        self.plan = plan
        self.emit = emit
        parser = get_parser(default_config_files=[])  # fires the locustfile's option hook
        self.options = parser.parse_args(
            [
                "--headless",
                "--model",
                plan.model,
                "--variant",
                plan.variant,
                "--images",
                str(plan.images),
                "--top-k",
                str(plan.top_k),
                "--max-outstanding",
                str(plan.max_outstanding),
                "--seed",
                str(plan.seed),
            ]
        )
        self.env = Environment(
            user_classes=[scenarios.ClassifyUser, scenarios.V2InferUser, scenarios.OpenLoopUser],
            events=locust.events,
            stop_timeout=plan.stop_timeout_s,
            parsed_options=self.options,
            catch_exceptions=True,
        )
        scenarios.keep_latencies()  # the points' percentiles come from every request's time
        self.workers: list[subprocess.Popen[bytes]] = []
        self.acks: dict[str, set[str]] = {}
        self.worker_ids: set[str] = set()
        self.runner: Runner = self._create_runner()
        self.best_rate: dict[str, float] = {}

    # -- runner lifecycle -------------------------------------------------------------------
    def _create_runner(self) -> Runner:
        if self.plan.workers == 0:
            runner: Runner = self.env.create_local_runner()
        else:
            port = free_ports(1)[0]
            runner = self.env.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
            runner.register_message(scenarios.FLUSH_DONE, self._on_flushed)
            self._start_workers(port)
        self.env.events.init.fire(environment=self.env, runner=runner, web_ui=None)
        if isinstance(runner, MasterRunner):
            self._wait(
                lambda: len(runner.clients.ready) >= self.plan.workers, WORKER_CONNECT_TIMEOUT_S, "workers"
            )
            # Remembered here: the master forgets a stopped worker until it reports ready again.
            self.worker_ids = {client.id for client in runner.clients.all}
        return runner

    def _start_workers(self, port: int) -> None:
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(Path(scenarios.__file__).resolve()),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(port),
            "--loglevel",
            "WARNING",
        ]
        for _ in range(self.plan.workers):
            self.workers.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and locustfile
                    command, stdin=subprocess.DEVNULL, stdout=sys.stderr, preexec_fn=die_with_parent
                )
            )

    def close(self) -> None:
        """Quit the runner and make sure no worker process outlives the session."""
        with contextlib.suppress(Exception):
            self.runner.quit()
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=5)
            if worker.poll() is None:
                worker.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=5)
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    def _wait(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise SessionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            for worker in self.workers:
                if worker.poll() is not None:
                    raise SessionError(f"Locust worker exited with code {worker.returncode}")
            gevent.sleep(0.05)

    def _on_flushed(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self.acks.setdefault(str(msg.data["token"]), set()).add(str(msg.node_id))

    def flush(self) -> None:
        """Make the master's statistics complete up to now (no-op for a local runner)."""
        runner = self.runner
        if not isinstance(runner, MasterRunner):
            return
        token = uuid.uuid4().hex
        self.acks[token] = set()
        for client_id in self.worker_ids:
            runner.send_message(scenarios.FLUSH_REQUEST, {"token": token}, client_id=client_id)
        # A stopped worker answers only after its post-stop pause (stop_timeout), hence the margin.
        timeout_s = FLUSH_TIMEOUT_S + self.plan.stop_timeout_s
        self._wait(lambda: self.acks[token] >= self.worker_ids, timeout_s, "workers' statistics")
        del self.acks[token]

    def start_users(self, users: int, user_class: type[locust.User]) -> None:
        """Run `users` users of `user_class` (adds or removes users when already running)."""
        runner = self.runner
        if isinstance(runner, MasterRunner) and runner.state not in (STATE_RUNNING, STATE_SPAWNING):
            self._wait(
                lambda: len(runner.clients.ready) >= self.plan.workers, WORKER_CONNECT_TIMEOUT_S, "workers"
            )
        runner.start(users, spawn_rate=max(100.0, users * 20.0), user_classes=[user_class])
        self._wait(lambda: runner.user_count == users, 30.0, f"{users} users to start")

    def stop_users(self) -> None:
        """Stop gracefully: every user finishes its request in flight, then the statistics are flushed."""
        self.runner.stop()
        self._wait(lambda: self.runner.user_count == 0, self.plan.stop_timeout_s + 30.0, "users to stop")
        self.flush()

    def entry(self, name: str, method: str = "POST") -> StatsEntry:
        return self.env.stats.get(name, method)

    # -- points -------------------------------------------------------------------------------
    def snapshot(self, point: PointPlan) -> ServerSnapshot:
        endpoints = self.plan.endpoints
        gateway_metrics = endpoints.gateway_metrics_url if point.target == "gateway" else None
        return take_snapshot(
            endpoints.triton_url,
            endpoints.triton_metrics_url,
            self.plan.triton_model,
            gateway_metrics,
            endpoints.serving_pids,
        )

    def user_class(self, point: PointPlan) -> type[locust.User]:
        if point.loop == "open":
            return scenarios.OpenLoopUser
        return scenarios.ClassifyUser if point.api == "classify" else scenarios.V2InferUser

    def prepare(self, point: PointPlan, rate: float | None) -> str:
        """Point the users at the right host and options; returns the request name to read stats from."""
        self.env.host = self.plan.endpoints.host_for(point.target)
        self.options.api = point.api
        if rate is not None:
            self.options.arrival_rate = rate / point.users[0]
        target = resolve_target(self.plan.model, self.plan.variant)
        return request_name(point.api, target)

    def open_loop_rate(self, point: PointPlan) -> float | None:
        if point.loop != "open":
            return None
        if point.arrival_rate is not None:
            return point.arrival_rate
        best = self.best_rate.get(f"{point.target}-{point.api}") or max(self.best_rate.values(), default=0.0)
        return round(best * (point.rate_fraction or 1.0), 2) if best > 0 else None

    def warm_up(self, point: PointPlan, user_class: type[locust.User], users: int) -> None:
        if point.warmup_s > 0:
            self.emit({"type": "progress", "id": point.id, "phase": "warm-up", "seconds": point.warmup_s})
            self.start_users(users, user_class)
            gevent.sleep(point.warmup_s)
            self.stop_users()
        self.env.stats.reset_all()
        scenarios.LATENCIES.reset()

    def watch(self, point: PointPlan, name: str, seconds: float, phase: str, users: int) -> None:
        """Sleep through a window, emitting live throughput and the p50 of this window every second."""
        since = scenarios.LATENCIES.count(name)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            gevent.sleep(min(PROGRESS_INTERVAL_S, left))
            entry = self.entry(name)
            recent = scenarios.LATENCIES.between(name, since)
            self.emit(
                {
                    "type": "progress",
                    "id": point.id,
                    "phase": phase,
                    "users": users,
                    "left_s": round(max(0.0, deadline - time.monotonic()), 1),
                    "requests": entry.num_requests,
                    "failures": entry.num_failures,
                    "current_rps": round(entry.current_rps, 1),
                    "p50_ms": round(percentile(recent, 50), 1) if recent else None,
                }
            )

    def run_point(self, point: PointPlan) -> PointResult | None:
        """A closed- or open-loop point: warm up, then one quiescent-bounded window."""
        rate = self.open_loop_rate(point)
        if point.loop == "open" and rate is None:
            self.emit(
                {
                    "type": "skipped",
                    "id": point.id,
                    "reason": "no closed-loop rate to derive the arrival rate",
                }
            )
            return None
        name = self.prepare(point, rate)
        user_class = self.user_class(point)
        users = point.users[0]
        self.warm_up(point, user_class, users)
        before = self.snapshot(point)
        start = StatsMark.zero()
        self.start_users(users, user_class)
        self.watch(point, name, point.window_s, "window", users)
        self.flush()
        end = StatsMark.of(self.entry(name))
        self.stop_users()
        after = self.snapshot(point)
        final = StatsMark.of(self.entry(name))
        window_s = end.at - start.at
        result = self.result(point, name, users, rate, start, end, final, before, after, window_s)
        if point.loop == "closed":
            key = f"{point.target}-{point.api}"
            self.best_rate[key] = max(self.best_rate.get(key, 0.0), result.throughput_rps)
        return result

    def result(
        self,
        point: PointPlan,
        name: str,
        users: int,
        rate: float | None,
        start: StatsMark,
        end: StatsMark,
        final: StatsMark,
        before: ServerSnapshot,
        after: ServerSnapshot,
        window_s: float,
        step: int | None = None,
        check: bool = True,
    ) -> PointResult:
        started_at = (datetime.now(UTC) - timedelta(seconds=time.monotonic() - start.at)).isoformat(
            timespec="seconds"
        )
        requests = final.requests - start.requests
        failures = final.failures - start.failures
        triton = triton_view(before, after, self.plan.triton_model, window_s)
        gateway = gateway_view(before, after, point.api, self.plan.model, self.plan.variant, window_s)
        checks = cross_checks(requests, requests - failures, gateway, triton, point.api) if check else []
        dropped = (
            self.env.stats.get(scenarios.DROPPED_NAME, "ARRIVAL").num_requests if point.loop == "open" else 0
        )
        return PointResult(
            id=point.id if step is None else f"{point.id}/step{step}-u{users}",
            model=self.plan.model,
            variant=self.plan.variant,
            triton_model=self.plan.triton_model,
            target=point.target,
            api=point.api,
            loop=point.loop,
            users=users,
            arrival_rate=rate,
            step=step,
            locust_workers=self.plan.workers,
            started_at=started_at,
            warmup_s=point.warmup_s if step in (None, 0) else 0.0,
            window_s=round(window_s, 3),
            requests=requests,
            failures=failures,
            dropped_arrivals=dropped,
            throughput_rps=round(end.successes_since(start) / window_s, 3) if window_s > 0 else 0.0,
            latency_ms=latency_between(name, start, final),
            failure_reasons=self.failure_reasons(name) if step is None else {},
            gateway=gateway,
            triton=triton,
            cost=serving_cost(before, after, requests - failures),
            checks=checks,
            flags=check_flags(checks),
        )

    def failure_reasons(self, name: str, limit: int = 5) -> dict[str, int]:
        errors = [e for e in self.env.stats.errors.values() if e.name == name]
        errors.sort(key=lambda e: e.occurrences, reverse=True)
        return {str(e.error)[:200]: int(e.occurrences) for e in errors[:limit]}

    def run_ramp(self, point: PointPlan) -> RampResult:
        """A step ramp: users stepped up without stopping; each step measured, the whole ramp checked."""
        name = self.prepare(point, None)
        user_class = self.user_class(point)
        self.warm_up(point, user_class, point.users[0])
        before = self.snapshot(point)
        step_start, step_servers = StatsMark.zero(), before
        steps = []
        for index, users in enumerate(point.users):
            self.start_users(users, user_class)
            self.watch(point, name, point.window_s, f"step {index + 1}/{len(point.users)}", users)
            self.flush()
            step_end = StatsMark.of(self.entry(name))
            servers = self.snapshot(point)  # running: server views per step are approximate
            window_s = step_end.at - step_start.at
            steps.append(
                self.result(
                    point,
                    name,
                    users,
                    None,
                    step_start,
                    step_end,
                    step_end,
                    step_servers,
                    servers,
                    window_s,
                    step=index,
                    check=False,
                )
            )
            step_start, step_servers = step_end, servers
        self.stop_users()
        after = self.snapshot(point)
        final = StatsMark.of(self.entry(name))
        total_s = final.at - before.triton.taken_at
        whole = self.result(
            point, name, point.users[-1], None, StatsMark.zero(), final, final, before, after, total_s
        )
        # The ramp's own fields are those of its whole window (same id, path, counts and checks).
        shared = {name: getattr(whole, name) for name in RampResult.model_fields.keys() - {"step_s", "steps"}}
        return RampResult(**shared, step_s=point.window_s, steps=steps)

    def run(self) -> None:
        for point in self.plan.points:
            if point.loop == "ramp":
                ramp = self.run_ramp(point)
                self.emit({"type": "ramp", "data": ramp.model_dump(mode="json")})
            else:
                result = self.run_point(point)
                if result is not None:
                    self.emit({"type": "point", "data": result.model_dump(mode="json")})


def emit_line(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.stderr.write("usage: python -m deploylab.loadtests.session PLAN.json\n")
        return 2
    plan = SessionPlan.model_validate_json(Path(args[0]).read_text())
    # SIGTERM from the sweep (its Ctrl-C) ends the session like Ctrl-C: users and workers stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    session = LocustSession(plan, emit_line)
    try:
        session.run()
    except KeyboardInterrupt:
        emit_line({"type": "interrupted"})
        return 130
    except (SessionError, ScrapeError) as exc:
        emit_line({"type": "error", "message": str(exc)})
        return 1
    finally:
        session.close()
    emit_line({"type": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
