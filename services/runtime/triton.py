"""Find, start, wait for and stop a real `tritonserver`.

Without Docker, the server comes from the `nvidia-pytriton` wheel: it ships the `tritonserver` binary,
its bundled libraries and the Python backend, but the backend's stub for *our* Python version must be
copied next to `libtriton_python.so` in a backend directory we prepare. On a host with a regular
Triton install (`/opt/tritonserver`), that install is used as is; a caller with its own unpacked
server (the GPU check's bundle) hands over a `TritonInstall` instead.

Starting a server needs only the standard library: `TritonOptions` carries `RuntimeSettings`' launch
fields for a host that has no settings library, such as the bare GPU host the GPU check runs on.

On a host with a visible GPU the wheel's server must not see it while it serves Python-backend models;
`gpu_plan` decides how each start serves the chosen models there (GPU-blind, configs rewritten, the
GPU handed back to the backend's stubs) or why it cannot, and `start()` applies that plan.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from deploylab.services.common.allocator import child_environment
from deploylab.services.common.errors import TritonError
from deploylab.services.common.shm_regions import SHM_DIR, remove_orphans, remove_with_prefix

from . import devices, native_backend
from .addresses import TritonUrls
from .gpu_plan import ALL_GPUS, STUB_GPUS_ENV, GpuPlan, model_configs, plan_gpu_serving, write_repository_view
from .processes import log_excerpt, stop_process_group

if TYPE_CHECKING:
    from .settings import RuntimeSettings

logger = logging.getLogger("deploylab.triton")

_STUB = "triton_python_backend_stub"
#: The stub binary itself; `_STUB` is a wrapper script that sets the stub's GPUs and execs it.
_STUB_BINARY = f"{_STUB}.bin"
#: Where a GPU-blind server's repository view lives under the state directory (one per HTTP port).
_VIEW_DIR = "gpu-blind-repository"
#: Python-backend regions of a Triton started here: `<this>_<launcher pid>_<http port>_…`.
PYTHON_SHM_PREFIX = "deploylab_triton"
_PY_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


@dataclass(frozen=True)
class TritonInstall:
    """A runnable tritonserver: the binary, a backend directory, and the environment it needs."""

    binary: Path
    backend_dir: Path
    env: dict[str, str]
    #: Backends deploylab builds that this install lacks, with the reason (shown when a model needs one).
    unavailable: dict[str, str] = field(default_factory=dict)
    #: Its Python backend answers empty outputs while tritonserver sees a GPU (the nvidia-pytriton
    #: wheel's does), so on a GPU host it serves Python-backend models GPU-blind (`gpu_plan`).
    python_blind_on_gpu: bool = False


@dataclass(frozen=True)
class TritonOptions(TritonUrls):
    """`RuntimeSettings`' launch fields as a plain dataclass, under the same names.

    `TritonServer` reads either; this one needs no settings library, so a host with only the standard
    library and numpy (the GPU check's) can start a server with the same code as everything else.
    """

    model_repository: Path
    state_dir: Path = Path(".deploylab")
    triton_binary: Path | None = None
    triton_host: str = "127.0.0.1"
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_model_control: str = "explicit"
    triton_startup_timeout_s: float = 180.0
    triton_exit_timeout_s: int = 10
    triton_log_verbose: int = 0
    triton_python_shm_mb: int = 16


def _pytriton_root() -> Path | None:
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate_triton(settings: RuntimeSettings | TritonOptions) -> TritonInstall:
    """The tritonserver to run, with a prepared Python backend; TritonError says how to get one."""
    if settings.triton_binary is not None:
        binary = settings.triton_binary
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise TritonError(f"tritonserver not found or not executable: {binary}")
        root = pytriton_layout_root(binary)
        if root is not None:
            return _pytriton_install(root, settings)
        return _system_install(binary)
    bundled = _pytriton_root()
    if bundled is not None and (bundled / "tritonserver" / "bin" / "tritonserver").is_file():
        return _pytriton_install(bundled, settings)
    found = shutil.which("tritonserver")
    if found:
        return _system_install(Path(found))
    raise TritonError(
        "tritonserver not found: install the project (pip install -e . brings nvidia-pytriton, which "
        "ships it), set DEPLOYLAB_TRITON_BINARY, or point the gateway at a running Triton with --triton-url"
    )


def pytriton_layout_root(binary: Path) -> Path | None:
    """`<root>` when `binary` is `<root>/tritonserver/bin/tritonserver` with the wheel's Python-backend
    stubs beside it: the installed nvidia-pytriton package, or an unpacked copy of it (the GPU check's
    bundle); None for any other server."""
    server_root = binary.resolve().parent.parent
    if server_root.name != "tritonserver" or not (server_root / "python_backend_stubs").is_dir():
        return None
    return server_root.parent


def _system_install(binary: Path) -> TritonInstall:
    # /opt/tritonserver/bin/tritonserver → /opt/tritonserver/backends
    backend_dir = binary.resolve().parent.parent / "backends"
    unavailable = {
        native_backend.BACKEND_NAME: f"it is built only for the nvidia-pytriton server, not for {binary}"
    }
    return TritonInstall(binary, backend_dir, child_environment(dict(os.environ)), unavailable)


def _pytriton_install(root: Path, settings: RuntimeSettings | TritonOptions) -> TritonInstall:
    server_root = root / "tritonserver"
    binary = server_root / "bin" / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_root / "python_backend_stubs" / version / _STUB
    if not stub.is_file():
        raise TritonError(
            f"the nvidia-pytriton wheel has no Python backend stub for Python {version} ({stub})"
        )
    backend_dir = (settings.state_dir / "backends").resolve()
    backend_files = [server_root / "backends" / "python" / name for name in _PY_BACKEND_FILES]
    prepare_python_backend(backend_dir, backend_files, stub)

    env = dict(os.environ)
    libs = [str(root.parent / "nvidia_pytriton.libs")]
    libpython = _libpython_dir()
    if libpython is not None:
        # The stub then embeds this interpreter's own libpython, whose standard library is at its home.
        libs.append(str(libpython))
        env.setdefault("PYTHONHOME", sys.base_prefix)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (*libs, env.get("LD_LIBRARY_PATH", "")) if p)
    # The stub embeds an interpreter that must import numpy and onnxruntime from *this* environment.
    paths = sysconfig.get_paths()
    site_dirs = dict.fromkeys([str(root.parent), paths["purelib"], paths["platlib"]])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*site_dirs, env.get("PYTHONPATH", "")) if p)
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join((scripts, env.get("PATH", "")))
    unavailable = {}
    try:
        native_backend.install(backend_dir)
    except (native_backend.NativeBackendUnavailable, OSError) as exc:
        # Only a model that uses it needs it: `_check_backends` refuses those with this reason.
        unavailable[native_backend.BACKEND_NAME] = str(exc)
        logger.debug("the %s backend is unavailable: %s", native_backend.BACKEND_NAME, exc)
    # 602 KB request bodies: keep their blocks in the heap instead of fresh pages per request.
    return TritonInstall(binary, backend_dir, child_environment(env), unavailable, python_blind_on_gpu=True)


def _libpython_dir() -> Path | None:
    """The directory of this interpreter's libpython when the loader would not find it by itself.

    The stub links `libpythonX.Y.so.1.0`; a system Python's is in the loader's cache and needs
    nothing, an interpreter built elsewhere (pyenv, a venv over /opt) keeps it in its LIBDIR.
    """
    name = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
        if name in cache:
            return None
    for directory in (sysconfig.get_config_var("LIBDIR"), os.path.join(sys.base_prefix, "lib")):
        if directory and (Path(directory) / name).is_file():
            return Path(directory)
    logger.warning("%s not found: the Python backend's stub may not start", name)
    return None


#: The stub as the Python backend starts it: hands the stub the GPUs a GPU-blind server hides from
#: itself (`gpu_plan.STUB_GPUS_ENV`), then becomes the stub (exec: same process, same pid).
STUB_WRAPPER = f"""#!/bin/sh
# deploylab: start the Python backend's stub with the GPUs a GPU-blind tritonserver hands back.
if [ -n "${{{STUB_GPUS_ENV}+set}}" ]; then
  if [ "${STUB_GPUS_ENV}" = "{ALL_GPUS}" ]; then
    unset CUDA_VISIBLE_DEVICES
  else
    CUDA_VISIBLE_DEVICES="${STUB_GPUS_ENV}"
    export CUDA_VISIBLE_DEVICES
  fi
fi
exec "$0.bin" "$@"
"""


def prepare_python_backend(backend_dir: Path, backend_files: list[Path], stub: Path) -> Path:
    """`backend_dir/python`, holding the Python backend's files and `stub`, the stub for this Python.

    Triton loads a backend from `<backend directory>/<name>/`, and the stub must match the Python that
    runs the models, so the pieces of a wheel or a bundle are gathered there; files already in place
    (same size) are kept, and a copy is renamed into place so a concurrent start never sees half a file.
    The stub itself is `<stub>.bin`; under the stub's name sits `STUB_WRAPPER`, which the backend runs.
    """
    python_backend = backend_dir / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    for source, name in [*((f, f.name) for f in backend_files), (stub, _STUB_BINARY)]:
        target = python_backend / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copy2(source, tmp)
            tmp.replace(target)
    wrapper = python_backend / _STUB
    if wrapper.is_symlink() or not wrapper.is_file() or wrapper.read_text(errors="replace") != STUB_WRAPPER:
        tmp = wrapper.with_name(f".{wrapper.name}.tmp")
        tmp.write_text(STUB_WRAPPER)
        tmp.replace(wrapper)
    for name in (_STUB, _STUB_BINARY):
        (python_backend / name).chmod(0o755)
    return python_backend


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def die_with_parent() -> None:
    """Run in the child: ask the kernel to SIGTERM it when the parent dies (no orphaned servers)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TritonServer:
    """A tritonserver child process: `start()` returns once it is ready, `stop()` ends it cleanly.

    `install`: run this server instead of locating one. Each start plans how the chosen models are
    served on this host's GPU (`gpu_plan.plan_gpu_serving`): on a GPU host the wheel's server runs
    GPU-blind while it serves Python-backend models, a model asking for a GPU gets it through its
    backend's stub processes, and a model that cannot be served here is refused with the reason.
    `gpu_visible`: None (default) follows that plan; False starts the server GPU-blind whatever the
    models; True keeps the GPU visible to it (a diagnosis: its Python-backend outputs come back empty).
    `gpu_metrics`: Triton's GPU metrics, by default on when a GPU is present and visible to the server.
    """

    def __init__(
        self,
        settings: RuntimeSettings | TritonOptions,
        models: list[str] | None = None,
        log_path: Path | None = None,
        *,
        install: TritonInstall | None = None,
        gpu_visible: bool | None = None,
        gpu_metrics: bool | None = None,
    ) -> None:
        self.settings = settings
        self.models = models  # None: every model in the repository
        self.log_path = log_path or (settings.state_dir / "logs" / f"triton-{settings.triton_http_port}.log")
        self.install = install
        self.gpu_visible = gpu_visible
        self.gpu_metrics = gpu_metrics
        #: How the last start serves the models on this host's GPU (`start()` makes it).
        self.plan = GpuPlan()
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def command(self, install: TritonInstall) -> list[str]:
        s = self.settings
        gpu_metrics = self.gpu_metrics
        if gpu_metrics is None:
            gpu_metrics = not self.gpu_blind and devices.host_gpu().visible
        cmd = [
            str(install.binary),
            f"--model-repository={self.served_repository}",
            f"--backend-directory={install.backend_dir}",
            f"--http-address={s.triton_host}",
            f"--http-port={s.triton_http_port}",
            f"--grpc-address={s.triton_host}",
            f"--grpc-port={s.triton_grpc_port}",
            f"--metrics-address={s.triton_host}",
            f"--metrics-port={s.triton_metrics_port}",
            f"--exit-timeout-secs={s.triton_exit_timeout_s}",
            f"--log-verbose={s.triton_log_verbose}",
            f"--model-control-mode={s.triton_model_control}",
            # Server readiness must not flip when one model is unloaded: model readiness is tracked
            # per model (the gateway's probe, /v2/models/<m>/ready), so strict readiness is off.
            "--strict-readiness=false",
            f"--allow-gpu-metrics={'true' if gpu_metrics else 'false'}",
            f"--backend-config=python,shm-default-byte-size={s.triton_python_shm_mb * 1024 * 1024}",
            f"--backend-config=python,shm-growth-byte-size={s.triton_python_shm_mb * 1024 * 1024}",
            f"--backend-config=python,shm-region-prefix-name={self.python_shm_prefix}",
        ]
        if s.triton_model_control == "explicit":
            names = self.models if self.models is not None else ["*"]
            cmd += [f"--load-model={name}" for name in names]
        return cmd

    def start(self) -> None:
        """Start and wait until `/v2/health/ready`; on failure raise with the log's last errors."""
        s = self.settings
        if not s.model_repository.is_dir():
            raise TritonError(
                f"model repository {s.model_repository} does not exist: run `deploylab export` first"
            )
        for label, port in (
            ("HTTP", s.triton_http_port),
            ("gRPC", s.triton_grpc_port),
            ("metrics", s.triton_metrics_port),
        ):
            if port_in_use(s.triton_host, port):
                raise TritonError(
                    f"port {port} (Triton {label}) is already in use on {s.triton_host}; "
                    f"stop what holds it or set DEPLOYLAB_TRITON_{label.upper()}_PORT"
                )
        install = self.install or locate_triton(s)
        self._check_backends(install)
        self.plan = self._gpu_plan(install)
        if self.plan.rewritten:
            write_repository_view(s.model_repository, self.view_dir, self.plan.rewritten)
        if self.plan.summary:
            logger.info("tritonserver on port %d: %s", s.triton_http_port, self.plan.summary)
        # What an earlier Triton of ours left in /dev/shm (killed, or this is a supervisor restart).
        remove_orphans(PYTHON_SHM_PREFIX)
        remove_with_prefix(self.python_shm_prefix)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(install),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(install),
                start_new_session=True,  # Ctrl-C reaches us; we stop Triton in order
                preexec_fn=die_with_parent,  # noqa: PLW1509 - needed for PDEATHSIG, no threads yet
            )
        finally:
            log.close()
        self.wait_ready(s.triton_startup_timeout_s)

    def _gpu_plan(self, install: TritonInstall) -> GpuPlan:
        """The plan for this start; TritonError when a chosen model cannot be served on this host."""
        if self.gpu_visible is True:
            return GpuPlan()
        return plan_gpu_serving(
            model_configs(self.settings.model_repository, self.models),
            devices.host_gpu(),
            python_blind_on_gpu=install.python_blind_on_gpu,
            environ=install.env,
        )

    @property
    def gpu_blind(self) -> bool:
        """Whether tritonserver is (or will be) started with every GPU hidden from it."""
        return self.plan.blind or self.gpu_visible is False

    @property
    def view_dir(self) -> Path:
        """Where a GPU-blind start keeps its view of the repository (rewritten configs, links)."""
        return (self.settings.state_dir / _VIEW_DIR / str(self.settings.triton_http_port)).resolve()

    @property
    def served_repository(self) -> Path:
        """The directory tritonserver reads: the repository, or its view when configs are rewritten."""
        return self.view_dir if self.plan.rewritten else self.settings.model_repository.resolve()

    def environment(self, install: TritonInstall) -> dict[str, str]:
        """tritonserver's environment: the install's, with the plan's additions (GPU-blind, stub GPUs)."""
        env = {**install.env, **self.plan.env}
        if self.gpu_visible is False:
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def _check_backends(self, install: TritonInstall) -> None:
        """Refuse up front, with the reason, to serve a model whose backend this install cannot run."""
        if not install.unavailable:
            return  # nothing to refuse, and no need for the protobuf parser
        from deploylab.services.modelzoo.repository import parse_triton_config
        from google.protobuf.text_format import ParseError

        for name in self.models if self.models is not None else ["*"]:
            for config in sorted(self.settings.model_repository.glob(f"{name}/config.pbtxt")):
                try:
                    backend = parse_triton_config(config.read_text(errors="replace")).backend
                except ParseError:
                    continue  # Triton names what is wrong with it when it loads the model
                if backend in install.unavailable:
                    raise TritonError(
                        f"model {config.parent.name} uses backend {backend}, which this Triton "
                        f"cannot run: {install.unavailable[backend]}"
                    )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.settings.triton_http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TritonError(
                    f"tritonserver exited with code {self.process.returncode} during start-up; "
                    f"{self.log_summary()}"
                )
            if http_ok(url, timeout_s=1.0) and self._models_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise TritonError(f"tritonserver not ready after {timeout_s:.0f}s; {self.log_summary()}")

    def _models_ready(self) -> bool:
        names = self.models
        if names is None:
            from deploylab.services.modelzoo.manifest import read_repository

            names = sorted(read_repository(self.settings.model_repository))
        base = self.settings.triton_http_url
        return all(http_ok(f"{base}/v2/models/{name}/ready", timeout_s=1.0) for name in names)

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, wait for Triton's own graceful exit, then SIGKILL; returns the exit code."""
        grace = timeout_s if timeout_s is not None else self.settings.triton_exit_timeout_s + 5
        code = stop_process_group(self.process, grace)
        if self.process is not None:
            removed = remove_with_prefix(self.python_shm_prefix)  # a clean exit removed them; kill -9 not
            if removed:
                logger.warning("removed %d shared-memory regions the stopped tritonserver left", len(removed))
        return code

    @property
    def python_shm_prefix(self) -> str:
        """Name prefix of this server's Python-backend regions in /dev/shm (16 MiB per instance)."""
        return f"{PYTHON_SHM_PREFIX}_{os.getpid()}_{self.settings.triton_http_port}_"

    def python_shm_regions(self) -> list[str]:
        """This server's Python-backend regions now in /dev/shm."""
        return sorted(p.name for p in SHM_DIR.glob(f"{self.python_shm_prefix}*"))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_summary(self, lines: int = 8) -> str:
        """The last error lines of the server log (or its tail), for one-line failure messages."""
        return log_excerpt(self.log_path, lines, keep=_is_error_line)

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_error_line(line: str) -> bool:
    """Triton logs errors with an `E` severity prefix; a backend's own messages just say "error"."""
    return line.startswith("E") or "error" in line.lower()


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when GET `url` answers 200 (connection errors and other statuses are False)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
