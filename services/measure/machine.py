"""Where a run was measured: CPU, cores, memory, GPUs and the versions of everything in the path.

Numbers mean nothing without the machine; every results file (sweep, bench) carries these facts, read
here and only here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import psutil
from deploylab.services.modelzoo.repository import available_cores
from deploylab.services.modelzoo.versions import library_versions

from .results import MachineInfo

#: Serving and load-test packages recorded beside the export stack's versions.
EXTRA_PACKAGES = ("locust", "fastapi", "uvicorn", "matplotlib", "pydantic", "prometheus-client")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The instruction-set extensions that decide how fast int8 and fp32 convolutions run on a CPU: without
#: VNNI, int8 gains little over fp32; with AMX, OpenVINO's int8 runs several times faster than AVX2.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_features() -> list[str]:
    """Which of CPU_FEATURES the CPU reports in /proc/cpuinfo (empty where it is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return [feature for feature in CPU_FEATURES if feature in flags]


def gpu_names() -> list[str]:
    """`name, memory` of each NVIDIA GPU nvidia-smi reports; empty on a CPU-only host."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        output = subprocess.run(  # noqa: S603 - fixed arguments
            [binary, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


def triton_version(triton_url: str | None) -> str | None:
    """The server version Triton reports at `GET /v2`, None when unreachable."""
    if not triton_url:
        return None
    try:
        with urllib.request.urlopen(f"{triton_url.rstrip('/')}/v2", timeout=3) as response:  # noqa: S310
            return str(json.loads(response.read()).get("version"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(
    triton_url: str | None = None, extra_packages: Sequence[str] = EXTRA_PACKAGES
) -> MachineInfo:
    """The machine and library versions: the export and serving stack's, `extra_packages`' and, when
    `triton_url` answers, Triton's."""
    libraries = dict(library_versions())
    for name in extra_packages:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = "absent"
    if (version := triton_version(triton_url)) is not None:
        libraries["tritonserver"] = version
    return MachineInfo(
        cpu_model=cpu_model(),
        cpu_features=cpu_features(),
        logical_cores=os.cpu_count() or 0,
        physical_cores=psutil.cpu_count(logical=False),
        usable_cores=available_cores(),
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
        gpus=gpu_names(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        libraries=libraries,
    )
