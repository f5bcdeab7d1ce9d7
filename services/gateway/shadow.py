"""Shadow traffic: send a copy of a request to a second model after the primary has answered.

The primary never waits for, or fails because of, its shadow: shadows start only once the primary
response exists, run as detached tasks, are dropped (and counted) rather than queued when too many
are in flight, and their errors are recorded, never raised. What they measure is top-1 agreement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from .errors import GatewayError
from .metrics import SHADOW_REQUESTS
from .routing import Target

log = logging.getLogger("deploylab.gateway.shadow")

ShadowCall = Callable[[], Awaitable[np.ndarray]]


class ShadowRunner:
    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, primary: Target, shadow: Target, primary_top1: np.ndarray, call: ShadowCall) -> None:
        """Start `call()` in the background; compare its top-1 with the primary's when it returns."""
        counter = SHADOW_REQUESTS.labels(primary.model, shadow.model, "dropped")
        if len(self._tasks) >= self.max_in_flight:
            counter.inc()
            return
        task = asyncio.get_running_loop().create_task(self._run(primary, shadow, primary_top1, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, primary: Target, shadow: Target, primary_top1: np.ndarray, call: ShadowCall) -> None:
        try:
            logits = await call()
            agree = bool(np.array_equal(np.argmax(logits, axis=1), primary_top1))
            outcome = "agree" if agree else "disagree"
        except GatewayError as exc:
            log.info("shadow %s failed: %s", shadow.triton_model, exc.message)
            outcome = "error"
        except Exception:  # a shadow must never take anything down with it
            log.exception("shadow %s crashed", shadow.triton_model)
            outcome = "error"
        SHADOW_REQUESTS.labels(primary.model, shadow.model, outcome).inc()

    async def drain(self, timeout_s: float) -> None:
        """Let running shadows finish (bounded) at shutdown, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
