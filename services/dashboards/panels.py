"""Small builders over grafana-foundation-sdk: the panel shapes deploylab's dashboards repeat.

Every panel reads the one provisioned Prometheus datasource (uid `prometheus`,
deploy/grafana/provisioning/datasources/prometheus.yml), so dashboards import without edits.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, StackingMode, VisibilityMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
GRAFANA = DataSourceRef(type_val="grafana", uid="-- Grafana --")
TAG = "deploylab"
HEIGHT = 8

#: (expr, legend) of one query; panels take several.
Query = tuple[str, str]
Panel = timeseries.Panel | stat.Panel | table.Panel


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A dashboard with deploylab's defaults: last 30 min, 10 s refresh, links to its siblings."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-30m", "now")
        .refresh("10s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("deploylab")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


def target(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref_id)


def ref_id(index: int) -> str:
    return chr(ord("A") + index)


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    span: int = 12,
    stacked: bool = False,
    threshold: float | None = None,
) -> timeseries.Panel:
    """A time series of one or more queries; `threshold` draws a dashed red line at that value."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .height(HEIGHT)
        .span(span)
        .fill_opacity(20 if stacked else 0)
        .show_points(VisibilityMode.NEVER)
        .stacking(common.StackingConfig().mode(StackingMode.NORMAL if stacked else StackingMode.NONE))
    )
    if threshold is not None:
        panel = panel.thresholds(
            dashboard.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=threshold, color="red")])
        ).thresholds_style(common.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(target(expr, legend, ref_id(index)))
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    expr: str,
    span: int = 4,
    mapping: dict[str, tuple[str, str]] | None = None,
) -> stat.Panel:
    """One big number (the last value); `mapping` turns values into words and colours."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .height(4)
        .span(span)
        .with_target(target(expr, title))
    )
    if mapping:
        options = {key: ValueMappingResult(text=text, color=color) for key, (text, color) in mapping.items()}
        panel = panel.mappings([ValueMap(options=options)])
    return panel


def table_panel(title: str, description: str, columns: list[tuple[str, str, str]]) -> table.Panel:
    """One row per label set, one column per instant query: (header, unit, expr) each."""
    panel = table.Panel().title(title).description(description).datasource(PROMETHEUS).height(HEIGHT).span(24)
    rename: dict[str, str] = {}
    for index, (header, unit, expr) in enumerate(columns):
        panel = panel.with_target(
            target(expr, header, ref_id(index)).instant().format(PromQueryFormat.TABLE)
        ).override_by_name(header, [DynamicConfigValue(id_val="unit", value=unit)])  # name after organize
        rename[f"Value #{ref_id(index)}"] = header
    organize = {"excludeByName": {"Time": True}, "renameByName": rename}
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={})).with_transformation(
        DataTransformerConfig(id_val="organize", options=organize)
    )


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)


#: A dashboard's content as data: (row title, panels) in display order.
Section = tuple[str, list[Panel]]


def with_sections(board: dashboard.Dashboard, sections: list[Section]) -> dashboard.Dashboard:
    """Add each titled row and its panels; the SDK lays panels out left to right, row by row."""
    for title, panels in sections:
        board = board.with_row(row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


def label_variable(name: str, label: str, metric: str, label_name: str) -> dashboard.QueryVariable:
    """A multi-select variable over a label's values; "All" matches everything (`.*`)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(f"label_values({metric}, {label_name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def tag_annotation(name: str, tags: list[str], color: str) -> dashboard.AnnotationQuery:
    """Grafana's own annotations carrying all `tags` (posted by load-test tooling via /api/annotations)."""
    return (
        dashboard.AnnotationQuery()
        .name(name)
        .datasource(GRAFANA)
        .enable(True)
        .icon_color(color)
        .target(dashboard.AnnotationTarget().type("tags").tags(tags).match_any(False).limit(500))
    )


def query_annotation(name: str, expr: str, color: str) -> dashboard.AnnotationQuery:
    """Regions where a PromQL expression has a value (Grafana merges consecutive points into one)."""
    annotation = dashboard.AnnotationQuery().name(name).datasource(PROMETHEUS)
    return annotation.enable(True).icon_color(color).expr(expr)
