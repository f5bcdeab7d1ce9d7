"""Signal handling for long-running commands."""

from __future__ import annotations

import signal


def stop_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, once, so `finally` blocks stop child processes in order."""

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one shutdown at a time
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
