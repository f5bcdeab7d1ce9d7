"""POSIX shared-memory objects (/dev/shm) named after the process that owns them, and their cleanup.

Both the gateway's tensor regions and the Python backend's regions of a Triton started here are
named `<prefix>_<owner pid>_…`. Whatever a killed process (kill -9, OOM) leaves behind is removed by
the next one that starts: /dev/shm is memory, and a crashed Python-backend Triton leaves 16 MiB per
model instance there, for good.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

SHM_DIR = Path("/dev/shm")


def remove_orphans(prefix: str) -> list[str]:
    """Unlink `<prefix>_<pid>_*` objects whose owner `pid` is no longer alive."""
    owned = re.compile(rf"^{re.escape(prefix)}_(\d+)_")
    removed = []
    with contextlib.suppress(OSError):
        for path in SHM_DIR.iterdir():
            match = owned.match(path.name)
            if match is None or alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path.name)
    return removed


def remove_with_prefix(prefix: str) -> list[str]:
    """Unlink every object whose name starts with `prefix` (its owner is known to be gone)."""
    removed = []
    with contextlib.suppress(OSError):
        for path in SHM_DIR.iterdir():
            if path.name.startswith(prefix):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
    return removed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
