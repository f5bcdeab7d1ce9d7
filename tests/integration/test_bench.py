"""`deploylab bench` machinery on a small model: every path measured, ratios computed, docs rendered.

Not a benchmark: windows are a fraction of a second and nothing asserts speed, only that each path
answered, Triton formed batches it reports, and the summary and Markdown carry the ratios.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deploylab.benchmarks.bench import BenchOptions, run_bench
from deploylab.benchmarks.report import BEGIN, END, render, update_docs
from deploylab.services.modelzoo.repository import InstanceLayout, default_cpu_threads

MODEL = "mobilenet_v3_small"


def test_tiny_bench_measures_every_path_and_reports_the_ratios(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    options = BenchOptions(
        models=(MODEL,),
        repository=repository,
        threads=2,
        rounds=1,
        duration_s=0.5,
        concurrencies=(1, 2),
        direct_transports=("http", "http-shm"),
        gateway_workers=(1,),
        inprocess_batches=(1,),
        backends=("deploylab_ort",),
        # The second is the layout the export serves: measured already, so skipped.
        layouts=(InstanceLayout.parse("1x2p"), InstanceLayout(2, default_cpu_threads(2))),
        state_dir=tmp_path / "state",
    )

    result = run_bench(options, log=lambda _msg: None)

    record = result["models"][MODEL]
    round_ = record["rounds"][0]
    assert {(p["path"], p["transport"], p["concurrency"]) for p in round_["direct"]} == {
        ("direct", "http", 1),
        ("direct", "http", 2),
        ("direct", "http-shm", 2),
        ("direct-wrk", "http", 2),  # the independent C client at the plain-HTTP saturation point
    }
    (gateway_wrk,) = [p for p in round_["gateway"] if p["path"] == "gateway-tensor-wrk"]
    for point in [gateway_wrk, *(p for p in round_["direct"] if p["path"] == "direct-wrk")]:
        assert point["errors"] == 0 and point["throughput_img_s"] > 0
        assert point["triton"]["inference_count"] > 0
    measured = [p for p in round_["gateway"] if p["path"] not in ("paired-batch1", "gateway-tensor-wrk")]
    assert {(p["path"], p["concurrency"]) for p in measured} == {
        ("gateway-tensor", 1),
        ("gateway-tensor", 2),
        ("gateway-image", 1),
        ("gateway-image", 2),
    }
    # The same config on the native backend, swapped in and out through model control.
    (native,) = round_["backends"]
    assert (native["backend"], native["transport"], native["concurrency"]) == ("deploylab_ort", "http-shm", 2)
    assert native["errors"] == 0 and native["triton"]["inference_count"] >= native["requests"] > 0
    assert native["triton_processes"] == 1  # no stub processes: the engine runs inside tritonserver
    # Another instance layout, swapped in the same way: at saturation and at one client over plain HTTP.
    wide_sat, wide_c1 = round_["layouts"]
    assert {(p["layout"], p["transport"], p["concurrency"]) for p in (wide_sat, wide_c1)} == {
        ("1x2p", "http-shm", 2),
        ("1x2p", "http", 1),
    }
    assert wide_sat["triton_processes"] == 1 + 1  # tritonserver + the one instance's stub
    for point in (wide_sat, wide_c1):
        assert point["errors"] == 0 and point["triton"]["inference_count"] >= point["requests"] > 0
    (paired,) = [p for p in round_["gateway"] if p["path"] == "paired-batch1"]
    assert paired["pairs"] > 0 and paired["a_p50_ms"] > 0 and paired["b_p50_ms"] > 0
    for point in [p for p in round_["direct"] if p["path"] == "direct"] + measured:
        assert point["errors"] == 0, point["first_error"]
        assert point["requests"] > 0 and point["triton"]["inference_count"] >= point["requests"]
        assert point["triton"]["mean_executed_batch"] >= 1.0
    median = record["summary"]["median"]
    assert median["gw1_tensor_p50_delta_ms"] == paired["delta_p50_ms"]  # the target uses the paired one
    for key in (
        "served_over_inprocess",
        "gw1_tensor_over_direct",
        "gw1_tensor_p50_delta_ms",
        "gw1_tensor_p50_delta_unpaired_ms",
        "gw1_image_over_direct",
        "gw1_image_over_tensor",
        "gw1_tensor_over_inprocess",
        "gw1_tensor_over_direct_http",
        "gw1_tensor_wrk_over_own_client",
        "direct_http_wrk_over_own_client",
        "deploylab_ort_over_inprocess",
        "deploylab_ort_over_served",
        "direct_batch1_p50_over_inprocess",
        "layout_1x2p_over_served",
        "layout_1x2p_batch1_p50_over_inprocess",
    ):
        assert key in median
    assert set(record["summary"]["targets"]) == {
        "served_over_inprocess",
        "gw1_tensor_over_inprocess",
        "gw1_tensor_over_direct",
        "gw1_image_over_tensor",
        "gw1_tensor_p50_delta_ms",
        "direct_batch1_p50_over_inprocess",
    }
    serving = record["serving"]  # read back from the running Triton, not from the manifest
    threads = default_cpu_threads(2)
    assert (serving["instance_count"], serving["intra_op_threads"]) == (2, threads)  # the export default
    assert serving["queue_policy"] is False  # Triton's batcher may form batches ahead
    # The reference runs the engine in the usual layouts, which include the one Triton serves.
    assert {p["layout"] for p in round_["inprocess_before"]} == {"1x2", "2x1"}
    assert record["memory"]["triton"]["processes"] == 1 + 2  # tritonserver + one stub per instance
    assert record["memory"]["gateway"]["1"]["rss_mib"] > 0

    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# hand-written\n\n{BEGIN}\nold\n{END}\n\ntail stays\n")
    update_docs(docs, render(result))
    text = docs.read_text()
    assert text.startswith("# hand-written") and text.endswith("tail stays\n") and "old" not in text
    assert f"### {MODEL}" in text and "served_over_inprocess" in text
    assert "Batch-1 overhead measured paired" in text
    assert "| direct on deploylab_ort | http-shm | 2 |" in text
    assert "| direct as 1x2p | http | 1 |" in text
    assert "when swapped: deploylab_ort 1, 1x2p 2." in text  # processes of each swapped-in config
