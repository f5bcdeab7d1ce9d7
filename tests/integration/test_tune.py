"""`deploylab tune` against a real tritonserver: trials applied live, table saved, best config installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.repository import parse_triton_config
from deploylab.services.perf.tune import TuneOptions, TuneSpace
from deploylab.services.perf.tune_run import run_tune

from tests.support.ports import runtime_on_free_ports

MODEL = "mobilenet_v3_small"


def test_tiny_tune_records_every_trial_and_installs_a_best_config_that_loads(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    settings = runtime_on_free_ports(repository, tmp_path / "state")
    space = TuneSpace(layouts=((2, 1), (1, 1)), max_batch_sizes=(4, 8), queue_delays_us=(0,))
    options = TuneOptions(p99_ms=60_000, concurrencies=(1, 2), duration_s=0.5, space=space)

    report = run_tune(settings, MODEL, options, tmp_path / "out")

    # Phase 1 tries both layouts, phase 2 one more max batch size on the winner: three trials; then the
    # two leading configs are measured again, the leader last.
    assert len(report.result.trials) == 5
    saved = json.loads(report.json_path.read_text())
    assert [t["index"] for t in saved["trials"]] == [1, 2, 3, 4, 5]
    first_three = sorted(saved["trials"][:3], key=lambda t: t["score_img_s"], reverse=True)
    leader, runner_up = first_three[0], first_three[1]
    assert [t["confirms"] for t in saved["trials"]] == [None, None, None, runner_up["index"], leader["index"]]
    assert saved["trials"][4]["label"] == leader["label"]
    for trial in saved["trials"]:
        assert trial["error"] is None and trial["feasible"], trial
        assert [p["concurrency"] for p in trial["points"]] == [1, 2]
        assert all(p["throughput_img_s"] > 0 and p["mean_executed_batch"] >= 1 for p in trial["points"])
    labels = {t["label"] for t in saved["trials"]}
    assert {"2x1 mb4 delay0us pref[-]", "1x1 mb4 delay0us pref[-]"} <= labels
    markdown = report.markdown_path.read_text()
    assert "| 5 |" in markdown and f"(re-run of #{leader['index']})" in markdown

    best = report.result.best
    assert best is not None and saved["best"]["index"] == best.index
    assert report.config_path == repository / MODEL / "config.pbtxt"
    written = parse_triton_config(report.config_path.read_text())
    assert written.max_batch_size == best.serving.max_batch_size
    assert written.instance_group[0].count == best.serving.instance_count
    # Reloaded from the file: Triton serves exactly what was written.
    assert report.served_config is not None
    assert report.served_config["max_batch_size"] == best.serving.max_batch_size
    manifest = read_manifest(repository / MODEL)
    assert manifest is not None and manifest.serving["instance_count"] == best.serving.instance_count
