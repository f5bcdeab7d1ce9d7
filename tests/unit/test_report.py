"""Report generation from a recorded run (tests/data/results_fixture): every table, every plot, the claims."""

from __future__ import annotations

import base64
import re
import shutil
from html import escape
from pathlib import Path

import pytest
from deploylab.services.cli import app
from deploylab.services.measure.csv_files import INPROCESS_CSV, MODELS_CSV, POINTS_CSV
from deploylab.services.report.claims import VERDICT_RULES, check_claims
from deploylab.services.report.plots import build_plots
from deploylab.services.report.results import CounterCheck, load_results, save_results
from deploylab.services.report.tables import build_tables, claim_table
from deploylab.services.report.writer import write_report
from typer.testing import CliRunner

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "results_fixture"
EXPECTED_PLOTS = {"throughput-latency", "ramp", "served-vs-inprocess", "triton-time"}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    return target


def test_the_fixture_is_a_complete_recorded_run() -> None:
    results = load_results(FIXTURE)
    assert results.status == "complete"
    assert {p.loop for p in results.points} == {"closed", "open"} and results.ramps
    assert {p.path for p in results.points} >= {"gateway classify", "gateway v2", "triton v2"}
    assert {r.engine for r in results.inprocess} == {"onnxruntime", "torch"}


def test_html_report_is_self_contained_with_every_table_and_plot(run_dir: Path) -> None:
    files = write_report(run_dir)
    html = files.html.read_text()
    results = load_results(run_dir)
    for table in build_tables(results):
        assert f'id="table-{table.key}"' in html, table.key
        assert table.rows, f"the recorded run should fill the {table.key} table"
    images = re.findall(r'<figure id="plot-([\w-]+)">.*?src="data:image/png;base64,([^"]+)"', html, re.S)
    assert {key for key, _ in images} == EXPECTED_PLOTS
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must load nothing from the network"


def test_claims_section_shows_each_band_beside_the_measured_number_and_the_verdict(run_dir: Path) -> None:
    files = write_report(run_dir)
    html, markdown = files.html.read_text(), files.markdown.read_text()
    claims = check_claims(load_results(run_dir))
    assert {c.key: c.verdict for c in claims} == {
        "vgg16-vs-resnet50": "partly confirmed",  # in-process latency 1.06×, served throughput 1.76×
        "mobilenet-vs-resnet50": "confirmed",
        "repvgg-deploy-vs-train": "confirmed",
        "convnext-vs-resnet50": "partly confirmed",  # 1.33× in-process is outside 0.80–1.25×
    }
    for claim in claims:
        assert f'id="claim-{claim.key}"' in html and f'id="table-claim-{claim.key}"' in html
        measured = [c for c in claim.comparisons if c.kind == "ratio" and c.measured is not None]
        assert len(measured) == 4, claim.key  # latency and throughput, in-process and served
        assert escape(VERDICT_RULES[claim.verdict]) in html and VERDICT_RULES[claim.verdict] in markdown
        assert escape(claim.source) in html and claim.source in markdown
        table = claim_table(claim)
        band, value, result = (table.columns.index(c) for c in ("band", "measured", "result"))
        for row in table.rows:
            html_row = "".join(f"<td>{escape(cell)}</td>" for cell in row)
            assert html_row in html, row
            assert "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" in markdown, row
            assert row[band] != "–" and row[value] != "–", row  # the fixture measures everything


def test_claim_table_puts_the_band_beside_the_measured_ratio(run_dir: Path) -> None:
    convnext = next(c for c in check_claims(load_results(run_dir)) if c.key == "convnext-vs-resnet50")
    table = claim_table(convnext)
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    latency = rows["latency ratio, in-process"]
    assert (latency["band"], latency["measured"], latency["result"]) == ("0.80–1.25×", "1.33×", "outside")
    assert latency["claim says"] == '"about ResNet-50\'s speed"'
    assert rows["parameters"]["kind"] == "fact" and rows["parameters"]["result"] == "holds"


def test_every_number_says_which_loop_it_comes_from(run_dir: Path) -> None:
    markdown = write_report(run_dir).markdown.read_text()
    latency = next(t for t in build_tables(load_results(run_dir)) if t.key == "latency")
    loops = {row[latency.columns.index("loop")] for row in latency.rows}
    assert loops == {"closed loop, constant users", "open loop, constant arrival rate"}
    assert "step ramp (closed loop, users stepped up)" in markdown


def test_markdown_report_links_plot_files_written_beside_it(run_dir: Path) -> None:
    files = write_report(run_dir)
    markdown = files.markdown.read_text()
    links = re.findall(r"!\[[^]]*\]\((plots/[\w-]+\.png)\)", markdown)
    assert {Path(link).stem for link in links} == EXPECTED_PLOTS
    assert all((run_dir / link).read_bytes().startswith(b"\x89PNG") for link in links)
    for table in build_tables(load_results(run_dir)):
        assert f"## {table.title}" in markdown
    for name in (POINTS_CSV, INPROCESS_CSV, MODELS_CSV):
        assert (run_dir / name).read_text().count("\n") > 1, name


def test_a_cross_check_mismatch_is_flagged_at_the_top(run_dir: Path) -> None:
    results = load_results(run_dir)
    point = results.points[0]
    point.checks = [CounterCheck.compare("triton", "nv_inference_request_success", 100, 120)]
    point.flags = ["triton counted 120 requests, Locust 100 (20.0% apart, over 5%)"]
    results.status = "interrupted"
    save_results(results, run_dir)
    files = write_report(run_dir)
    html, markdown = files.html.read_text(), files.markdown.read_text()
    assert 'class="flag"' in html and point.id in html.split('id="claims"')[0]
    assert "Cross-check mismatches" in markdown and "MISMATCH" in markdown
    assert "This run is interrupted" in markdown


def test_plots_are_left_out_when_the_run_has_no_data_for_them(run_dir: Path) -> None:
    results = load_results(run_dir)
    results.ramps = []
    results.inprocess = []
    keys = {plot.key for plot in build_plots(results)}
    assert "ramp" not in keys and "throughput-latency" in keys


def test_report_command_renders_a_run_directory(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.html").is_file() and str(run_dir / "report.html") in result.output


def test_report_command_fails_clearly_without_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "results.json not found" in result.output
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="not a deploylab results file"):
        load_results(tmp_path)


def test_triton_times_of_pipelined_models_are_marked_as_understated() -> None:
    from deploylab.services.report.tables import server_table

    results = load_results(FIXTURE)
    plain = server_table(results)
    assert "pipelined" not in plain.note and not any("†" in cell for row in plain.rows for cell in row)
    next(m for m in results.models if m.triton_model == "mobilenet_v3_large").serving["pipeline"] = True
    table = server_table(results)
    assert "pipelined" in table.note
    queue, compute = table.columns.index("queue"), table.columns.index("compute")
    for row in table.rows:
        marked = row[0] == "mobilenet_v3_large" and row[compute] != "–"
        assert row[compute].endswith("†") is marked and row[queue].endswith("†") is marked


def test_accuracy_rows_of_one_deployment_on_two_devices_are_both_kept_and_told_apart(run_dir: Path) -> None:
    import json

    from deploylab.services.report.writer import ACCURACY_FILENAME, add_accuracy

    def row(device: str, top1: float) -> dict[str, object]:
        return {
            "model": "resnet50",
            "variant": "default",
            "precision": "fp32",
            "engine": "onnxruntime",
            "device": device,
            "images": 8,
            "top1": top1,
            "top5": 1.0,
        }

    add_accuracy(run_dir, "photos/", [row("cpu", 0.5)])
    add_accuracy(run_dir, "photos/", [row("cuda", 0.625)])
    html = add_accuracy(run_dir, "photos/", [row("cuda", 0.75)]).read_text()  # replaces the cuda row only
    results = json.loads((run_dir / ACCURACY_FILENAME).read_text())["results"]
    assert sorted((r["device"], r["top1"]) for r in results) == [("cpu", 0.5), ("cuda", 0.75)]
    assert "onnxruntime on cuda" in html and "75.0%" in html and "62.5%" not in html
