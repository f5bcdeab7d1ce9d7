"""Process bookkeeping for tests that start servers: nothing they start may outlive them.

Servers run in their own sessions (tritonserver with its Python-backend stubs, the gateway), so a
stub whose tritonserver was killed is re-parented away from the test process; leftovers are found
both as descendants and as members of the process groups the servers started.
"""

from __future__ import annotations

import contextlib
import os
import time

import psutil


def descendants() -> set[int]:
    """PIDs of every live process below this one (servers, their workers and stubs)."""
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True) if _alive(p)}


def groups_of(pids: set[int]) -> set[int]:
    """The process groups of `pids` (each server leads its own)."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found.add(os.getpgid(pid))
    return found - {os.getpgrp()}


def leftovers(
    before: set[int], groups: set[int] | frozenset[int] = frozenset(), timeout_s: float = 10.0
) -> list[str]:
    """Processes started since `before` (or in `groups`) still alive after `timeout_s`: name[pid]."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = descendants() - before
        for process in psutil.process_iter():
            with contextlib.suppress(OSError, psutil.Error):
                if os.getpgid(process.pid) in groups and _alive(process):
                    pids.add(process.pid)
        extra = []
        for pid in sorted(pids):
            with contextlib.suppress(psutil.Error):
                extra.append(f"{psutil.Process(pid).name()}[{pid}]")
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.2)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
