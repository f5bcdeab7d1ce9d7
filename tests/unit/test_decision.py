"""The report's decision: deployments ranked against an objective, from a recorded run (tests/data)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from deploylab.services.cli import app
from deploylab.services.report.decision import decide, layout_of, path_points, within_slo
from deploylab.services.report.results import Objective, RunResults, load_results
from deploylab.services.report.writer import write_report
from typer.testing import CliRunner

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "results_fixture"


@pytest.fixture
def results() -> RunResults:
    return load_results(FIXTURE)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    return target


def test_capacity_is_the_fastest_point_of_the_client_path_within_the_slo(results: RunResults) -> None:
    objective = Objective(slo_p99_ms=400, target_rps=50)
    decision = decide(results, objective)
    assert {r.deployment.triton_model for r in decision.ranked} == {m.triton_model for m in results.models}
    for item in decision.ranked:
        target, api = item.path.split()
        points = path_points(results, item.deployment.triton_model, target, api)
        held = [p for p in points if within_slo(p, objective.slo_p99_ms)]
        assert item.path == "gateway classify"  # the recorded run measured the client path for every model
        if not held:
            assert item.capacity is None and item.replicas is None
            continue
        assert item.capacity is not None and item.capacity.latency_ms.p99 is not None
        assert item.capacity.latency_ms.p99 <= 400
        assert item.capacity.throughput_rps == max(p.throughput_rps for p in held)
        assert item.replicas == math.ceil(50 / item.capacity.throughput_rps)


def test_ranking_puts_deployments_that_meet_the_slo_first_then_fewest_replicas(results: RunResults) -> None:
    decision = decide(results, Objective(slo_p99_ms=100, target_rps=50))
    meets = [r.meets for r in decision.ranked]
    assert meets == sorted(meets, reverse=True) and any(meets) and not all(meets)
    replicas = [r.replicas for r in decision.ranked if r.meets]
    assert replicas == sorted(replicas)
    assert decision.chosen is decision.ranked[0]


def test_a_stricter_slo_never_raises_capacity_and_an_impossible_one_chooses_nothing(
    results: RunResults,
) -> None:
    loose = {
        r.deployment.triton_model: r.rate or 0
        for r in decide(results, Objective(slo_p99_ms=1e4, target_rps=1)).ranked
    }
    strict = {
        r.deployment.triton_model: r.rate or 0
        for r in decide(results, Objective(slo_p99_ms=150, target_rps=1)).ranked
    }
    assert all(strict[m] <= loose[m] for m in loose) and strict != loose
    impossible = decide(results, Objective(slo_p99_ms=0.01, target_rps=1))
    assert impossible.chosen is None and not any(r.meets for r in impossible.ranked)


def test_report_opens_with_the_decision_before_the_claims(run_dir: Path) -> None:
    html = write_report(run_dir).html.read_text()
    decision, claims = html.index('id="decision"'), html.index('id="claims"')
    assert html.index("<h1>") < decision < claims
    chosen = decide(load_results(run_dir)).chosen
    assert chosen is not None
    assert f"Deploy: {chosen.deployment.triton_model}" in html[decision:claims]
    markdown = write_report(run_dir).markdown.read_text()
    assert markdown.index("Deploy:") < markdown.index("## Claims checked")


def test_report_command_decides_again_and_keeps_the_objective(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir), "--slo-p99-ms", "0.01", "--rps", "5"])
    assert result.exit_code == 0, result.output
    assert load_results(run_dir).objective == Objective(slo_p99_ms=0.01, target_rps=5)
    html = (run_dir / "report.html").read_text()
    assert "No measured deployment holds p99 ≤ 0.01 ms" in html
    assert not (run_dir / "deploy").exists()
    again = CliRunner().invoke(app, ["report", str(run_dir), "--rps", "7"])  # the SLO is kept
    assert again.exit_code == 0, again.output
    assert load_results(run_dir).objective == Objective(slo_p99_ms=0.01, target_rps=7)


def test_the_command_line_states_the_default_objective_it_applies() -> None:
    from deploylab.loadtests.cli import RpsOpt, SloOpt
    from deploylab.services.measure.results import DEFAULT_OBJECTIVE

    assert f"[default: {DEFAULT_OBJECTIVE.slo_p99_ms:g}]" in SloOpt.__metadata__[0].help
    assert f"[default: {DEFAULT_OBJECTIVE.target_rps:g}]" in RpsOpt.__metadata__[0].help


def test_the_layout_names_instances_threads_pipelining_and_batching(results: RunResults) -> None:
    facts = results.models[0]
    serving = {"backend": "python", "instance_count": 1, "intra_op_threads": 2, "max_batch_size": 8}
    pipelined = facts.model_copy(update={"serving": {**serving, "pipeline": True}})
    plain = facts.model_copy(update={"serving": {**serving, "instance_count": 2, "intra_op_threads": 1}})
    assert layout_of(pipelined) == "python, 1 cpu instance(s) × 2 thread(s), pipelined, batch ≤ 8"
    assert layout_of(plain) == "python, 2 cpu instance(s) × 1 thread(s), batch ≤ 8"
