"""Whether this host has an NVIDIA GPU that deploylab can serve on, and the instance kind `auto` means.

Detection is cheap and imports no engine: the GPUs come from the NVIDIA driver's files under
/proc (or `nvidia-smi -L` where a container hides them), and whether an engine can use CUDA from the
files its wheel ships (ONNX Runtime's CUDA execution provider library, torch's CUDA library), so
`deploylab export`, `serve` and `bench` can choose a kind without loading torch or ONNX Runtime.

`resolve_instance_kind("auto")` is "gpu" only where a GPU is visible *and* the installed ONNX Runtime
has its CUDA execution provider: that is what a model exported by `deploylab export` runs on (the
Python backend's default engine and the `deploylab_ort` backend). Everywhere else it is "cpu", and
the reason says why, in one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

InstanceKind = Literal["cpu", "gpu"]
#: The engine whose CUDA support decides `auto`.
Engine = Literal["onnxruntime", "torch"]
#: What `--kind` accepts: a kind, or `auto` (resolved by `resolve_instance_kind`).
KIND_CHOICES: tuple[str, ...] = ("auto", "cpu", "gpu")

NVIDIA_PROC = Path("/proc/driver/nvidia")
ORT_CUDA_LIBRARY = "libonnxruntime_providers_cuda.so"
TORCH_CUDA_LIBRARY = "libtorch_cuda.so"


@dataclass(frozen=True)
class GpuFacts:
    """What this host offers for GPU serving, read without importing an engine."""

    #: GPU names, in the driver's order ("NVIDIA H100 80GB HBM3"); empty without a driver or GPU.
    gpus: tuple[str, ...] = ()
    #: The value of CUDA_VISIBLE_DEVICES when it hides every GPU from this process ("" or "-1").
    hidden_by: str | None = None
    #: The installed onnxruntime ships its CUDA execution provider (the onnxruntime-gpu wheel).
    onnxruntime_cuda: bool = False
    onnxruntime_version: str | None = None
    #: The installed torch is a CUDA build (the torch engine can run on the GPU).
    torch_cuda: bool = False

    @property
    def visible(self) -> bool:
        """A GPU is there and CUDA_VISIBLE_DEVICES does not hide it."""
        return bool(self.gpus) and self.hidden_by is None

    @property
    def summary(self) -> str:
        """The GPUs in a few words: `NVIDIA H100 80GB HBM3` or `2 x NVIDIA A10`."""
        if not self.gpus:
            return "no NVIDIA GPU"
        names = sorted(set(self.gpus))
        if len(names) == 1:
            return names[0] if len(self.gpus) == 1 else f"{len(self.gpus)} x {names[0]}"
        return ", ".join(self.gpus)


def hides_every_gpu(value: str | None) -> bool:
    """Whether a CUDA_VISIBLE_DEVICES value leaves CUDA no device ("" or a list starting with -1)."""
    if value is None:
        return False
    first = value.strip().split(",")[0].strip()
    return first == "" or first.startswith("-")


def _gpus_from_proc(root: Path) -> list[str]:
    """GPU models from the driver's per-GPU `information` files, in bus order."""
    names = []
    for info in sorted((root / "gpus").glob("*/information")):
        with contextlib.suppress(OSError):
            for line in info.read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model" and value.strip():
                    names.append(value.strip())
                    break
    return names


def _gpus_from_nvidia_smi(run: Callable[..., subprocess.CompletedProcess[str]]) -> list[str]:
    """GPU names from `nvidia-smi -L` (`GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-…)`)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    names = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        head, sep, rest = line.partition(":")
        if sep and head.strip().startswith("GPU"):
            names.append(rest.split("(UUID")[0].strip())
    return names


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing it; None when absent."""
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.exists() else None


def _distribution_version(*names: str) -> str | None:
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    return None


def detect_gpu(
    environ: Mapping[str, str] | None = None,
    proc: Path = NVIDIA_PROC,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> GpuFacts:
    """This host's GPUs and which engines here can use CUDA (see `GpuFacts`); no engine is imported."""
    env = os.environ if environ is None else environ
    gpus = _gpus_from_proc(proc) if proc.is_dir() else []
    if not gpus:
        gpus = _gpus_from_nvidia_smi(run)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    return GpuFacts(
        gpus=tuple(gpus),
        hidden_by=visible if gpus and hides_every_gpu(visible) else None,
        onnxruntime_cuda=_package_file("onnxruntime", "capi", ORT_CUDA_LIBRARY) is not None,
        onnxruntime_version=_distribution_version("onnxruntime-gpu", "onnxruntime"),
        torch_cuda=_package_file("torch", "lib", TORCH_CUDA_LIBRARY) is not None,
    )


@cache
def host_gpu() -> GpuFacts:
    """`detect_gpu()` for this process, once (a command asks several times; the host does not change)."""
    return detect_gpu()


def resolve_instance_kind(
    requested: str, facts: GpuFacts | None = None, engine: Engine = "onnxruntime"
) -> tuple[InstanceKind, str]:
    """(kind, reason): `cpu` and `gpu` as asked, `auto` resolved on this host; ValueError for others.

    `auto` is `gpu` where a GPU is visible and `engine` (what the caller will run: ONNX Runtime for
    exported models, torch for the GPU check's served engine) can use CUDA. The reason is one line for
    the terminal; `kind_message` puts both together.
    """
    if requested not in KIND_CHOICES:
        raise ValueError(f"--kind must be one of {', '.join(KIND_CHOICES)}, got {requested!r}")
    if requested == "cpu":
        return "cpu", "as asked"
    facts = host_gpu() if facts is None else facts
    if requested == "gpu":
        if facts.visible:
            return "gpu", f"as asked; {facts.summary} here"
        return "gpu", "as asked; this host has no visible NVIDIA GPU, so serve these models on one that has"
    if not facts.gpus:
        return "cpu", "auto: no NVIDIA GPU found"
    if facts.hidden_by is not None:
        return "cpu", f"auto: {facts.summary} hidden by CUDA_VISIBLE_DEVICES={facts.hidden_by!r}"
    if engine == "torch":
        if not facts.torch_cuda:
            return "cpu", f"auto: {facts.summary} found, but torch here is not a CUDA build"
        return "gpu", f"auto: {facts.summary} with a CUDA build of torch"
    if not facts.onnxruntime_cuda:
        version = f" {facts.onnxruntime_version}" if facts.onnxruntime_version else ""
        return "cpu", (
            f"auto: {facts.summary} found, but onnxruntime{version} here has no CUDA execution provider "
            f"(install onnxruntime-gpu{version.replace(' ', '==')} for GPU instances)"
        )
    return "gpu", f"auto: {facts.summary} with ONNX Runtime's CUDA execution provider"


def kind_message(kind: str, reason: str) -> str:
    """The one line a command prints about the instance kind it uses."""
    return f"instance kind {kind} ({reason})"
