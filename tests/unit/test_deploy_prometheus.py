"""Prometheus config and rules checked by Prometheus' own promtool (config, rules, rule unit tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, (
        "promtool not found: run `make system-deps` (Debian package `prometheus`, "
        "scripts/install-system-deps.sh) or put Prometheus' promtool on PATH"
    )
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def test_prometheus_config_and_its_rule_files_pass_promtool_check_config() -> None:
    assert_ok(promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml")))


def test_every_rule_file_passes_promtool_check_rules() -> None:
    assert RULE_FILES, "no rule files under deploy/prometheus/rules"
    assert_ok(promtool("check", "rules", *map(str, RULE_FILES)))


def test_rule_unit_tests_pass_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "tests" / "rules_test.yml"))
    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_prometheus_config_loads_every_rule_file_and_scrapes_gateway_and_triton() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    loaded = {(PROMETHEUS_DIR / path).resolve() for path in config["rule_files"]}
    assert loaded == {path.resolve() for path in RULE_FILES}
    assert {job["job_name"] for job in config["scrape_configs"]} == {"gateway", "triton"}


def test_every_recording_rule_and_alert_has_a_unit_test() -> None:
    """A rule nobody tested is a rule nobody knows works: each one appears in rules_test.yml."""
    tests = (PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                if rule.get("record") and name in _recorded_only_as_inputs():
                    continue
                assert name in tests, f"{path.name}: {name} has no test in rules_test.yml"


def _recorded_only_as_inputs() -> set[str]:
    """Intermediate rules checked through the rules built on them (their values feed tested ones)."""
    return {
        "model:nv_inference_request_success:rate1m",
        "model:nv_inference_request_failure:rate1m",
        "model:nv_inference_count:rate1m",
        "model:nv_inference_exec_count:rate1m",
        "model:nv_inference_compute_input_duration_seconds:per_request_rate1m",
        "model:nv_inference_compute_infer_duration_seconds:per_request_rate1m",
        "model:nv_inference_compute_output_duration_seconds:per_request_rate1m",
    }
