"""The bench's generated Markdown: what each table shows from a result, without measuring."""

from __future__ import annotations

from typing import Any

from deploylab.benchmarks.report import render

PHONE = {
    "megabytes": 2.99875575,
    "default_cpu_ms": 36.39,
    "full_decode_cpu_ms": 93.07,
    "cpu_ratio": 0.391,
    "max_abs_error": 0.0700,
    "mean_abs_error": 0.0038,
    "top1_agreement": 1.0,
    "top5_overlap": 0.8,
}


def result(**sections: Any) -> dict[str, Any]:
    machine = {"cpu": "Xeon", "cores": 2, "load_average_at_start": [0.5], "versions": {"onnxruntime": "1"}}
    options = {"rounds": 1, "duration_s": 1.0, "threads": 2}
    return {"created": "2026-12-06", "machine": machine, "options": options, "models": {}, **sections}


def test_the_jpeg_table_shows_cpu_against_a_full_decode_and_what_the_shortcut_costs() -> None:
    text = render(result(jpeg_path={"resnet50": {"sizes": {"phone_4000x3000": PHONE}}}))
    assert "### JPEG preprocessing" in text
    assert "| resnet50 | phone_4000x3000 | 3.00 | 36.4 (93.1) | 0.39 | 0.070 | 1, 0.8 |" in text


def test_a_result_without_jpeg_measurements_has_no_jpeg_table() -> None:
    assert "JPEG" not in render(result())
