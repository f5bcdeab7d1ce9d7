"""scripts/gpu-session.sh without a GPU host: it parses, refuses to run half-configured, and every wheel it
carries to the GPU host is pinned by the project."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-session.sh"


def _bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_the_script_parses_and_is_executable() -> None:
    assert _bash("-n", str(SCRIPT)).returncode == 0
    assert os.access(SCRIPT, os.X_OK)


def test_the_script_says_how_to_call_it() -> None:
    done = _bash(str(SCRIPT))
    assert done.returncode == 2 and "usage:" in done.stderr


def test_run_refuses_without_out_or_bundle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run(["bash", str(SCRIPT), "run"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0 and "set OUT" in done.stderr
    done = _bash(str(SCRIPT), "run", env={"OUT": str(tmp_path / "out"), "GPU_BUNDLE": str(tmp_path / "none")})
    assert done.returncode == 1 and "run 'scripts/gpu-session.sh prepare' first" in done.stdout.replace(
        str(SCRIPT), "scripts/gpu-session.sh"
    )


def test_every_wheel_the_gpu_host_gets_is_pinned_in_constraints() -> None:
    # Source the script's definitions (not its main) and resolve each name the way `prepare` does.
    probe = f"""
        set -euo pipefail
        here={SCRIPT.parents[1]}
        eval "$(sed -n '/^wheels=(/,/^)/p;/^pinned()/,/^}}/p' {SCRIPT})"
        for name in "${{wheels[@]}}"; do printf '%s %s\\n' "$name" "$(pinned "$name")"; done
    """
    done = _bash("-c", probe)
    assert done.returncode == 0, done.stderr
    rows = [line.split(" ") for line in done.stdout.splitlines()]
    assert len(rows) >= 20
    unpinned = [name for name, *spec in rows if not spec or "==" not in spec[0]]
    assert unpinned == []
    assert {name for name, _ in rows} >= {"fastapi", "pydantic_core", "tritonclient", "uvicorn"}
