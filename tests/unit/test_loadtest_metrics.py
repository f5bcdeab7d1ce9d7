"""Server-side views and cross-checks from scraped counters (exposition text as the servers write it)."""

from __future__ import annotations

from deploylab.loadtests.server_metrics import (
    ServerSnapshot,
    check_flags,
    cross_checks,
    gateway_view,
    triton_view,
)
from deploylab.services.measure.results import CounterCheck
from deploylab.services.measure.server_stats import ModelStats, parse_metrics, parse_model_stats


def triton_text(success: int, count: int, execs: int, queue_us: int, infer_us: int, request_us: int) -> str:
    labels = 'model="resnet18",version="1"'
    other = 'model="vgg16",version="1"'
    return f"""# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{{{labels}}} {success}
nv_inference_request_success{{{other}}} 999
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="resnet18",reason="BACKEND",version="1"}} 0
# TYPE nv_inference_count counter
nv_inference_count{{{labels}}} {count}
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{{labels}}} {execs}
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{{{labels}}} {request_us}
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{{labels}}} {queue_us}
# TYPE nv_inference_compute_input_duration_us counter
nv_inference_compute_input_duration_us{{{labels}}} 0
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{{labels}}} {infer_us}
# TYPE nv_inference_compute_output_duration_us counter
nv_inference_compute_output_duration_us{{{labels}}} 0
"""


def gateway_text(ok: int, errors: int, request_s: float, preprocess_s: float) -> str:
    route = 'model="resnet18",route="classify",variant="default"'
    return f"""# TYPE deploylab_gateway_requests_total counter
deploylab_gateway_requests_total{{model="resnet18",route="classify",status="200",variant="default"}} {ok}
deploylab_gateway_requests_total{{model="resnet18",route="classify",status="503",variant="default"}} {errors}
deploylab_gateway_requests_total{{model="resnet18",route="v2_infer",status="200",variant="default"}} 77
deploylab_gateway_requests_total{{model="resnet18",route="health",status="200",variant="default"}} 500
# TYPE deploylab_gateway_request_duration_seconds histogram
deploylab_gateway_request_duration_seconds_count{{{route}}} {ok + errors}
deploylab_gateway_request_duration_seconds_sum{{{route}}} {request_s}
# TYPE deploylab_gateway_preprocess_duration_seconds histogram
deploylab_gateway_preprocess_duration_seconds_count{{model="resnet18",variant="default"}} {ok}
deploylab_gateway_preprocess_duration_seconds_sum{{model="resnet18",variant="default"}} {preprocess_s}
"""


def stats(executions: dict[int, int], compute_ns: dict[int, int]) -> ModelStats:
    return parse_model_stats(
        {
            "model_stats": [
                {
                    "name": "resnet18",
                    "batch_stats": [
                        {"batch_size": size, "compute_infer": {"count": runs, "ns": compute_ns[size]}}
                        for size, runs in executions.items()
                    ],
                }
            ]
        }
    )


BEFORE = ServerSnapshot(
    parse_metrics(triton_text(10, 10, 10, 1_000, 50_000, 60_000), taken_at=0.0),
    stats({1: 10}, {1: 50_000_000}),
    parse_metrics(gateway_text(10, 0, 1.0, 0.1), taken_at=0.0),
)
AFTER = ServerSnapshot(
    parse_metrics(triton_text(110, 110, 60, 21_000, 1_050_000, 1_260_000), taken_at=10.0),
    stats({1: 30, 2: 20, 4: 10}, {1: 150_000_000, 2: 400_000_000, 4: 500_000_000}),
    parse_metrics(gateway_text(110, 4, 4.0, 0.6), taken_at=10.0),
)


def test_counters_are_found_under_either_spelling() -> None:
    snapshot = AFTER.triton
    assert snapshot.total("nv_inference_count", model="resnet18") == 110
    assert snapshot.total("nv_inference_count_total", model="resnet18") == 110
    assert snapshot.total("nv_inference_request_success") == 110 + 999


def test_triton_view_turns_cumulative_counters_into_per_request_numbers() -> None:
    view = triton_view(BEFORE, AFTER, "resnet18", window_s=10.0)
    assert (view.requests, view.inferences, view.executions) == (100, 100, 50)
    assert view.avg_batch_size == 2.0
    assert view.queue_ms == 0.2  # 20 ms of queueing over 100 requests
    assert view.compute_infer_ms == 10.0
    assert view.request_ms == 12.0
    assert view.throughput_rps == 10.0
    assert [(b.batch_size, b.executions, b.compute_infer_ms_mean) for b in view.batches] == [
        (1, 20, 5.0),
        (2, 20, 20.0),
        (4, 10, 50.0),
    ]


def test_gateway_view_counts_one_route_and_its_errors() -> None:
    view = gateway_view(BEFORE, AFTER, "classify", "resnet18", "default", window_s=10.0)
    assert view is not None
    assert (view.requests, view.errors) == (104, 4)
    assert view.request_ms is not None and abs(view.request_ms - 3000 / 104) < 1e-3
    assert view.preprocess_ms == 5.0
    other_route = gateway_view(BEFORE, AFTER, "v2", "resnet18", "default", 10.0)
    assert other_route is not None and other_route.requests == 0  # health and v2 traffic are not classify


def test_gateway_view_is_none_without_a_gateway_in_the_path() -> None:
    no_gateway = ServerSnapshot(BEFORE.triton, BEFORE.batches, None)
    assert gateway_view(no_gateway, AFTER, "classify", "resnet18", "default", 10.0) is None


def test_cross_checks_flag_a_mismatch_over_five_percent() -> None:
    gateway = gateway_view(BEFORE, AFTER, "classify", "resnet18", "default", 10.0)
    triton = triton_view(BEFORE, AFTER, "resnet18", 10.0)
    agreeing = cross_checks(104, 100, gateway, triton, "classify")
    assert [c.flagged for c in agreeing] == [False, False]
    assert check_flags(agreeing) == []
    disagreeing = cross_checks(104, 94, gateway, triton, "classify")  # Triton saw 100, Locust 94 successes
    assert [(c.source, c.flagged) for c in disagreeing] == [("gateway", False), ("triton", True)]
    assert "triton counted 100 requests, Locust 94" in check_flags(disagreeing)[0]


def test_counter_check_tolerates_exactly_five_percent() -> None:
    assert not CounterCheck.compare("triton", "x", 100, 105).flagged
    assert CounterCheck.compare("triton", "x", 100, 106).flagged
    assert CounterCheck.compare("gateway", "x", 0, 1).flagged
