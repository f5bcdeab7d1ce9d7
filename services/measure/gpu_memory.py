"""GPU memory the serving processes hold, read from the NVIDIA driver (NVML), per process and per device.

A GPU replica's memory is mostly on the device (CUDA context, weights, the engine's workspaces), and
host RSS does not show it. NVML lists every process with a compute context and the bytes it holds;
the measurement charges a process tree the bytes of its members, as the host memory is charged.
Inside a container NVML may report the host's PIDs, which match no member: the serving cost then
falls back to the devices' used memory (`GpuMemory.device_used`), and says so (its scope "devices").

On a host without the driver NVML does not load and every reading is None: nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuMemory:
    """One NVML reading over every GPU of the host."""

    #: Bytes of GPU memory each process holds, summed over the GPUs it uses.
    by_pid: dict[int, int] = field(default_factory=dict)
    #: Bytes in use on all GPUs (every process, the driver's own reservations included).
    device_used: int = 0
    #: Bytes all GPUs have.
    device_total: int = 0

    def held_by(self, pids: Iterable[int]) -> int | None:
        """Bytes held by these processes; None when none of them is listed (no GPU context, or
        NVML reports PIDs of another namespace)."""
        held = [self.by_pid[pid] for pid in pids if pid in self.by_pid]
        return sum(held) if held else None

    def foreign_pids(self) -> bool:
        """Whether NVML lists a process this namespace does not have: its PIDs are the host's."""
        return any(not psutil.pid_exists(pid) for pid in self.by_pid)


def read_gpu_memory() -> GpuMemory | None:
    """The GPUs' memory now; None where NVML cannot be used (no NVIDIA driver, no GPU)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        by_pid: dict[int, int] = {}
        used = total = 0
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            used, total = used + int(info.used), total + int(info.total)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                # usedGpuMemory is None where the driver cannot attribute memory (some MIG/vGPU setups)
                by_pid[process.pid] = by_pid.get(process.pid, 0) + int(process.usedGpuMemory or 0)
        return GpuMemory(by_pid=by_pid, device_used=used, device_total=total)
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()
