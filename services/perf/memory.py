"""Resident memory of a process and everything it started (Triton + its backend stubs, gateway + workers).

RSS double-counts pages shared between processes, so PSS (proportional set size, Linux) is reported
beside it when readable: the sum of PSS over a process tree is what the tree really costs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psutil


@dataclass(frozen=True)
class TreeMemory:
    processes: int
    rss_mib: float
    pss_mib: float | None  # None where the kernel does not expose it (non-Linux, no permission)
    largest_child_rss_mib: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def tree_memory(pid: int) -> TreeMemory:
    """RSS and PSS summed over `pid` and its descendants."""
    root = psutil.Process(pid)
    members = [root, *root.children(recursive=True)]
    rss = 0
    pss: int | None = 0
    largest_child = 0
    for process in members:
        try:
            info = process.memory_full_info() if pss is not None else process.memory_info()
        except psutil.AccessDenied:
            info = process.memory_info()
            pss = None
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        if pss is not None:
            pss += getattr(info, "pss", 0)
        if process.pid != pid:
            largest_child = max(largest_child, info.rss)
    mib = 1024 * 1024
    return TreeMemory(
        processes=len(members),
        rss_mib=round(rss / mib, 1),
        pss_mib=round(pss / mib, 1) if pss is not None else None,
        largest_child_rss_mib=round(largest_child / mib, 1),
    )
