"""What the serving processes cost: CPU seconds and memory of a process and everything it started.

Triton runs each Python-backend instance in a stub process and the gateway may fork workers, so the
cost of serving is a property of process trees, not of one PID. CPU is read as user + system seconds
summed over the tree at two instants; a window's CPU is the difference. RSS double-counts pages shared
between processes, so PSS (proportional set size, Linux) is reported beside it when readable: the sum
of PSS over a tree is what the tree really costs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import psutil

from .gpu_memory import GpuMemory

MIB = 1024 * 1024


@dataclass(frozen=True)
class TreeMemory:
    processes: int
    rss_mib: float
    pss_mib: float | None  # None where the kernel does not expose it (non-Linux, no permission)
    largest_child_rss_mib: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _members(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_memory(pid: int) -> TreeMemory:
    """RSS and PSS summed over `pid` and its descendants."""
    members = _members(pid)
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
    return TreeMemory(
        processes=len(members),
        rss_mib=round(rss / MIB, 1),
        pss_mib=round(pss / MIB, 1) if pss is not None else None,
        largest_child_rss_mib=round(largest_child / MIB, 1),
    )


#: Triton runs each Python-backend model instance in a process of this name (the pip wheel's adds
#: `.bin`), with the model's path in its arguments.
PYTHON_STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class TreeSample:
    """CPU seconds and memory of some process trees at one instant."""

    cpu_s: float  # user + system seconds, summed over every live member
    memory_mib: float  # PSS where readable, else RSS; other models' backend stubs left out
    processes: int
    #: GPU memory its members hold, stubs left out as for `memory_mib`; None: no GPU reading, or no
    #: member listed in it
    gpu_memory_mib: float | None = None


def sample_trees(
    roots: Mapping[str, int], model: str | None = None, gpu: GpuMemory | None = None
) -> dict[str, TreeSample] | None:
    """One sample per named tree (e.g. triton, gateway); None when a root is gone (a restarted server).

    CPU counts every member. Memory (host, and GPU from the reading `gpu`) leaves out the backend stubs
    of models other than `model`, so one Triton serving several models charges each only its own
    instances (a native backend's models all live in Triton's own process and are charged together).
    """
    samples = {}
    for role, pid in roots.items():
        try:
            members = _members(pid)
        except psutil.NoSuchProcess:
            return None
        cpu = memory = 0.0
        count = 0
        charged = []
        for process in members:
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
                count += 1
                if model is None or _serves(process, model):
                    memory += _proportional_bytes(process)
                    charged.append(process.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        held = gpu.held_by(charged) if gpu is not None else None
        samples[role] = TreeSample(
            cpu_s=cpu,
            memory_mib=memory / MIB,
            processes=count,
            gpu_memory_mib=held / MIB if held is not None else None,
        )
    return samples


def _serves(process: psutil.Process, model: str) -> bool:
    """False only for another model's Python-backend stub."""
    args = process.cmdline()
    if not args or not os.path.basename(args[0]).startswith(PYTHON_STUB):
        return True
    return any(f"/{model}/" in arg for arg in args)


def _proportional_bytes(process: psutil.Process) -> float:
    try:
        return float(getattr(process.memory_full_info(), "pss", 0) or process.memory_info().rss)
    except psutil.AccessDenied:
        return float(process.memory_info().rss)
