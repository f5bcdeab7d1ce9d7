"""How a scenario loads the gateway: a closed loop around the injection, or open-loop overload.

The runner calls `prepare` once, then `drive` until the injection's timeline ends (`stop`): `before_s`
of steady load, the injection, `after_s` of load to watch recovery. An open loop ends by itself: its
arrivals are the fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from .context import Run, Stop
from .load import Outcome, closed_loop, open_loop


@dataclass(frozen=True)
class ClosedLoop:
    """`concurrency` clients back to back, honouring Retry-After (at most `max_backoff_s`)."""

    concurrency: int
    before_s: float = 2.0
    after_s: float = 2.0
    max_backoff_s: float = 1.0
    client_timeout_s: float = 30.0

    async def prepare(self, run: Run) -> None:
        return None

    async def drive(self, run: Run, stop: Stop) -> list[Outcome]:
        request, concurrency = run.target.request, self.concurrency
        return await closed_loop(
            run.client, request, concurrency=concurrency, stop=stop, max_backoff_s=self.max_backoff_s
        )


@dataclass(frozen=True)
class OpenLoop:
    """Arrivals at `factor` x capacity for `duration_s`, whatever happens to earlier requests.

    Capacity is the goodput of a closed loop of `capacity_concurrency` clients for `capacity_s`,
    measured just before on the same machine (numbers `capacity_rps`, `offered_rps`).
    """

    factor: float = 4.0
    duration_s: float = 8.0
    capacity_concurrency: int = 32  # at or past the knee of the default layout (2 x 2 instances x 8)
    capacity_s: float = 4.0
    warmup_requests: int = 20  # connections, caches
    before_s: float = 0.0
    after_s: float = 0.0
    client_timeout_s: float = 30.0

    async def prepare(self, run: Run) -> None:
        client, request = run.client, run.target.request
        for _ in range(self.warmup_requests):
            await client.send(request)
        end = client.now() + self.capacity_s
        measured = await closed_loop(
            client, request, concurrency=self.capacity_concurrency, stop=lambda: client.now() > end
        )
        capacity = sum(o.status == 200 for o in measured) / self.capacity_s
        run.numbers["capacity_rps"] = capacity
        run.numbers["offered_rps"] = max(self.factor * capacity, 1.0)

    async def drive(self, run: Run, stop: Stop) -> list[Outcome]:
        rate = run.numbers["offered_rps"]
        return await open_loop(run.client, run.target.request, rate_per_s=rate, duration_s=self.duration_s)


LoadPlan = ClosedLoop | OpenLoop
