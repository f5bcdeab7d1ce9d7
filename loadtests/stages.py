"""Load stages as data: a step ramp is a list of (until, users) stages; no Locust import here.

Kept apart from loadtests/shapes.py so planning code and tests can use them without importing Locust
(which monkey-patches the standard library for gevent on import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RAMP_USERS = (1, 2, 4, 8, 16, 32)
DEFAULT_STEP_S = 10.0


@dataclass(frozen=True)
class Stage:
    """Run `users` users until `until_s` seconds into the test (spawned at `spawn_rate` per second)."""

    until_s: float
    users: int
    spawn_rate: float


def step_ramp_stages(users: Sequence[int], step_s: float) -> list[Stage]:
    """Consecutive stages of `step_s` seconds each, one per user count; users start almost at once."""
    if not users or any(u < 1 for u in users):
        raise ValueError("a ramp needs at least one step, every step with >= 1 user")
    if step_s <= 0:
        raise ValueError("step_s must be > 0")
    return [Stage(step_s * (i + 1), n, max(100.0, 20.0 * n)) for i, n in enumerate(users)]


def stage_at(stages: Sequence[Stage], run_time_s: float) -> Stage | None:
    """The stage in force at `run_time_s`, or None when the stages are over."""
    return next((stage for stage in stages if run_time_s < stage.until_s), None)


def parse_users(text: str) -> list[int]:
    """`"1,2,4"` → `[1, 2, 4]`; a clear error for anything else."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--ramp-users must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError("--ramp-users is empty")
    return values
