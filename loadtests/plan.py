"""What a sweep measures: profiles as data, expanded into one session plan per model.

A profile lists point templates (path × loop × load) plus the windows; `plan_session` turns a
template list into concrete points for one model. The budgets in the profile docstrings are for the
default model set on 2 CPU cores, export and start-up included.
"""

from __future__ import annotations

from typing import Literal

from deploylab.services.measure.results import ApiKind, Loop, TargetKind
from pydantic import BaseModel, Field, model_validator


class PointTemplate(BaseModel):
    """One kind of point: which path, which loop, which load."""

    target: TargetKind
    api: ApiKind
    loop: Loop
    users: list[int] = Field(min_length=1)  # closed: [n]; ramp: the steps; open: arrival generators
    rate_fraction: float | None = Field(None, gt=0, le=2)  # open: of the best closed-loop rate, same path
    arrival_rate: float | None = Field(None, gt=0)  # open: absolute rate (overrides the fraction)

    @model_validator(mode="after")
    def _consistent(self) -> PointTemplate:
        if self.loop == "closed" and len(self.users) != 1:
            raise ValueError("a closed-loop point has exactly one user count")
        if self.loop == "open" and self.rate_fraction is None and self.arrival_rate is None:
            raise ValueError("an open-loop point needs rate_fraction or arrival_rate")
        if self.target == "triton" and self.api != "v2":
            raise ValueError("Triton speaks v2 only: target 'triton' needs api 'v2'")
        return self

    def point_id(self, model: str, variant: str) -> str:
        if self.loop == "closed":
            load = f"u{self.users[0]}"
        elif self.loop == "ramp":
            load = "u" + "-".join(map(str, self.users))
        elif self.arrival_rate is not None:
            load = f"rate{self.arrival_rate:g}"
        else:
            load = f"rate{self.rate_fraction:g}x"
        return f"{model}:{variant}/{self.target}-{self.api}/{self.loop}-{load}"


class PointPlan(PointTemplate):
    id: str
    warmup_s: float = Field(ge=0)
    window_s: float = Field(gt=0)  # ramp: per step


class Endpoints(BaseModel):
    """Where the servers are; `gateway_url` None sweeps Triton only.

    `serving_pids`: the root processes of a stack the sweep started, by role (`triton`, `gateway`), whose
    trees' CPU and memory each point records; empty for servers started elsewhere.
    """

    triton_url: str
    triton_metrics_url: str
    gateway_url: str | None = None
    serving_pids: dict[str, int] = Field(default_factory=dict)

    @property
    def gateway_metrics_url(self) -> str | None:
        return f"{self.gateway_url.rstrip('/')}/metrics" if self.gateway_url else None

    def host_for(self, target: TargetKind) -> str:
        if target == "gateway":
            if self.gateway_url is None:
                raise ValueError("this point goes through the gateway, but no gateway URL was given")
            return self.gateway_url
        return self.triton_url


class SessionPlan(BaseModel):
    """Everything one Locust session (one model) needs; serialized to the session subprocess."""

    model: str
    variant: str
    triton_model: str
    endpoints: Endpoints
    points: list[PointPlan]
    workers: int = Field(0, ge=0, description="Locust worker processes; 0 runs one local process")
    stop_timeout_s: float = Field(10.0, gt=0)
    images: int = Field(4, ge=1)
    top_k: int = Field(5, ge=1)
    max_outstanding: int = Field(64, ge=1)
    seed: int = 0


class Profile(BaseModel):
    """A named sweep: the templates every model gets, the windows, the in-process baseline budget."""

    name: str
    description: str
    templates: list[PointTemplate]
    warmup_s: float
    window_s: float
    ramp_step_s: float
    inprocess_batch_sizes: list[int]
    inprocess_engines: list[Literal["onnxruntime", "torch"]]
    inprocess_duration_s: float
    inprocess_threads: int = 2
    paired_rounds: int = Field(0, ge=0, description="interleaved rounds per claim pair (0: none)")
    paired_duration_s: float = Field(1.0, gt=0)


def _closed(target: TargetKind, api: ApiKind, users: int) -> PointTemplate:
    return PointTemplate(target=target, api=api, loop="closed", users=[users])


def _open(target: TargetKind, api: ApiKind, fraction: float) -> PointTemplate:
    return PointTemplate(target=target, api=api, loop="open", users=[1], rate_fraction=fraction)


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="full",
            description="gateway classify at 1/4/16 users, gateway v2 at 1, Triton v2 at 1/16, a 1→32 ramp, "
            "open loop at 50% and 90% of the peak (~15 min for the default set on 2 cores)",
            templates=[
                _closed("gateway", "classify", 1),
                _closed("gateway", "classify", 4),
                _closed("gateway", "classify", 16),
                _closed("gateway", "v2", 1),
                _closed("triton", "v2", 1),
                _closed("triton", "v2", 16),
                PointTemplate(target="gateway", api="classify", loop="ramp", users=[1, 2, 4, 8, 16, 32]),
                _open("gateway", "classify", 0.5),
                _open("gateway", "classify", 0.9),
            ],
            warmup_s=1.5,
            window_s=6.0,
            ramp_step_s=3.0,
            inprocess_batch_sizes=[1, 8],
            inprocess_engines=["onnxruntime", "torch"],
            inprocess_duration_s=1.5,
            paired_rounds=3,
            paired_duration_s=0.7,
        ),
        Profile(
            name="quick",
            description="gateway at 1 and 8 users, Triton-direct at 8, one open-loop point, short windows "
            "(~5 min for the default comparison on 2 cores)",
            templates=[
                _closed("gateway", "classify", 1),
                _closed("gateway", "classify", 8),
                _closed("triton", "v2", 8),
                _open("gateway", "classify", 0.7),
            ],
            warmup_s=1.0,
            window_s=2.5,
            ramp_step_s=2.0,
            inprocess_batch_sizes=[1],
            inprocess_engines=["onnxruntime", "torch"],
            inprocess_duration_s=0.7,
            paired_rounds=1,
            paired_duration_s=0.5,
        ),
        Profile(
            name="smoke",
            description="one point of every kind with 2-second windows: checks a setup end to end in "
            "well under a minute per model (the tests use it); its numbers are too short to trust",
            templates=[
                _closed("gateway", "classify", 2),
                _closed("triton", "v2", 2),
                PointTemplate(target="gateway", api="classify", loop="ramp", users=[1, 2]),
                _open("gateway", "classify", 0.5),
            ],
            warmup_s=0.5,
            window_s=2.0,
            ramp_step_s=1.5,
            inprocess_batch_sizes=[1],
            inprocess_engines=["onnxruntime", "torch"],
            inprocess_duration_s=0.5,
        ),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}") from None


def plan_points(profile: Profile, model: str, variant: str, with_gateway: bool = True) -> list[PointPlan]:
    """The profile's points for one model, in run order (closed loop first: open loop rates need it)."""
    order = {"closed": 0, "ramp": 1, "open": 2}
    templates = sorted(profile.templates, key=lambda t: order[t.loop])
    points = []
    for template in templates:
        if template.target == "gateway" and not with_gateway:
            continue
        window = profile.ramp_step_s if template.loop == "ramp" else profile.window_s
        points.append(
            PointPlan(
                **template.model_dump(),
                id=template.point_id(model, variant),
                warmup_s=profile.warmup_s,
                window_s=window,
            )
        )
    return points


def estimated_seconds(points: list[PointPlan], per_point_overhead_s: float = 1.5) -> float:
    """Wall time of a session's points (warm-ups, windows, ramp steps, stop/start overhead)."""
    total = 0.0
    for point in points:
        steps = len(point.users) if point.loop == "ramp" else 1
        total += point.warmup_s + steps * point.window_s + per_point_overhead_s
    return total
