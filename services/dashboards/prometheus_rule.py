"""The Kubernetes PrometheusRule carrying deploy/prometheus/rules/*.yml, so k8s and compose alert alike.

prometheus-operator reads rules from PrometheusRule objects, not files; rendering the object from the
rule files keeps one source of truth (a unit test fails when the committed manifest is stale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULE_DIR = ROOT / "deploy" / "prometheus" / "rules"
MANIFEST = ROOT / "deploy" / "k8s" / "base" / "prometheus-rules.yaml"

HEADER = (
    "# GENERATED from deploy/prometheus/rules/*.yml by `python -m deploylab.services.dashboards`;"
    " do not edit.\n"
)


def rule_groups(rule_dir: Path = RULE_DIR) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(rule_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def render_prometheus_rule(rule_dir: Path = RULE_DIR) -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "deploylab", "labels": {"app.kubernetes.io/part-of": "deploylab"}},
        "spec": {"groups": rule_groups(rule_dir)},
    }
    return HEADER + yaml.safe_dump(manifest, sort_keys=False, width=110)
