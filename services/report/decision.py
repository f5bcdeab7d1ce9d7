"""The decision: every measured deployment ranked by what it costs to meet the objective.

A deployment is one served model (catalog model × variant × precision × engine) in its serving layout.
Its capacity is the highest rate one replica (the stack the sweep measured, on this machine) held with
the client path's p99 within the SLO and at most 1 % failures, over every closed-loop, ramp-step and
open-loop point of that path. From capacity follow the replicas the target rate needs; from the serving
processes' CPU and memory at that point follow the cost per 1,000 requests. Ranking: deployments that
meet the SLO first, then fewest replicas, then least CPU per request, then the highest fidelity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .analysis import SERVED_PATHS
from .results import ModelFacts, Objective, PointResult, RunResults, ServingCost

#: A point whose failures exceed this share of its requests does not "hold" its rate.
MAX_FAILURE_SHARE = 0.01


@dataclass(frozen=True)
class Deployment:
    """One served model and its serving layout, as the export recorded them."""

    triton_model: str
    model: str
    variant: str
    precision: str
    engine: str
    layout: str
    instance_kind: str  # cpu or gpu: which cluster overlay serves it
    fidelity: float | None  # top-1 agreement with the fp32 form (None: the fp32 form itself)


@dataclass(frozen=True)
class Ranked:
    deployment: Deployment
    path: str  # the client path the capacity is measured on, e.g. "gateway classify"
    capacity: PointResult | None  # the highest-rate point within the SLO; None: never within it
    replicas: int | None
    lowest_p99_ms: float | None  # the best p99 seen on the path, for deployments that never meet the SLO

    @property
    def meets(self) -> bool:
        return self.capacity is not None

    @property
    def rate(self) -> float | None:
        return self.capacity.throughput_rps if self.capacity else None

    @property
    def cost(self) -> ServingCost | None:
        """What the serving processes spent at the capacity point (None: not measured)."""
        return self.capacity.cost if self.capacity else None

    @property
    def cpu_s_per_1k(self) -> float | None:
        return self.cost.cpu_s_per_1k if self.cost else None

    @property
    def memory_mib(self) -> float | None:
        return self.cost.memory_mib if self.cost else None

    @property
    def gpu_memory_mib(self) -> float | None:
        """GPU memory one replica holds at its capacity (None: no GPU in use, or not measured)."""
        return self.cost.gpu_memory_mib if self.cost else None

    @property
    def cores(self) -> float | None:
        return self.cost.cores if self.cost else None

    @property
    def gib_s_per_1k(self) -> float | None:
        """Memory held for the time one replica takes to serve 1,000 requests at its capacity."""
        if self.memory_mib is None or not self.rate:
            return None
        return self.memory_mib / 1024 * 1000 / self.rate


@dataclass(frozen=True)
class Decision:
    objective: Objective
    ranked: list[Ranked]

    @property
    def chosen(self) -> Ranked | None:
        return self.ranked[0] if self.ranked and self.ranked[0].meets else None

    @property
    def chosen_at_full_fidelity(self) -> Ranked | None:
        """The cheapest deployment that meets the SLO with no precision loss."""
        return next((r for r in self.ranked if r.meets and r.deployment.fidelity is None), None)


def layout_of(facts: ModelFacts) -> str:
    """The serving layout in a few words: backend, instances × threads, batching."""
    serving = facts.serving
    backend = serving.get("backend", "python")
    instances = serving.get("instance_count", 1)
    threads = serving.get("intra_op_threads", 0) or "auto"
    kind = serving.get("instance_kind", "cpu")
    batch = serving.get("max_batch_size", 0)
    batching = f"batch ≤ {batch}" if batch else "no batching"
    pipelined = ", pipelined" if serving.get("pipeline") else ""
    return f"{backend}, {instances} {kind} instance(s) × {threads} thread(s){pipelined}, {batching}"


def deployment_of(facts: ModelFacts) -> Deployment:
    return Deployment(
        triton_model=facts.triton_model,
        model=facts.model,
        variant=facts.variant,
        precision=facts.precision,
        engine=facts.engine,
        layout=layout_of(facts),
        instance_kind=str(facts.serving.get("instance_kind", "cpu")),
        fidelity=facts.fidelity_top1_agreement if facts.precision != "fp32" else None,
    )


def path_points(results: RunResults, triton_model: str, target: str, api: str) -> list[PointResult]:
    """Every point of one path: closed loop, open loop and each ramp step."""
    points = [p for p in results.points if p.triton_model == triton_model]
    points += [s for r in results.ramps if r.triton_model == triton_model for s in r.steps]
    return [p for p in points if p.target == target and p.api == api]


def within_slo(point: PointResult, slo_p99_ms: float) -> bool:
    p99 = point.latency_ms.p99
    held = point.requests > 0 and point.failures <= MAX_FAILURE_SHARE * point.requests
    return held and p99 is not None and p99 <= slo_p99_ms and point.throughput_rps > 0


def rank_one(results: RunResults, facts: ModelFacts, objective: Objective) -> Ranked:
    deployment = deployment_of(facts)
    for target, api in SERVED_PATHS:  # the path real clients take, when the run measured it
        points = path_points(results, facts.triton_model, target, api)
        if points:
            break
    else:
        return Ranked(deployment, "–", None, None, None)
    held = [p for p in points if within_slo(p, objective.slo_p99_ms)]
    best = max(held, key=lambda p: p.throughput_rps, default=None)
    p99s = [p.latency_ms.p99 for p in points if p.latency_ms.p99 is not None]
    replicas = math.ceil(objective.target_rps / best.throughput_rps) if best else None
    return Ranked(deployment, f"{target} {api}", best, replicas, min(p99s, default=None))


def decide(results: RunResults, objective: Objective | None = None) -> Decision:
    """Rank every deployment of the run against `objective` (default: the run's own)."""
    goal = objective or results.objective
    ranked = [rank_one(results, facts, goal) for facts in results.models]

    def order(item: Ranked) -> tuple[float, ...]:
        inf = math.inf
        return (
            0 if item.meets else 1,
            item.replicas if item.replicas is not None else inf,
            item.cpu_s_per_1k if item.cpu_s_per_1k is not None else inf,
            -(item.deployment.fidelity if item.deployment.fidelity is not None else 1.0),
            item.lowest_p99_ms if item.lowest_p99_ms is not None else inf,
        )

    return Decision(goal, sorted(ranked, key=order))
