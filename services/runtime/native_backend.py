"""Build `deploylab_ort`, deploylab's native Triton backend (`native/deploylab_ort.cc`), where Triton runs.

The backend is C++ against the ONNX Runtime library the onnxruntime wheel already ships, so it is
compiled on the host (a few seconds, once per source or runtime change) into the backend directory
that `deploylab.services.runtime.triton` prepares for the pip Triton. ONNX Runtime's execution
provider libraries are linked beside it, where ONNX Runtime looks for them: a model with
`execution_provider: cuda` or KIND_GPU instances needs the CUDA provider of the onnxruntime-gpu wheel.
A host without a C++ compiler still serves every Python-backend model; only models configured with
`backend: "deploylab_ort"` need it, and `TritonServer.start()` names the reason when they cannot be
served.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

logger = logging.getLogger("deploylab.triton")

BACKEND_NAME = "deploylab_ort"
LIBRARY = f"libtriton_{BACKEND_NAME}.so"
_SOURCES = ("deploylab_ort.cc", "cuda_runtime.h", "ort_api.h", "triton_api.h")
_ORT_SONAME = "libonnxruntime.so.1"  # what the library asks the loader for; the wheel names it .so.1.x.y
_STAMP = ".build-id"
_PROVIDERS = "libonnxruntime_providers_*.so"


class NativeBackendUnavailable(RuntimeError):
    """deploylab_ort cannot be built on this host; the message says what is missing."""


def _source_dir() -> Path:
    return Path(str(resources.files("deploylab.services.runtime").joinpath("native")))


def _package_dir(name: str) -> Path:
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise NativeBackendUnavailable(f"Python package {name!r} is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def _onnxruntime_library() -> Path:
    found = sorted((_package_dir("onnxruntime") / "capi").glob("libonnxruntime.so.*"))
    if not found:
        raise NativeBackendUnavailable("the onnxruntime wheel has no libonnxruntime.so")
    return found[-1]


def _compiler() -> str:
    wanted = os.environ.get("CXX")
    if wanted:
        found = shutil.which(wanted)
        if not found:
            raise NativeBackendUnavailable(f"CXX={wanted} is not an executable C++ compiler")
        return found
    found = shutil.which("g++") or shutil.which("c++")
    if not found:
        raise NativeBackendUnavailable("no C++ compiler (install g++, e.g. apt-get install g++, or set CXX)")
    return found


def build_command(compiler: str, library: Path, output: Path) -> list[str]:
    """The compile-and-link line: C++17, only Triton's entry points exported, ONNX Runtime found beside it."""
    include = _package_dir("nlohmann_json") / "include"
    return [
        compiler,
        "-std=c++17",
        "-O2",
        "-fPIC",
        "-shared",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        f"-I{include}",
        str(_source_dir() / "deploylab_ort.cc"),
        "-o",
        str(output),
        f"-L{library.parent}",
        f"-l:{library.name}",
        "-Wl,-rpath,$ORIGIN",  # libonnxruntime.so.1 is linked next to the backend
        "-ldl",  # the CUDA runtime is opened when a GPU input arrives (in libc itself from glibc 2.34)
    ]


def _build_id(compiler: str, library: Path) -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_source_dir() / name).read_bytes())
    digest.update(f"{compiler}\0{library}\0{library.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def install(backend_dir: Path) -> Path:
    """`<backend_dir>/deploylab_ort/`, built when missing or stale; raises NativeBackendUnavailable."""
    compiler = _compiler()
    library = _onnxruntime_library()
    target = backend_dir / BACKEND_NAME
    target.mkdir(parents=True, exist_ok=True)
    build_id = _build_id(compiler, library)
    stamp = target / _STAMP
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two servers starting at once build it once
        _link_providers(library, target)
        if (target / LIBRARY).is_file() and stamp.is_file() and stamp.read_text() == build_id:
            return target
        logger.info("building the %s Triton backend (once per source change) …", BACKEND_NAME)
        partial = target / f".{LIBRARY}.tmp"
        command = build_command(compiler, library, partial)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = " | ".join(result.stderr.strip().splitlines()[-6:])
            raise NativeBackendUnavailable(f"compiling {BACKEND_NAME} failed: {tail}")
        _link(target / _ORT_SONAME, library)
        partial.replace(target / LIBRARY)
        stamp.write_text(build_id)
    return target


def _link(link: Path, source: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(source)


def _link_providers(library: Path, target: Path) -> None:
    """ONNX Runtime's provider libraries beside the backend, as in the wheel beside libonnxruntime.

    ONNX Runtime loads them from the directory of the libonnxruntime it runs from, which for the
    backend is `target` (the link named `_ORT_SONAME`); links of a provider the wheel lacks are removed.
    """
    wanted = {p.name: p for p in library.parent.glob(_PROVIDERS)}
    for stale in target.glob(_PROVIDERS):
        if stale.name not in wanted:
            stale.unlink()
    for name, source in wanted.items():
        link = target / name
        if not (link.is_symlink() and link.resolve() == source.resolve()):
            _link(link, source)
