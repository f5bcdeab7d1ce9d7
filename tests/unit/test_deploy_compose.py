"""docker-compose.yml against the Compose specification schema (the copy pinned by check-jsonschema),
plus the wiring the schema cannot see: health-gated start order, the GPU reservation, the exported
backend, settings names, mounts, the load-test profile, and Triton kept off every public interface with
its shared-memory and model-repository APIs locked. No Docker engine is needed."""

from __future__ import annotations

import copy
import json
import re
import shlex
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploylab.services.gateway.settings import GatewaySettings
from deploylab.services.modelzoo.catalog import CATALOG, MODEL_SETS
from deploylab.services.runtime.settings import RuntimeSettings

from tests.support.restricted_api import assert_triton_restrictions

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
LOOPBACK = {"127.0.0.1", "::1"}
#: The services allowed to share a network with Triton: its one client and its scraper.
TRITON_NEIGHBOURS = {"gateway", "prometheus"}
#: API groups `tritonserver --help` accepts for --http-restricted-api / --grpc-restricted-protocol.
GATEWAY_TRITON_KEY = "DEPLOYLAB_GATEWAY_TRITON_API_KEY"

Compose = dict[str, Any]


@cache
def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def schema_errors(document: Compose) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@cache
def _load() -> Compose:
    loaded: Compose = yaml.safe_load(COMPOSE_FILE.read_text())  # PyYAML resolves the `<<:` merge keys
    return loaded


def compose() -> Compose:
    return copy.deepcopy(_load())


def services() -> dict[str, Any]:
    return compose()["services"]


def default_value(text: str) -> str:
    """`${NAME:-default}` → default (what compose uses when the variable is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) per published port, short or long syntax; "" = every interface."""
    published: list[tuple[str, str]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published.append((entry.get("host_ip", ""), str(entry["target"])))
            continue
        text, host = str(entry).split("/")[0], ""
        if text.startswith("["):  # [::1]:8080:8080
            host, text = text[1:].split("]:", 1)
        parts = text.split(":")
        if len(parts) == 3:
            host = parts[0]
        published.append((host, parts[-1]))
    return published


def networks_of(service: dict[str, Any]) -> set[str]:
    """The networks a service joins: compose puts a service without `networks` on `default`."""
    return set(service.get("networks", ["default"]))


def triton_exposure(document: Compose) -> list[str]:
    """Every way the file lets a non-neighbour reach Triton's ports (empty: none)."""
    all_services = document["services"]
    triton = all_services["triton"]
    problems = [f"published on {host or 'every interface'}: {port}"
                for host, port in published_ports(triton) if host not in LOOPBACK]  # fmt: skip
    if "network_mode" in triton:
        problems.append(f"network_mode {triton['network_mode']}")
    for network in networks_of(triton):
        if not (document.get("networks") or {}).get(network, {}).get("internal"):
            problems.append(f"network {network} is not internal")
        neighbours = {n for n, s in all_services.items() if n != "triton" and network in networks_of(s)}
        problems += [f"{n} shares network {network}" for n in sorted(neighbours - TRITON_NEIGHBOURS)]
    return problems


def triton_script() -> list[str]:
    """Triton's start-up script as shell words, with compose's `$$` escapes undone."""
    command = services()["triton"]["command"]
    assert command[:2] == ["sh", "-c"], command
    return shlex.split(command[2].replace("$$", "$"))


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_schema_check_rejects_an_invalid_depends_on_condition() -> None:
    """Negative control: the schema really is applied (a made-up condition fails)."""
    broken = compose()
    broken["services"]["gateway"]["depends_on"]["triton"]["condition"] = "service_ready"
    assert schema_errors(broken)


def test_start_order_is_gated_on_health_and_on_the_exporter_finishing() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in all_services[dependency], f"{dependency} has no healthcheck"
    assert all_services["triton"]["depends_on"]["exporter"]["condition"] == "service_completed_successfully"
    assert all_services["exporter"]["restart"] == "no"
    assert all_services["gateway"]["depends_on"]["triton"]["condition"] == "service_healthy"
    assert all_services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "/readyz" in all_services["gateway"]["healthcheck"]["test"]
    assert "/v2/health/ready" in " ".join(all_services["triton"]["healthcheck"]["test"])


def test_triton_is_the_pinned_ngc_image_with_a_gpu_reservation() -> None:
    triton = services()["triton"]
    image, tag = triton["image"].rsplit(":", 1)
    assert image == "nvcr.io/nvidia/tritonserver" and re.fullmatch(r"\d{2}\.\d{2}-py3", tag)
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    words = triton_script()
    assert words[words.index("exec") + 1] == "tritonserver"  # exec: tritonserver gets the signals
    assert "--model-repository=/models" in words


def test_triton_publishes_no_port_and_shares_a_network_only_with_the_gateway_and_prometheus() -> None:
    document = compose()
    assert triton_exposure(document) == []
    triton = document["services"]["triton"]
    assert "ports" not in triton
    assert networks_of(document["services"]["gateway"]) & networks_of(triton)
    # `expose` (what the scrape check reads) lists the ports tritonserver really listens on
    port_flags = ("--http-port=", "--grpc-port=", "--metrics-port=")
    listening = {w.split("=")[1] for w in triton_script() if w.startswith(port_flags)}
    assert set(triton["expose"]) == listening


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["services"]["triton"].update(ports=["8000:8000"]), "every interface"),
        (lambda c: c["services"]["triton"].update(ports=["0.0.0.0:8002:8002"]), "0.0.0.0"),
        (lambda c: c["services"]["triton"].update(network_mode="host"), "network_mode"),
        (lambda c: c["services"]["grafana"].update(networks=["default", "backend"]), "grafana shares"),
        (lambda c: c["networks"]["backend"].pop("internal"), "not internal"),
    ],
    ids=["published", "published-on-all-addresses", "host-network", "public-neighbour", "routed-network"],
)
def test_exposure_check_catches_each_way_triton_could_be_reached(change: Any, problem: str) -> None:
    """Negative control: each way of opening Triton up is reported."""
    document = compose()
    change(document)
    assert schema_errors(document) == []
    assert any(problem in p for p in triton_exposure(document)), triton_exposure(document)


def test_only_the_gateway_listens_on_every_interface() -> None:
    for name, service in services().items():
        for host, port in published_ports(service):
            assert name == "gateway" or host in LOOPBACK, f"{name} publishes {port} on {host or 'all'}"
    assert published_ports(services()["gateway"]) == [("", "8080")]


def test_triton_restricts_shared_memory_and_model_repository_on_http_and_grpc() -> None:
    """model-repository wants the key the gateway holds; shared memory, trace and logging a key drawn
    at each start that no one holds (the gateway is in another container: it never maps shared memory)."""
    words = triton_script()
    assert_triton_restrictions(words)
    required = services()["triton"]["environment"]["TRITON_API_KEY"]
    assert re.fullmatch(r"\$\{DEPLOYLAB_TRITON_API_KEY:\?[^}]+\}", required), "the key has no default"


def test_gateway_is_given_the_key_triton_requires() -> None:
    all_services = services()
    required = all_services["triton"]["environment"]["TRITON_API_KEY"]
    assert all_services["gateway"]["environment"][GATEWAY_TRITON_KEY] == required


def test_gateway_reads_the_triton_key_setting() -> None:
    assert GATEWAY_TRITON_KEY.removeprefix("DEPLOYLAB_GATEWAY_").lower() in GatewaySettings.model_fields


def test_exporter_writes_the_onnxruntime_gpu_repository_triton_serves() -> None:
    all_services = services()
    exporter = all_services["exporter"]
    command = shlex.split(exporter["command"][-1].replace("$$", "$"))
    assert command[:2] == ["deploylab", "export"]
    assert command[command.index("--backend") + 1] == "onnxruntime"
    assert command[command.index("--kind") + 1] == "gpu"
    volume = exporter["volumes"][0].split(":")[0]
    assert f"{volume}:/models:ro" in all_services["triton"]["volumes"]


def test_every_model_the_routing_table_routes_is_exported_by_compose_and_by_default() -> None:
    models = default_value(services()["exporter"]["environment"]["DEPLOYLAB_EXPORT_MODELS"]).split()
    assert set(models) <= set(CATALOG)
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routed = {b["model"] for r in routing["routes"] for b in r["backends"]}
    routed |= {r["shadow"]["model"] for r in routing["routes"] if "shadow" in r}
    missing = routed - set(models)
    assert not missing, f"config/routing.yaml routes {missing}, which compose never exports"
    # and the local default export (`make compare`, `deploylab export`) serves every route too
    assert routed <= set(MODEL_SETS["default"]), routed - set(MODEL_SETS["default"])


def test_environment_names_are_settings_fields() -> None:
    """A misspelt DEPLOYLAB_* variable is silently ignored by pydantic-settings: catch it here."""
    all_services = services()
    for name in all_services["gateway"]["environment"]:
        assert name.removeprefix("DEPLOYLAB_GATEWAY_").lower() in GatewaySettings.model_fields, name
    for name in all_services["exporter"]["environment"]:
        if name != "DEPLOYLAB_EXPORT_MODELS":
            assert name.removeprefix("DEPLOYLAB_").lower() in RuntimeSettings.model_fields, name


def test_bind_mounts_exist_and_grafana_loads_what_is_mounted() -> None:
    all_services = services()
    for name, service in all_services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    grafana_mounts = dict(v.split(":")[:2] for v in all_services["grafana"]["volumes"])
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/deploylab.yml").read_text())
    assert grafana_mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert grafana_mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = all_services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).name).is_file()
    assert "./deploy/prometheus:/etc/prometheus:ro" in all_services["prometheus"]["volumes"]


def test_prometheus_scrapes_the_compose_services_and_grafana_reads_that_prometheus() -> None:
    all_services = services()
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        host, port = job["static_configs"][0]["targets"][0].split(":")
        assert host in all_services, f"scrape target {host} is not a compose service"
        target = all_services[host]
        assert networks_of(target) & networks_of(all_services["prometheus"]), f"{host} unreachable"
        listening = {p for _, p in published_ports(target)} | set(target.get("expose", []))
        assert port in listening, (host, port)
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_locust_master_and_workers_run_the_locustfile_only_under_the_loadtest_profile() -> None:
    all_services = services()
    locust = {name: s for name, s in all_services.items() if name.startswith("locust")}
    assert set(locust) == {"locust-master", "locust-worker"}
    for service in locust.values():
        assert service["profiles"] == ["loadtest"]
        assert "loadtests/locustfile.py" in service["command"]
    assert "--master" in locust["locust-master"]["command"]
    assert "--worker" in locust["locust-worker"]["command"]
    assert all("profiles" not in s for n, s in all_services.items() if n not in locust)


@pytest.mark.parametrize("name", ["prometheus", "grafana", "triton"])
def test_third_party_images_are_pinned(name: str) -> None:
    image = services()[name]["image"]
    assert ":" in image and not image.endswith(":latest"), image
