"""Parse Prometheus text exposition in tests (prometheus-client's own parser)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(text: str, name: str) -> list[Sample]:
    """Every sample called exactly `name` (e.g. a `_total` or `_bucket` series)."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append(Sample(sample.name, dict(sample.labels), float(sample.value)))
    return found


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(s.value for s in scrape(text, name) if labels.items() <= s.labels.items())
