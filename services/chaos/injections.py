"""The faults a scenario injects into running processes, each marking when things happened.

An injection is called once, mid-load, by the scenario runner. It records marks (`fault_at`, and
whatever else its checks need to cut the load into windows: `ready_at`, `load_at`, `exit_at`) and
numbers (`exit_code`, `triton_replaced`, …) on the `Run`; the scenario's checks judge those. `require`
refuses a target that lacks what the injection needs, before any load starts.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Protocol

from .context import Run, Target
from .load import RequestTemplate


class Injection(Protocol):
    def require(self, target: Target) -> None:
        """Raise ValueError when `target` lacks what this injection needs."""
        ...

    async def __call__(self, run: Run) -> None: ...


@dataclass(frozen=True)
class KillTriton:
    """kill -9 tritonserver, then wait (up to `recovery_timeout_s`) until the supervisor's restart is ready.

    Marks `fault_at` and, once /readyz answers 200 again, `ready_at`; numbers `triton_replaced` (a new
    server process is ready) and `gateway_same_process` (the gateway process that saw the crash still
    serves: recovery in place, not by a restart).
    """

    recovery_timeout_s: float = 90.0

    def require(self, target: Target) -> None:
        stack = target.stack
        if stack is None or stack.triton is None or stack.supervisor is None or stack.triton.pid is None:
            raise ValueError("killing Triton needs a stack that started and supervises Triton")

    async def __call__(self, run: Run) -> None:
        stack = run.target.stack
        assert stack is not None and stack.triton is not None and stack.supervisor is not None
        triton, supervisor = stack.triton, stack.supervisor
        gateway_pid = run.target.pid
        killed_pid, restarts = triton.pid, supervisor.restarts
        run.mark("fault_at")
        os.kill(killed_pid, signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.recovery_timeout_s
        while time.monotonic() < deadline and "ready_at" not in run.marks:
            await asyncio.sleep(0.1)
            if supervisor.restarts > restarts and triton.alive():
                ready = await run.client.send(RequestTemplate("GET", "/readyz"))
                if ready.status == 200:
                    run.mark("ready_at")
        run.numbers["supervisor_restarts"] = float(supervisor.restarts)
        run.numbers["triton_replaced"] = float("ready_at" in run.marks and triton.pid != killed_pid)
        same = stack.gateway.alive() and run.target.pid == gateway_pid
        run.numbers["gateway_same_process"] = float(same)


@dataclass(frozen=True)
class UnloadModel:
    """Unload the target's model through the admin API, wait `outage_s`, load it back.

    Marks `fault_at` (unload sent), `load_at` (load sent) and `loaded_at` (load answered); numbers
    `unload_status` and `load_status` (0: no answer).
    """

    outage_s: float = 1.5

    def require(self, target: Target) -> None:
        if not target.admin_key:
            raise ValueError("unloading a model needs the gateway's admin key")

    async def __call__(self, run: Run) -> None:
        headers = {"X-API-Key": run.target.admin_key or ""}
        path = f"/admin/models/{run.target.model}"
        run.mark("fault_at")
        unload = await run.client.send(RequestTemplate("POST", f"{path}/unload", headers=headers))
        await asyncio.sleep(self.outage_s)
        run.mark("load_at")
        load = await run.client.send(RequestTemplate("POST", f"{path}/load", headers=headers))
        run.marks["loaded_at"] = load.finished_at
        run.numbers["unload_status"] = float(unload.status or 0)
        run.numbers["load_status"] = float(load.status or 0)


@dataclass(frozen=True)
class Sigterm:
    """SIGTERM to the gateway process, then wait for it to exit (the drain timeout and 10 s more).

    Marks `fault_at` and `exit_at`; number `exit_code` (NaN: still running at the deadline).
    """

    def require(self, target: Target) -> None:
        if target.gateway is None or target.gateway.process is None:
            raise ValueError("SIGTERM needs a started gateway")

    async def __call__(self, run: Run) -> None:
        assert run.target.gateway is not None and run.target.gateway.process is not None
        process = run.target.gateway.process
        drain_s = run.target.gateway.settings.drain_timeout_s
        run.mark("fault_at")
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + drain_s + 10
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        run.mark("exit_at")
        run.numbers["exit_code"] = math.nan if process.returncode is None else float(process.returncode)
