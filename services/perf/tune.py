"""`deploylab tune`: find the serving config with the most throughput under a p99 latency limit.

In the spirit of Triton Model Analyzer: every trial is a `ServingConfig` (max batch size, preferred
batch sizes, queue delay, instance count, engine threads) applied to a running Triton through
model control in explicit mode — a load request that carries the config, no file rewrite, no
restart — then measured over a closed-loop concurrency sweep. A trial's score is its best throughput
among the concurrencies whose p99 stays under the limit.

The default ("quick") search has two phases so it fits in a few minutes on 2 cores: first the ways
to spend the cores (instances × threads that use every core once, and two single-thread instances
per core), then, on the winning layout, a few batching variations. `strategy="grid"` searches the
full cartesian product instead.

A tune of an exported model (`tune_run.run_tune`) starts every trial from the model's exported config,
so what defines the deployment rather than the knobs searched (the engine, the instance kind, the
queue policy, extra model parameters) stays as deployed; only the fields a caller chose for every
trial (`TuneSpace.chosen`: the command's --backend and --pipeline) replace the exported ones.

Then the leading configs are measured again (`confirm_top`, in reverse order so a drifting machine
favours neither), and a config's score is the mean of its measurements: on a shared 2-core machine two
configs that differed only in a knob the load could not reach measured 340 and 429 img/s, more than
most knobs move it (docs/benchmarks.md, Tuner).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from deploylab.services.modelzoo.repository import ServingConfig, available_cores, build_model_config

from .client import Transport
from .load import LoadResult, LoadTarget, run_load
from .triton_admin import TritonAdminError, load_model, model_config, model_statistics

Strategy = Literal["quick", "grid"]


@dataclass(frozen=True)
class TuneSpace:
    """The values a search may pick from. Empty `layouts` means: every (instances, threads) whose
    product equals the core count, plus two single-thread instances per core (for light models the
    second instance runs while the first waits for its next batch)."""

    layouts: tuple[tuple[int, int], ...] = ()
    max_batch_sizes: tuple[int, ...] = (8, 16)
    queue_delays_us: tuple[int, ...] = (0, 500)
    preferred_batch_sizes: tuple[tuple[int, ...], ...] = ((),)
    base: ServingConfig = field(default_factory=ServingConfig)
    #: Fields of `base` the caller set for every trial; over an exported model (`on_deployment`) they
    #: replace the deployment's own, and every other field of `base` is the deployment's.
    chosen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.chosen) - {f.name for f in fields(ServingConfig)})
        if unknown:
            raise ValueError(f"chosen fields {unknown} are not ServingConfig fields")

    def on_deployment(self, deployed: ServingConfig) -> TuneSpace:
        """This space over an exported model: its base is `deployed` (the engine, instance kind, queue
        policy and the rest as exported) with the `chosen` fields of this base; ValueError when they
        cannot serve together (e.g. the native backend for an OpenVINO deployment)."""
        return replace(
            self, base=replace(deployed, **{name: getattr(self.base, name) for name in self.chosen})
        )

    def resolved_layouts(self, cores: int) -> list[tuple[int, int]]:
        if self.layouts:
            return list(self.layouts)
        exact = [(cores // t, t) for t in range(1, cores + 1) if cores % t == 0]
        return [*exact, (2 * cores, 1)]

    def candidate(
        self, layout: tuple[int, int], max_batch: int, delay_us: int, preferred: tuple[int, ...]
    ) -> ServingConfig:
        instances, threads = layout
        return replace(
            self.base,
            instance_count=instances,
            intra_op_threads=threads,
            max_batch_size=max_batch,
            max_queue_delay_us=delay_us,
            preferred_batch_sizes=tuple(b for b in preferred if b <= max_batch),
        )

    def grid(self, cores: int) -> list[ServingConfig]:
        """Every combination (deduplicated, order kept)."""
        configs = [
            self.candidate(layout, mb, delay, pref)
            for layout, mb, delay, pref in itertools.product(
                self.resolved_layouts(cores),
                self.max_batch_sizes,
                self.queue_delays_us,
                self.preferred_batch_sizes,
            )
        ]
        return _unique(configs)

    def layout_phase(self, cores: int) -> list[ServingConfig]:
        """Phase 1: each core layout with the first (default) batching values."""
        first = (self.max_batch_sizes[0], self.queue_delays_us[0], self.preferred_batch_sizes[0])
        return [self.candidate(layout, *first) for layout in self.resolved_layouts(cores)]

    def batching_phase(self, winner: ServingConfig) -> list[ServingConfig]:
        """Phase 2: on the winning layout, vary one batching knob at a time away from phase 1."""
        layout = (winner.instance_count, winner.intra_op_threads)
        first_mb, first_delay, first_pref = (
            self.max_batch_sizes[0],
            self.queue_delays_us[0],
            self.preferred_batch_sizes[0],
        )
        configs = [self.candidate(layout, mb, first_delay, first_pref) for mb in self.max_batch_sizes[1:]]
        configs += [self.candidate(layout, first_mb, d, first_pref) for d in self.queue_delays_us[1:]]
        configs += [self.candidate(layout, first_mb, first_delay, p) for p in self.preferred_batch_sizes[1:]]
        return [c for c in _unique(configs) if c != winner]


def _unique(configs: Sequence[ServingConfig]) -> list[ServingConfig]:
    """Drop repeats, keep order (ServingConfig holds a dict, so it is compared, not hashed)."""
    unique: list[ServingConfig] = []
    for config in configs:
        if config not in unique:
            unique.append(config)
    return unique


@dataclass(frozen=True)
class TuneOptions:
    p99_ms: float
    concurrencies: tuple[int, ...] = (1, 4, 16, 64)
    duration_s: float = 3.0
    request_batch: int = 1
    transport: Transport = "http"
    strategy: Strategy = "quick"
    space: TuneSpace = field(default_factory=TuneSpace)
    max_trials: int | None = None
    confirm_top: int = 2  # leading configs measured once more at the end (0: off)


@dataclass(frozen=True)
class TrialPoint:
    concurrency: int
    throughput_img_s: float
    p50_ms: float
    p99_ms: float
    mean_executed_batch: float
    errors: int


@dataclass(frozen=True)
class Trial:
    index: int
    serving: ServingConfig
    points: tuple[TrialPoint, ...]
    p99_limit_ms: float
    error: str | None = None
    confirms: int | None = None  # the index of the trial this one measures again

    @property
    def feasible_points(self) -> list[TrialPoint]:
        return [p for p in self.points if p.errors == 0 and p.p99_ms <= self.p99_limit_ms]

    @property
    def best_point(self) -> TrialPoint | None:
        """Highest throughput within the latency limit (None when no concurrency met it)."""
        points = self.feasible_points
        return max(points, key=lambda p: p.throughput_img_s) if points else None

    @property
    def score(self) -> float:
        best = self.best_point
        return best.throughput_img_s if best else 0.0

    @property
    def label(self) -> str:
        s = self.serving
        pref = ",".join(map(str, s.preferred_batch_sizes)) or "-"
        marks = [
            "gpu" if s.instance_kind == "gpu" else "",
            "deploylab_ort" if s.backend == "deploylab_ort" else "",
            s.engine if s.engine != "onnxruntime" else "",
            "pipelined" if s.pipeline else "",
        ]
        layout = " ".join([f"{s.instance_count}x{s.intra_op_threads}", *filter(None, marks)])
        return f"{layout} mb{s.max_batch_size} delay{s.max_queue_delay_us}us pref[{pref}]"

    @property
    def title(self) -> str:
        """The label, and which trial this one measures again."""
        return self.label + (f" (re-run of #{self.confirms})" if self.confirms is not None else "")

    def as_dict(self) -> dict[str, object]:
        best = self.best_point
        return {
            "index": self.index,
            "label": self.label,
            "serving": asdict(self.serving),
            "points": [asdict(p) for p in self.points],
            "feasible": best is not None,
            "best": asdict(best) if best else None,
            "score_img_s": self.score,
            "error": self.error,
            "confirms": self.confirms,
        }


@dataclass(frozen=True)
class TuneResult:
    model: str
    p99_limit_ms: float
    trials: tuple[Trial, ...]

    def measurements(self, serving: ServingConfig) -> list[Trial]:
        """Every trial of one config: the first and any re-measurement."""
        return [t for t in self.trials if t.serving == serving]

    def mean_score(self, serving: ServingConfig) -> float:
        """img/s within the limit, averaged over the config's measurements (a miss counts as 0)."""
        scores = [t.score for t in self.measurements(serving)]
        return sum(scores) / len(scores) if scores else 0.0

    @property
    def best(self) -> Trial | None:
        """The latest trial of the config with the best mean score (feasible in its best trial).

        When leaders were measured again, only they compete: a config measured once, and behind them
        at that, would otherwise win on the luck of its single number while theirs regress to the mean.
        """
        feasible = [t for t in self.trials if t.best_point is not None]
        confirmed = {t.confirms for t in self.trials if t.confirms is not None}
        finalists = [t for t in feasible if t.index in confirmed or t.confirms is not None] or feasible
        if not finalists:
            return None
        winner = max(finalists, key=lambda t: (self.mean_score(t.serving), t.score))
        return [t for t in self.measurements(winner.serving) if t.best_point is not None][-1]


TrialCallback = Callable[[Trial], None]


def tune(
    base_url: str,
    model: str,
    input_size: int,
    num_classes: int,
    options: TuneOptions,
    *,
    cores: int | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Run the search against the Triton at `base_url` (explicit model control) and return all trials.

    Leaves the server serving whatever the last trial loaded; the caller writes and loads the winner.
    """
    budget = cores or available_cores()
    space = options.space
    trials: list[Trial] = []

    def run(configs: Sequence[ServingConfig], confirms: Sequence[int | None] | None = None) -> None:
        for position, serving in enumerate(configs):
            if options.max_trials is not None and len(trials) >= options.max_trials:
                return
            if serving.max_batch_size < options.request_batch:
                continue
            trial = run_trial(base_url, model, input_size, num_classes, serving, options, len(trials) + 1)
            if confirms is not None:
                trial = replace(trial, confirms=confirms[position])
            trials.append(trial)
            if on_trial:
                on_trial(trial)

    if options.strategy == "grid":
        run(space.grid(budget))
    else:
        run(space.layout_phase(budget))
        leader = _leader(trials)
        if leader is not None:
            run(space.batching_phase(leader.serving))
    again = _to_confirm(trials, options.confirm_top)
    run([t.serving for t in again], [t.index for t in again])
    return TuneResult(model=model, p99_limit_ms=options.p99_ms, trials=tuple(trials))


def _to_confirm(trials: Sequence[Trial], top: int) -> list[Trial]:
    """The `top` best feasible configs (one trial each), worst first; none when fewer than two qualify:
    re-measuring matters only where an order is decided."""
    feasible = sorted((t for t in trials if t.best_point is not None), key=lambda t: t.score, reverse=True)
    configs = _unique([t.serving for t in feasible])[:top]
    leaders = [next(t for t in feasible if t.serving == config) for config in configs]
    return list(reversed(leaders)) if len(leaders) >= 2 else []


def _leader(trials: Sequence[Trial]) -> Trial | None:
    """The trial to build on: best feasible score, else (nothing met the limit) lowest batch-1 p99."""
    feasible = [t for t in trials if t.best_point is not None]
    if feasible:
        return max(feasible, key=lambda t: t.score)
    measured = [t for t in trials if t.points]
    return min(measured, key=lambda t: t.points[0].p99_ms) if measured else None


def run_trial(
    base_url: str,
    model: str,
    input_size: int,
    num_classes: int,
    serving: ServingConfig,
    options: TuneOptions,
    index: int,
) -> Trial:
    """Load `serving` into the running Triton, then sweep concurrency until the limit is passed."""
    config = build_model_config(model, input_size, num_classes, serving)
    try:
        load_model(base_url, model, config)
        _check_applied(model_config(base_url, model), serving)
    except RuntimeError as exc:
        return Trial(index, serving, (), options.p99_ms, error=str(exc)[:300])
    target = LoadTarget(
        options.transport,
        base_url,
        model,
        batch_size=options.request_batch,
        input_size=input_size,
        max_batch=serving.max_batch_size,
    )
    points: list[TrialPoint] = []
    for concurrency in options.concurrencies:
        before = model_statistics(base_url, model)
        result = run_load(target, concurrency, options.duration_s)
        delta = model_statistics(base_url, model) - before
        points.append(_point(result, delta.mean_executed_batch))
        # Past the limit, more concurrency only queues longer: stop the sweep (Model Analyzer does too).
        if result.errors or result.p99_ms > options.p99_ms:
            break
    return Trial(index, serving, tuple(points), options.p99_ms)


def _check_applied(served: dict[str, Any], serving: ServingConfig) -> None:
    """Refuse to measure a trial whose config Triton did not actually apply."""
    groups = served.get("instance_group") or [{}]
    parameters = served.get("parameters", {})
    applied = (
        served.get("backend"),
        int(served.get("max_batch_size", -1)),
        int(groups[0].get("count", -1)),
        parameters.get("intra_op_thread_count", {}).get("string_value"),
        parameters.get("pipeline", {}).get("string_value", "0") == "1",
        parameters.get("engine", {}).get("string_value", "onnxruntime"),
    )
    wanted = (
        serving.backend,
        serving.max_batch_size,
        serving.instance_count,
        str(serving.intra_op_threads),
        serving.pipeline,
        serving.extra_parameters.get("engine", serving.engine),
    )
    if applied != wanted:
        raise TritonAdminError(
            f"Triton serves (backend, max_batch, instances, threads, pipeline, engine) {applied}, "
            f"trial asked {wanted}"
        )


def _point(result: LoadResult, mean_batch: float) -> TrialPoint:
    p99 = result.p99_ms if not math.isnan(result.p99_ms) else float("inf")
    return TrialPoint(
        concurrency=result.concurrency,
        throughput_img_s=result.throughput_img_s,
        p50_ms=result.p50_ms,
        p99_ms=p99,
        mean_executed_batch=round(mean_batch, 2),
        errors=result.errors,
    )
