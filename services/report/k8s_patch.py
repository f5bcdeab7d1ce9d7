"""From decision to deployment: a kustomize overlay over deploy/k8s sized by the chosen deployment's numbers.

Written into the run directory (`<run>/deploy/`), so `kubectl apply -k results/<run>/deploy` deploys what the
report chose: the model-export Job exports that one model, the gateway's `classifier` route points at
it, Triton runs the replicas the target rate needs, and every container requests the CPU and memory its
process tree used at the measured capacity (with headroom), limited to what one measured replica had.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .decision import Decision, Ranked
from .results import RunResults

DEPLOY_DIR = "deploy"
#: deploy/k8s in a source checkout: three levels above this file (services/report/k8s_patch.py).
SOURCE_K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MEMORY_HEADROOM = 1.25  # requests: measured PSS × this; limits: twice the request
MEMORY_STEP_MIB = 64
CPU_STEP_MILLI = 100
EXPORT_ARGS = (
    'deploylab export {model} --variant {variant} --backend onnxruntime --kind "$INSTANCE_KIND" '
    "--repository /models && touch /models/.export-complete"
)


@dataclass(frozen=True)
class Resources:
    cpu_request_milli: int
    cpu_limit_milli: int
    memory_request_mib: int
    memory_limit_mib: int

    def as_k8s(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": f"{self.cpu_request_milli}m", "memory": f"{self.memory_request_mib}Mi"},
            "limits": {"cpu": f"{self.cpu_limit_milli}m", "memory": f"{self.memory_limit_mib}Mi"},
        }


def sized(cores: float, memory_mib: float, cores_available: int) -> Resources:
    """Requests from what a process tree used at capacity; limits from what the replica had."""
    request = max(CPU_STEP_MILLI, math.ceil(cores * 1000 / CPU_STEP_MILLI) * CPU_STEP_MILLI)
    limit = max(request, cores_available * 1000)
    memory = max(MEMORY_STEP_MIB, math.ceil(memory_mib * MEMORY_HEADROOM / MEMORY_STEP_MIB) * MEMORY_STEP_MIB)
    return Resources(request, limit, memory, 2 * memory)


def in_flight(item: Ranked) -> int:
    """Requests in flight per replica at capacity (Little's law: rate × mean latency), at least 1."""
    point = item.capacity
    if point is None or point.latency_ms.mean is None:
        return 1
    return max(1, math.floor(point.throughput_rps * point.latency_ms.mean / 1000))


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the patches) as literal blocks, the way a person writes a kustomization."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _dump(data: object) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, width=120)


def overlay_dir(kind: str, k8s_root: Path = SOURCE_K8S) -> Path:
    return k8s_root / "overlays" / ("gpu" if kind == "gpu" else "cpu")


def _patch(kind: str, name: str, body: object) -> dict[str, object]:
    return {"target": {"kind": kind, "name": name}, "patch": _dump(body)}


def _deployment(name: str, container: str, resources: Resources, replicas: int | None) -> dict[str, object]:
    spec: dict[str, object] = {
        "template": {"spec": {"containers": [{"name": container, "resources": resources.as_k8s()}]}}
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
    return _patch("Deployment", name, body)


def kustomization(results: RunResults, item: Ranked, base: str) -> dict[str, object]:
    """The overlay's kustomization.yaml as data."""
    cost = item.cost
    assert cost is not None and item.replicas is not None
    cores = results.machine.usable_cores or results.machine.logical_cores
    triton = cost.by_process.get("triton")
    gateway = cost.by_process.get("gateway")
    patches = []
    if triton is not None:
        patches.append(
            _deployment("triton", "triton", sized(triton.cores, triton.memory_mib, cores), item.replicas)
        )
    if gateway is not None:
        patches.append(
            _deployment("gateway", "gateway", sized(gateway.cores, gateway.memory_mib, cores), None)
        )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "gateway"},
        "spec": {
            "minReplicas": item.replicas,
            "maxReplicas": max(2 * item.replicas, item.replicas + 2),
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "deploylab_gateway_in_flight_requests"},
                        "target": {"type": "AverageValue", "averageValue": str(in_flight(item))},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}},
                },
            ],
        },
    }
    patches.append(_patch("HorizontalPodAutoscaler", "gateway", hpa))
    export = EXPORT_ARGS.format(model=item.deployment.model, variant=item.deployment.variant)
    patches.append(
        {
            "target": {"kind": "Job", "name": "model-export"},
            "patch": _dump(
                [{"op": "replace", "path": "/spec/template/spec/containers/0/args/0", "value": export}]
            ),
        }
    )
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "configMapGenerator": [{"name": "gateway-routing", "behavior": "replace", "files": ["routing.yaml"]}],
        "patches": patches,
    }


def routing(item: Ranked) -> str:
    deployment = item.deployment
    return _dump(
        {
            "sticky_header": "X-Deploylab-Key",
            "routes": [
                {
                    "name": "classifier",
                    "backends": [{"model": deployment.model, "variant": deployment.variant}],
                }
            ],
        }
    )


def header(results: RunResults, decision: Decision, item: Ranked) -> str:
    goal, d = decision.objective, item.deployment
    machine = results.machine
    lines = [
        f"deploylab decision from run {results.run_id}: "
        f"p99 <= {goal.slo_p99_ms:g} ms at {goal.target_rps:g} req/s.",
        f"Chosen: {d.triton_model} ({d.precision}, {d.engine}): {item.replicas} replica(s), each held "
        f"{item.rate:.1f} req/s within the SLO",
        f"on {machine.cpu_model} ({machine.usable_cores or machine.logical_cores} cores), "
        f"served as: {d.layout}.",
        "The overlay's Triton serves the same exported model with its onnxruntime backend; re-measure on the",
        "cluster's nodes before trusting the sizes. Apply: kubectl apply -k <this folder>.",
    ]
    return "".join(f"# {line}\n" for line in lines)


def write_k8s_patch(
    run_dir: Path, results: RunResults, decision: Decision, k8s_root: Path = SOURCE_K8S
) -> Path | None:
    """Write `<run>/deploy/` for the chosen deployment; None (and nothing written) when no deployment
    meets the objective or the run did not measure the serving processes' cost."""
    item = decision.chosen
    if item is None or item.cost is None:
        return None
    target = run_dir / DEPLOY_DIR
    target.mkdir(exist_ok=True)
    base = overlay_dir(item.deployment.instance_kind, k8s_root)
    base_ref = os.path.relpath(base, target) if base.is_dir() else f"deploy/k8s/overlays/{base.name}"
    text = header(results, decision, item) + _dump(kustomization(results, item, base_ref))
    (target / "kustomization.yaml").write_text(text)
    (target / "routing.yaml").write_text(routing(item))
    return target
