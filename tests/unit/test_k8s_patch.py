"""From decision to deployment: the overlay a report writes renders with kustomize, validates strictly, and
carries the chosen deployment's numbers."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploylab.services.report.decision import decide
from deploylab.services.report.k8s_patch import sized, write_k8s_patch
from deploylab.services.report.results import ProcessCost, RunResults, ServingCost, load_results, save_results

from tests.unit.test_deploy_k8s import CRD_GROUP, KUBERNETES_VERSION, container, find, kubectl

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "results_fixture"
#: What the serving processes of one replica spent at a point: Triton busy on 1.6 cores, the gateway on 0.3.
TRITON = ProcessCost(cpu_s=9.6, cores=1.6, memory_mib=900.0, processes=3)
GATEWAY = ProcessCost(cpu_s=1.8, cores=0.3, memory_mib=150.0, processes=1)


def with_costs(results: RunResults) -> RunResults:
    """The recorded run with the serving processes' cost on every point (the fixture predates it)."""
    for point in [*results.points, *(s for r in results.ramps for s in r.steps)]:
        successes = point.requests - point.failures
        point.cost = ServingCost(
            cpu_s=11.4,
            cores=1.9,
            cpu_s_per_1k=round(11.4 / successes * 1000, 3) if successes else None,
            memory_mib=1050.0,
            by_process={"triton": TRITON, "gateway": GATEWAY},
        )
    return results


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    save_results(with_costs(load_results(target)), target)
    return target


def render(folder: Path) -> list[dict]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kustomize {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_overlay_renders_validates_and_sizes_triton_from_the_decision(run_dir: Path) -> None:
    results = load_results(run_dir)
    decision = decide(results)
    folder = write_k8s_patch(run_dir, results, decision)
    assert folder == run_dir / "deploy"
    manifests = render(folder)
    for manifest in manifests:
        if not manifest["apiVersion"].startswith(CRD_GROUP):
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    chosen = decision.chosen
    assert chosen is not None and chosen.rate
    triton = find(tuple(manifests), "Deployment", "triton")
    assert triton["spec"]["replicas"] == math.ceil(results.objective.target_rps / chosen.rate)
    resources = container(triton, "triton")["resources"]
    assert resources["requests"] == {"cpu": "1600m", "memory": f"{math.ceil(900 * 1.25 / 64) * 64}Mi"}
    assert resources["limits"]["cpu"] == f"{(results.machine.usable_cores or 0) * 1000}m"
    gateway = container(find(tuple(manifests), "Deployment", "gateway"), "gateway")["resources"]
    assert gateway["requests"]["cpu"] == "300m"
    hpa = find(tuple(manifests), "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["minReplicas"] == triton["spec"]["replicas"]
    export = container(find(tuple(manifests), "Job", "model-export"), "export")["args"][0]
    assert export.startswith(
        f"deploylab export {chosen.deployment.model} --variant {chosen.deployment.variant} "
    )
    routing = yaml.safe_load(find(tuple(manifests), "ConfigMap", "gateway-routing")["data"]["routing.yaml"])
    assert routing["routes"] == [
        {
            "name": "classifier",
            "backends": [{"model": chosen.deployment.model, "variant": chosen.deployment.variant}],
        }
    ]


def test_the_report_names_the_overlay_and_no_overlay_is_written_without_measured_cost(tmp_path: Path) -> None:
    from deploylab.services.report.writer import write_report

    bare = tmp_path / "bare"
    shutil.copytree(FIXTURE, bare)
    assert write_report(bare).k8s is None and not (bare / "deploy").exists()
    costed = tmp_path / "costed"
    shutil.copytree(FIXTURE, costed)
    save_results(with_costs(load_results(costed)), costed)
    files = write_report(costed)
    assert files.k8s == costed / "deploy"
    assert f"kubectl apply -k {files.k8s}" in files.html.read_text()


@pytest.mark.parametrize(
    ("cores", "memory", "cpu_request", "memory_request"),
    [(0.01, 10.0, 100, 64), (1.55, 1000.0, 1600, 1280), (3.0, 64.0, 3000, 128)],
)
def test_requests_round_up_with_headroom_and_limits_cover_the_measured_replica(
    cores: float, memory: float, cpu_request: int, memory_request: int
) -> None:
    size = sized(cores, memory, cores_available=2)
    assert (size.cpu_request_milli, size.memory_request_mib) == (cpu_request, memory_request)
    assert size.cpu_limit_milli == max(cpu_request, 2000) and size.memory_limit_mib == 2 * memory_request
