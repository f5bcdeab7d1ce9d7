"""The admission bench's accounting: wrk's result line, one summary for both clients, the targets."""

from __future__ import annotations

from collections import Counter

from deploylab.benchmarks.admission import PointSummary, check_targets, markdown_table
from deploylab.benchmarks.wrk import HttpRequest, _merge, _parse


def test_http_request_splits_path_headers_and_binary_body() -> None:
    raw = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: h:1\r\nInference-Header-Content-Length: 2\r\n"
        b"Content-Length: 6\r\n\r\n{}\x00\r\n\r\n"
    )
    request = HttpRequest.parse(raw)
    assert request.path == "/v2/models/m/infer"
    assert request.headers["Inference-Header-Content-Length"] == "2"
    assert request.body == b"{}\x00\r\n\r\n"  # the body may hold the separator itself


def test_wrk_results_of_both_behaviours_merge_into_one_point() -> None:
    honour = _parse(
        'noise\nWRK_RESULT {"statuses": {"200": 3, "429": 1}, "accepted_s": [0.1, 0.2, 0.3], '
        '"socket_errors": 0, "duration_s": 8.01}\n'
    )
    immediate = _parse(
        'WRK_RESULT {"statuses": {"429": 5}, "accepted_s": [], "socket_errors": 2, "duration_s": 8.02}'
    )
    merged = _merge([honour, immediate])
    assert merged.statuses == Counter({200: 3, 429: 6})
    assert merged.socket_errors == 2 and merged.duration_s == 8.02
    summary = PointSummary.of("wrk", dict(merged.statuses), merged.accepted_s, 1.0)
    assert summary.goodput_per_s == 3 and summary.refused_share == 6 / 9
    assert summary.accepted_p99_ms == 300.0  # nearest rank: a latency some request really had


def _point(concurrency: int, own: float, wrk: float, refused: float, p99: float) -> dict[str, object]:
    clients = [
        {"client": "deploylab", "goodput_per_s": own, "refused_share": refused, "accepted_p99_ms": p99},
        {"client": "wrk", "goodput_per_s": wrk, "refused_share": refused, "accepted_p99_ms": p99},
    ]
    answers = {"200": int(own * 8), **({"429": int(own * 8 * refused / (1 - refused))} if refused else {})}
    return {
        "concurrency": concurrency,
        "clients": clients,
        "mean_executed_batch": 2.0,
        "answers_all": answers,
    }


def test_targets_compare_the_default_with_the_best_static_point_and_the_slo() -> None:
    cpu = {"served_ms": 1.0, "refused_ms": 0.04, "refused_over_served": 0.04}
    record = {
        "models": {
            "m": {
                "knee": 16,
                "policies": {
                    "static": {
                        "points": [_point(4, 100, 100, 0, 50), _point(64, 200, 200, 0.5, 900)],
                        "slo_ms": 400,
                        "cpu": cpu,
                    },
                    "slo": {
                        "points": [_point(4, 100, 101, 0, 50), _point(64, 190, 170, 0.4, 380)],
                        "slo_ms": 400,
                        "cpu": cpu,
                    },
                },
            }
        }
    }
    targets = check_targets(record)
    # 4 clients: 100 of static's 100; 64 clients: 190 of the best static point with ≤ 64 clients, 200
    assert targets["m.goodput_vs_best_static"] == {"value": 0.95, "bound": 0.9, "met": True}
    assert targets["m.refused_share_below_knee"]["met"]
    assert targets["m.accepted_p99_ms_vs_slo"]["met"]
    assert not targets["m.wrk_vs_own_client_goodput"]["met"]  # 170 vs 190: 10.5 % apart
    assert targets["m.refusal_cpu_share"]["met"]
    assert targets["m.same_point_spread"]["value"] == 0.0  # 4 clients: 100 both times, nothing refused
    assert "| 64 | slo | 190.0 · 170.0 | 40.0% | 380 | 2.00 |" in markdown_table(record)
