"""Grafana dashboards for deploylab, generated from code with grafana-foundation-sdk.

The committed JSON under deploy/grafana/dashboards/ is what Grafana loads; this package is where it
comes from. Regenerate after any change with `python -m deploylab.services.dashboards` (or `make dashboards`);
a unit test fails when the committed JSON and the generated JSON differ.
"""
