"""What the `deploylab` command costs before it does any work: start-up time, heavy imports, memory.

A user feels the command line on every call: `deploylab --help` and `deploylab models` should answer
at once, and the `deploylab serve` supervisor, which only watches its Triton and gateway children for
as long as they run, should not hold a deep-learning framework in memory. torch alone costs seconds
to import and hundreds of MB resident, so whether it (or ONNX Runtime) is loaded on these paths is
measured as well as how long they take.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Libraries that no start-up or serving-supervisor path needs: export, parity and in-process
#: baselines import them inside the commands that use them.
HEAVY_MODULES = ("torch", "onnxruntime")

#: Shared-library path fragments that show a heavy library loaded into another process.
_HEAVY_LIBRARIES = {"torch": "libtorch", "onnxruntime": "onnxruntime_pybind11_state"}

# Runs one `deploylab` command in this interpreter, then writes which heavy modules it had imported.
_PROBE = """
import json, sys
report, args = sys.argv[1], sys.argv[2:]
try:
    from deploylab.services.cli import app
    app(args, prog_name="deploylab")
except SystemExit:
    pass
finally:
    with open(report, "w") as out:
        json.dump(sorted(m for m in {heavy!r} if m in sys.modules), out)
"""


def deploylab_command() -> list[str]:
    """The argv prefix that runs `deploylab` as a user does: the console script beside this Python."""
    script = Path(sys.executable).with_name("deploylab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "deploylab.services.cli"]


def heavy_modules_after(args: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The HEAVY_MODULES imported once `deploylab ARGS` has run in a fresh interpreter (sorted)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "modules.json"
        subprocess.run(
            [sys.executable, "-c", _PROBE.format(heavy=HEAVY_MODULES), str(report), *args],
            capture_output=True,
            timeout=300,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if not report.exists():
            raise RuntimeError(f"the import probe for `deploylab {' '.join(args)}` did not report")
        return list(json.loads(report.read_text()))


def median_wall_s(args: list[str], runs: int = 5, env: dict[str, str] | None = None) -> float:
    """Median wall seconds of `deploylab ARGS` over `runs` fresh processes (output discarded)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [*deploylab_command(), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            env={**os.environ, **(env or {})},
            check=False,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def heavy_libraries_in(pid: int) -> list[str]:
    """The HEAVY_MODULES whose shared library is mapped into process `pid` (Linux: its memory maps)."""
    import psutil

    mapped = [m.path for m in psutil.Process(pid).memory_maps()]
    return [name for name, lib in _HEAVY_LIBRARIES.items() if any(lib in path for path in mapped)]


def _smallest_exported(repository: Path) -> str:
    from deploylab.services.modelzoo.manifest import read_repository

    exported = read_repository(repository)
    if not exported:
        raise ValueError(f"no exported models in {repository}: run `deploylab export` first")
    return min(exported.values(), key=lambda m: m.onnx_bytes).model


def measure_supervisor(repository: Path, model: str | None = None, timeout_s: float = 180.0) -> dict:
    """Start `deploylab serve` on free ports, and once it is ready read its own process's memory.

    Returns `rss_mb` (resident MB of the supervisor process, not its children), `heavy_libraries`
    (HEAVY_MODULES whose shared library is mapped into it), `model` (the one model served: the
    smallest exported unless named) and `ready_s` (seconds until the gateway answered /readyz).
    """
    import psutil
    from deploylab.services.measure.ports import free_ports
    from deploylab.services.runtime.triton import http_ok

    model = model or _smallest_exported(repository)
    gateway_port, http, grpc, metrics = free_ports(4)
    with tempfile.TemporaryDirectory() as state_dir:
        env = {
            **os.environ,
            "DEPLOYLAB_STATE_DIR": state_dir,
            "DEPLOYLAB_TRITON_HTTP_PORT": str(http),
            "DEPLOYLAB_TRITON_GRPC_PORT": str(grpc),
            "DEPLOYLAB_TRITON_METRICS_PORT": str(metrics),
        }
        args = ["serve", model, "--port", str(gateway_port), "--repository", str(repository)]
        log_path = Path(state_dir) / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*deploylab_command(), *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        started = time.monotonic()
        try:
            while not http_ok(f"http://127.0.0.1:{gateway_port}/readyz", timeout_s=1.0):
                if process.poll() is not None or time.monotonic() - started > timeout_s:
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"deploylab serve never became ready: {' | '.join(tail)}")
                time.sleep(0.2)
            ready_s = time.monotonic() - started
            rss_mb = psutil.Process(process.pid).memory_info().rss / 2**20
            heavy = heavy_libraries_in(process.pid)
        finally:
            # SIGTERM is the supervisor's own clean stop: it drains the gateway and stops Triton.
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return {
        "rss_mb": round(rss_mb, 1),
        "heavy_libraries": heavy,
        "model": model,
        "ready_s": round(ready_s, 2),
    }


def measure_cli_cost(repository: Path | None = None, runs: int = 5) -> dict:
    """Start-up cost of the `deploylab` command and, given a repository, of its serve supervisor.

    Keys:
      runs: how many fresh processes each median is taken over.
      help_s: median wall seconds of `deploylab --help`.
      models_s: median wall seconds of `deploylab models --json` on `repository` (an empty one when
        none is given); no Triton is expected to answer, so it includes the short probe for one.
      help_imports / models_imports: which of HEAVY_MODULES ("torch", "onnxruntime") those commands
        imported (empty lists are the goal).
      supervisor: None without a repository; otherwise measure_supervisor's dict: `rss_mb` (resident
        MB of the `deploylab serve` process itself once the gateway is ready, children excluded),
        `heavy_libraries` (heavy libraries mapped into it), `model` (what it served), `ready_s`.
    """
    with tempfile.TemporaryDirectory() as empty:
        models_args = ["models", "--json", "--repository", str(repository or empty)]
        result: dict = {
            "runs": runs,
            "help_s": round(median_wall_s(["--help"], runs), 3),
            "models_s": round(median_wall_s(models_args, runs), 3),
            "help_imports": heavy_modules_after(["--help"]),
            "models_imports": heavy_modules_after(models_args),
        }
    result["supervisor"] = measure_supervisor(repository) if repository is not None else None
    return result


if __name__ == "__main__":
    chosen = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(measure_cli_cost(chosen), indent=2))
