"""`deploylab chaos` as an operator runs it: it starts its own stacks, runs the scenarios asked for, and
writes the table as JSON and Markdown (here the quickest scenario, on the session's repository; the
scenarios themselves are tested one by one in test_reliability_faults/overload)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import descendants, leftovers


def test_chaos_command_runs_scenarios_and_writes_the_table(
    model_repository: Path, tmp_path: Path
) -> None:
    before = descendants()
    out = tmp_path / "chaos"
    completed = subprocess.run(
        [sys.executable, "-m", "deploylab.services.cli", "chaos", "--repository", str(model_repository),
         "--out", str(out), "--scenario", "gateway_sigterm"],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    data = json.loads((out / "chaos.json").read_text())
    assert data["passed"] is True
    assert [s["name"] for s in data["scenarios"]] == ["gateway_sigterm"]
    for scenario in data["scenarios"]:
        requests = scenario["requests"]
        assert requests["sent"] > 0 and requests["lost"] == 0
        assert requests["answered"] + requests["refused"] == requests["sent"]
        assert all(check["passed"] for check in scenario["checks"])
    table = (out / "chaos.md").read_text()
    assert "| scenario | fault injected | faults | sent | answered |" in table
    assert "| gateway_sigterm |" in table and "exit code 0" in table
    assert "pass" in completed.stderr and "wrote" in completed.stderr
    assert not leftovers(before), "the chaos command left processes behind"


def test_chaos_command_refuses_an_unknown_scenario(model_repository: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "deploylab.services.cli", "chaos", "--repository", str(model_repository),
         "--out", str(tmp_path), "--scenario", "meteor_strike"],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "unknown scenario" in completed.stderr and "meteor_strike" in completed.stderr
