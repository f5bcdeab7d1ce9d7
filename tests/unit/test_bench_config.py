"""The bench reports the serving config Triton is running, in ServingConfig's names."""

from __future__ import annotations

import pytest
from deploylab.benchmarks.bench import served_config
from deploylab.services.modelzoo.repository import InstanceLayout


def test_the_bench_names_the_config_triton_serves_not_the_manifest() -> None:
    triton_json = {
        "backend": "python",
        "max_batch_size": 8,
        "instance_group": [{"count": 3, "kind": "KIND_CPU"}, {"count": 1, "kind": "KIND_CPU"}],
        "dynamic_batching": {
            "max_queue_delay_microseconds": 500,
            "preferred_batch_size": [4, 8],
            "default_queue_policy": {"default_timeout_microseconds": "5000000"},
        },
        "parameters": {"intra_op_thread_count": {"string_value": "1"}, "pipeline": {"string_value": "1"}},
    }
    assert served_config(triton_json) == {
        "backend": "python",
        "max_batch_size": 8,
        "instance_count": 4,
        "intra_op_threads": 1,
        "dynamic_batching": True,
        "max_queue_delay_us": 500,
        "preferred_batch_sizes": [4, 8],
        "pipeline": True,
        "queue_policy": True,
    }


def test_a_config_without_groups_batching_or_threads_reads_as_tritons_defaults() -> None:
    unset_threads = {"intra_op_thread_count": {"string_value": ""}}
    config = served_config({"max_batch_size": 0, "parameters": unset_threads})
    assert config["instance_count"] == 1  # Triton's default: one instance
    assert config["intra_op_threads"] == 0  # ONNX Runtime decides
    assert (config["dynamic_batching"], config["max_queue_delay_us"]) == (False, 0)
    assert config["pipeline"] is False
    assert config["queue_policy"] is False
    # What Triton reports when no policy was written: its defaults, which still batch ahead.
    defaults = {"timeout_action": "REJECT", "default_timeout_microseconds": "0", "max_queue_size": 0}
    reported = served_config({"dynamic_batching": {"default_queue_policy": defaults}})
    assert reported["queue_policy"] is False


@pytest.mark.parametrize(
    ("text", "layout"),
    [
        ("1x2p", InstanceLayout(1, 2, True)),
        ("2x1", InstanceLayout(2, 1, False)),
        (" 4x1 ", InstanceLayout(4, 1)),
    ],
)
def test_a_layout_reads_as_instances_threads_and_pipelining(text: str, layout: InstanceLayout) -> None:
    assert InstanceLayout.parse(text) == layout
    assert InstanceLayout.parse(layout.label) == layout


@pytest.mark.parametrize("text", ["wide", "1x", "0x2", "2x0", "1x2q", "1*2"])
def test_a_layout_that_is_not_instances_x_threads_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="INSTANCESxTHREADS"):
        InstanceLayout.parse(text)
