"""The measurement core: one percentile definition under every front-end, and the facts it reads once."""

from __future__ import annotations

import io
import json
import math
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from deploylab.services.chaos.load import LoadSummary, Outcome
from deploylab.services.gateway import limits
from deploylab.services.measure.images import PHOTOS, sample_images, sample_jpeg
from deploylab.services.measure.machine import machine_info
from deploylab.services.measure.names import served_model, served_models
from deploylab.services.measure.outcomes import LatencyLog, Tally
from deploylab.services.measure.percentiles import percentile, summarize_ms
from deploylab.services.measure.ports import free_ports
from deploylab.services.measure.server_stats import parse_model_stats
from deploylab.services.modelzoo.catalog import UnknownModelError
from deploylab.services.perf.inprocess import LoopStats
from deploylab.services.perf.load import LoadTarget, _summarize
from PIL import Image

#: Latencies in ms, multiples of 0.25 (exact in binary, so ms ↔ s conversions round back exactly),
#: skewed like real ones, with a few slow outliers so p99 differs between percentile definitions.
_RNG = random.Random(7)
SAMPLES_MS = [round(_RNG.lognormvariate(2.0, 0.4) * 4) / 4 for _ in range(997)] + [80.0, 95.5, 120.25]
_RNG.shuffle(SAMPLES_MS)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_percentile_is_nearest_rank_always_a_sample_never_interpolated() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # numpy's default would say 2.5
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0
    assert percentile(range(1, 101), 99) == 99  # 99.01 interpolated
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)
    for q in (50, 90, 95, 99):
        assert percentile(SAMPLES_MS, q) == nearest_rank(SAMPLES_MS, q)
        assert percentile(SAMPLES_MS, q) in SAMPLES_MS


def gateway_p50_p99(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return limits.nearest_rank(ordered, 0.5), limits.nearest_rank(ordered, 0.99)


def locust_front_end_p50_p99(samples_ms: list[float]) -> tuple[float, float]:
    """The Locust session's summary of requests recorded through Locust's own request event, on a
    worker that ships them to its master. In a child process: importing Locust monkey-patches the
    standard library for gevent, which this test process must not get."""
    script = textwrap.dedent(
        """
        import json, sys
        import locust
        from deploylab.loadtests import locustfile as scenarios
        from deploylab.loadtests.session import StatsMark, latency_between
        name = "classify resnet50:default"
        scenarios.keep_latencies()  # as a session does
        for ms in json.loads(sys.stdin.read()):
            locust.events.request.fire(request_type="POST", name=name, response_time=ms,
                                       response_length=0, exception=None, context={})
        data = {}
        locust.events.report_to_master.fire(client_id="worker-1", data=data)  # the worker ships
        assert scenarios.LATENCIES.count(name) == 0
        locust.events.worker_report.fire(client_id="worker-1", data=data)  # the master merges
        end = StatsMark(0.0, 0, 0, scenarios.LATENCIES.count(name))
        latency = latency_between(name, StatsMark.zero(), end)
        print(json.dumps([latency.p50, latency.p99]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(samples_ms),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    p50, p99 = json.loads(done.stdout.strip().splitlines()[-1])
    return p50, p99


def test_every_front_end_reports_the_same_p50_and_p99_for_the_same_samples() -> None:
    seconds = [ms / 1e3 for ms in SAMPLES_MS]
    expected = (nearest_rank(SAMPLES_MS, 50), nearest_rank(SAMPLES_MS, 99))

    target = LoadTarget("http", "http://127.0.0.1:1", "resnet50")
    bench = _summarize(target, 4, 0.0, [Tally(seconds, 0, None, 1.0)])
    inprocess = LoopStats(images=len(seconds), wall_s=1.0, latencies_s=np.array(seconds))
    chaos = LoadSummary.of([Outcome(sent_at=0.0, latency_s=s, status=200) for s in seconds])

    reported = {
        "bench (threads/epoll)": (bench.p50_ms, bench.p99_ms),
        "in-process baseline": (inprocess.percentile_ms(50), inprocess.percentile_ms(99)),
        "chaos (aiohttp)": (chaos.ok_p50_ms, chaos.ok_p99_ms),
        "Locust session": locust_front_end_p50_p99(SAMPLES_MS),
        # The gateway's slo admission reads its own p99 (it sits below the core, so it keeps a copy).
        "gateway admission": gateway_p50_p99(SAMPLES_MS),
    }
    for front_end, (p50, p99) in reported.items():
        assert (round(p50, 2), round(p99, 2)) == expected, front_end


def test_latency_summary_and_log_windows() -> None:
    summary = summarize_ms([4.0, 1.0, 3.0, 2.0])
    assert (summary.count, summary.p50, summary.p99, summary.max, summary.mean) == (4, 2.0, 4.0, 4.0, 2.5)
    assert math.isnan(summarize_ms([]).p50)
    log = LatencyLog()
    log.extend("a", [1.0, 2.0])
    mark = log.count("a")
    log.add("a", 3.0)
    assert log.between("a", mark) == [3.0] and log.between("b", 0) == []
    assert log.drain() == {"a": [1.0, 2.0, 3.0]} and log.count("a") == 0


def test_a_tally_keeps_the_first_error_and_counts_them_all() -> None:
    tally = Tally()
    tally.fail("first")
    tally.fail("second")
    assert (tally.errors, tally.first_error) == (2, "first")


def test_triton_statistics_parse_once_and_subtract_per_batch_size() -> None:
    def payload(execs: dict[int, int], success: int) -> dict[str, object]:
        return {
            "model_stats": [
                {
                    "name": "resnet50",
                    "inference_count": sum(size * n for size, n in execs.items()),
                    "execution_count": sum(execs.values()),
                    "inference_stats": {"success": {"count": success}, "queue": {"ns": 1000 * success}},
                    "batch_stats": [
                        {"batch_size": size, "compute_infer": {"count": n, "ns": 1_000_000 * size * n}}
                        for size, n in execs.items()
                    ],
                }
            ]
        }

    window = parse_model_stats(payload({1: 10, 4: 5}, 30)) - parse_model_stats(payload({1: 10}, 10))
    assert window.executed_batches == {4: 5} and window.batch_compute_ns == {4: 20_000_000}
    assert window.mean_executed_batch == 4.0 and window.success_count == 20
    assert window.as_dict()["executed_batches"] == {"4": 5}


def test_names_resolve_one_model_or_every_variant() -> None:
    assert served_model("repvgg_a0").triton_model == "repvgg_a0_deploy"
    assert served_model("repvgg_a0_train").triton_model == "repvgg_a0_train"
    assert served_model("resnet50").variant == "default"
    assert [m.triton_model for m in served_models("repvgg_a0")] == ["repvgg_a0_train", "repvgg_a0_deploy"]
    assert [m.triton_model for m in served_models("repvgg_a0_train")] == ["repvgg_a0_train"]
    with pytest.raises(UnknownModelError):
        served_model("no_such_model")


def test_sample_images_are_the_photos_at_their_sizes() -> None:
    images = sample_images(len(PHOTOS))
    assert sample_jpeg() == images[0].jpeg
    for image, spec in zip(images, PHOTOS, strict=True):
        with Image.open(io.BytesIO(image.jpeg)) as opened:
            assert opened.format == "JPEG" and opened.size == (spec.width, spec.height)


def test_free_ports_are_distinct_and_machine_facts_name_the_host() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(1024 < p < 65536 for p in ports)
    info = machine_info()
    assert info.cpu_model and info.logical_cores >= 1 and info.usable_cores
    assert {"python", "numpy", "locust"} <= set(info.libraries)
