"""Child processes: ending their groups in order (a polite signal, a grace period, then nothing left
behind), and their logs in one line for an error message."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def stop_process_group(process: subprocess.Popen[Any] | None, grace_s: float) -> int | None:
    """SIGTERM the leader, wait `grace_s` for its own graceful exit, then SIGKILL the whole group.

    The group is killed even after a clean exit: children of the leader (Triton's Python-backend
    stubs, uvicorn's workers) must never outlive it. Returns the leader's exit code (None: not started).
    """
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def log_excerpt(path: Path, lines: int, keep: Callable[[str], bool] | None = None) -> str:
    """`log PATH: a | b | …`: the log's last `lines` lines (of those `keep` accepts, where it accepts
    any), each cut to 300 characters, for a one-line failure message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {path}"
    if keep is not None:
        text = [line for line in text if keep(line)] or text
    return f"log {path}: " + " | ".join(line.strip()[:300] for line in text[-lines:])
