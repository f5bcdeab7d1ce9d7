"""Live check: a real Prometheus (the committed config and rules, pointed at the session's gateway
and Triton on loopback) scrapes while real traffic flows; every recording rule, every dashboard query
and the prometheus-adapter rule must then return data for the served models."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploylab.services.dashboards.inventory import DashboardQuery, dashboard_queries
from deploylab.services.runtime.settings import RuntimeSettings

from tests.support import images
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ADAPTER_CONFIG = ROOT / "deploy" / "k8s" / "prometheus-adapter" / "config.yaml"

#: What the session serves (tests/conftest.py SMALL_MODELS, tests/data/routing.yaml).
GATEWAY_SERIES = {("resnet18", "default"), ("mobilenet_v3_small", "default"), ("repvgg_a0", "deploy"),
                  ("repvgg_a0", "train")}  # fmt: skip
TRITON_MODELS = {"resnet18", "mobilenet_v3_small", "repvgg_a0_deploy", "repvgg_a0_train"}
#: Labels a Kubernetes ServiceMonitor would attach; the adapter rule selects on them.
POD_LABELS = {"namespace": "deploylab", "pod": "gateway-0"}
#: Queries allowed to be empty on a healthy CPU host, and why.
EMPTY_ALLOWED = {
    ("deploylab-loadtest", "annotation", "Alerts firing"): "no deploylab alert fires on a healthy system",
    ("deploylab-overview", "panel", "Goodput and shedding [B]"): "nothing is shed below capacity",
}
DEADLINE_S = 90.0


def scrape_config(gateway_url: str, runtime: RuntimeSettings, rules: list[Path]) -> dict[str, Any]:
    """The committed prometheus.yml with loopback targets, 1 s scrapes and absolute rule paths."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(path) for path in rules]
    targets = {
        "gateway": {"targets": [gateway_url.removeprefix("http://")], "labels": POD_LABELS},
        "triton": {"targets": [f"{runtime.triton_host}:{runtime.triton_metrics_port}"]},
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [targets[job["job_name"]]]
    return config


@pytest.fixture(scope="module")
def prometheus(
    gateway_url: str, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, (
        "prometheus not found: run `make system-deps` (Debian package `prometheus`, "
        "scripts/install-system-deps.sh)"
    )
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(scrape_config(gateway_url, runtime_settings, rules)))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and _ok(f"{url}/-/ready"), 30, "prometheus ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    assert eventually(condition, timeout_s), f"timed out waiting for {what}"


def eventually(condition: Any, timeout_s: float) -> bool:
    """Poll `condition` every 0.5 s until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


class Traffic:
    """Bounded background traffic through every route kind the dashboards break down."""

    def __init__(self, gateway_url: str, max_seconds: float = 300.0) -> None:
        self.url = gateway_url
        self.max_seconds = max_seconds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="observability-traffic", daemon=True)
        self.sent = 0

    def _run(self) -> None:
        body = images.jpeg()
        calls: list[tuple[str, dict[str, str], bytes]] = [
            ("/v1/models/classifier/classify", {}, body),
            ("/v1/models/ab/classify", {"X-Deploylab-Key": "a"}, body),
            ("/v1/models/ab/classify", {"X-Deploylab-Key": "b"}, body),
            ("/v1/models/mobilenet_v3_small/classify", {}, body),
            ("/v1/models/repvgg/classify", {}, body),  # deploy, shadowed by train
            ("/v1/models/repvgg_a0/classify?variant=train", {}, body),
            ("/v1/models/resnet18/classify", {}, b"not an image"),  # 400 invalid_image
        ]
        started = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self.stop.is_set() and time.monotonic() - started < self.max_seconds:
                path, headers, data = calls[self.sent % len(calls)]
                client.post(path, content=data, headers={"content-type": "image/jpeg", **headers})
                self.sent += 1
                self.stop.wait(0.05)  # ~10-15 req/s: enough for rates, gentle on a shared 2-core box

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def traffic(gateway_url: str, prometheus: str) -> Iterator[Traffic]:
    with Traffic(gateway_url) as running:
        yield running


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10.0)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def over_last_minute(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """A range query like a dashboard panel's (last minute, 2 s step); NaN-only series count as empty."""
    now = time.time()
    params = {"query": expr, "start": now - 60, "end": now, "step": "2"}
    body = httpx.get(f"{prometheus}/api/v1/query_range", params=params, timeout=10.0).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return [s for s in body["data"]["result"] if any(v != "NaN" for _, v in s["values"])]


def recording_rules() -> list[str]:
    return [rule["record"] for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
            if "record" in rule]  # fmt: skip


def expected_labels(record: str) -> set[tuple[str, ...]]:
    """The label sets a rule must produce: one per served model (and variant), or the job."""
    if record.startswith("model_variant:"):
        return GATEWAY_SERIES
    if record.startswith("model:deploylab_gateway_"):
        return {(model,) for model, _ in GATEWAY_SERIES}
    if record.startswith("model:nv_"):
        return {(model,) for model in TRITON_MODELS}
    return {("gateway",)}


def label_key(record: str, metric: dict[str, str]) -> tuple[str, ...]:
    if record.startswith("model_variant:"):
        return metric["model"], metric["variant"]
    return (metric["model"],) if record.startswith("model:") else (metric["job"],)


def test_prometheus_scrapes_the_gateway_and_triton(prometheus: str, traffic: Traffic) -> None:
    def both_up() -> bool:
        return {r["metric"]["job"] for r in instant(prometheus, "up == 1")} == {"gateway", "triton"}

    wait_until(both_up, 30, "both scrape targets up")


def test_every_recording_rule_returns_data_for_every_served_model(prometheus: str, traffic: Traffic) -> None:
    missing: dict[str, set[tuple[str, ...]]] = {}

    def all_present() -> bool:
        missing.clear()
        for record in recording_rules():
            results = instant(prometheus, record)
            seen = {label_key(record, r["metric"]) for r in results if r["value"][1] != "NaN"}
            if gap := expected_labels(record) - seen:
                missing[record] = gap
        return not missing

    assert eventually(all_present, DEADLINE_S), f"after {traffic.sent} requests, no data for {missing}"


def test_every_dashboard_query_returns_data(prometheus: str, traffic: Traffic) -> None:
    queries = list(dashboard_queries())
    assert len(queries) > 40
    exempt = set(EMPTY_ALLOWED)
    must_have_data = [q for q in queries if not q.gpu_only and (q.dashboard, q.source, q.title) not in exempt]
    empty: list[DashboardQuery] = []

    def all_have_data() -> bool:
        empty[:] = [q for q in must_have_data if not over_last_minute(prometheus, q.concrete())]
        return not empty

    if not eventually(all_have_data, DEADLINE_S):
        pytest.fail("no data for:\n" + "\n".join(f"{q.dashboard} / {q.title}: {q.concrete()}" for q in empty))
    for query in queries:  # the rest must at least run (GPU panels are empty without a GPU)
        over_last_minute(prometheus, query.concrete())


@pytest.mark.parametrize("index", [0, 1], ids=["in_flight", "p99"])
def test_adapter_rule_yields_a_per_pod_metric(prometheus: str, traffic: Traffic, index: int) -> None:
    """The adapter's seriesQuery finds the gateway's series; its metricsQuery, rendered as the
    adapter renders it for an HPA's pod list, returns one value for the pod."""
    rule = yaml.safe_load(ADAPTER_CONFIG.read_text())["rules"][index]
    params = {"match[]": rule["seriesQuery"]}

    def series_found() -> bool:
        series = httpx.get(f"{prometheus}/api/v1/series", params=params, timeout=10).json()
        assert series["status"] == "success", series
        return bool(series["data"])

    # Whichever test runs first, Prometheus may not have scraped yet: wait for the series.
    assert eventually(series_found, DEADLINE_S), f"no series for {rule['seriesQuery']}"
    matchers = f'namespace="{POD_LABELS["namespace"]}",pod=~"{POD_LABELS["pod"]}"'
    rendered = (
        rule["metricsQuery"]
        .replace("<<.Series>>", rule["seriesQuery"].split("{")[0])
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", "pod")
    )

    def one_value_for_the_pod() -> bool:
        result = instant(prometheus, rendered)
        only_the_pod = [r["metric"] for r in result] == [{"pod": POD_LABELS["pod"]}]
        return only_the_pod and result[0]["value"][1] != "NaN"

    assert eventually(one_value_for_the_pod, DEADLINE_S), f"{rendered} → {instant(prometheus, rendered)}"


def test_every_rule_group_evaluates_without_errors(prometheus: str, traffic: Traffic) -> None:
    rules: list[dict[str, Any]] = []

    def all_evaluated() -> bool:
        body = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()
        rules[:] = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        return bool(rules) and all(rule["health"] != "unknown" for rule in rules)

    # Whichever test runs first, the rules may not have been evaluated yet ("unknown"): wait for that.
    assert eventually(all_evaluated, DEADLINE_S), [r["name"] for r in rules if r["health"] == "unknown"]
    body = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()
    assert {group["name"] for group in body["data"]["groups"]} == {
        "deploylab-gateway", "deploylab-triton", "deploylab-alerts"
    }
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken
    firing = [r["name"] for r in rules if r.get("state") == "firing"]
    assert "DeploylabTritonDown" not in firing and "DeploylabGatewayDown" not in firing
