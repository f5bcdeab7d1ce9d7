"""Load shapes for the Locust CLI: a step ramp to find the knee, as data plus one `LoadTestShape`.

    locust -f loadtests/locustfile.py,loadtests/shapes.py --headless --host URL \\
        --ramp-users 1,2,4,8,16,32 --ramp-step-s 10 ClassifyUser

`deploylab loadtest` runs the same stages itself (loadtests/session.py): it must take exact snapshots at
every step boundary, which a shape's once-a-second `tick()` cannot promise. Constant users need no
shape (`-u N`); constant arrival rate is `OpenLoopUser` (loadtests/locustfile.py).
"""

from __future__ import annotations

from typing import Any

from deploylab.loadtests.stages import (
    DEFAULT_RAMP_USERS,
    DEFAULT_STEP_S,
    Stage,
    parse_users,
    stage_at,
    step_ramp_stages,
)
from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("deploylab shapes")
    group.add_argument("--ramp-users", default=",".join(map(str, DEFAULT_RAMP_USERS)), help="users per step")
    group.add_argument("--ramp-step-s", type=float, default=DEFAULT_STEP_S, help="seconds per step")


class StepRampShape(LoadTestShape):
    """Closed-loop users stepped up (1, 2, 4, … by default); the test ends after the last step."""

    def stages(self) -> list[Stage]:
        options = self.runner.environment.parsed_options if self.runner is not None else None
        users = parse_users(getattr(options, "ramp_users", "")) if options else list(DEFAULT_RAMP_USERS)
        step_s = float(getattr(options, "ramp_step_s", DEFAULT_STEP_S)) if options else DEFAULT_STEP_S
        return step_ramp_stages(users, step_s)

    def tick(self) -> tuple[int, float] | None:
        stage = stage_at(self.stages(), self.get_run_time())
        return None if stage is None else (stage.users, stage.spawn_rate)
