"""Sweep planning, profiles and load shapes: data in, the right points and stages out."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploylab.loadtests.paired import estimate_seconds as estimate_paired
from deploylab.loadtests.paired import pairs_among
from deploylab.loadtests.plan import PROFILES, PointTemplate, estimated_seconds, get_profile, plan_points
from deploylab.loadtests.runs import customize_profile, existing_serving, resolve_targets
from deploylab.loadtests.stages import parse_users, stage_at, step_ramp_stages
from deploylab.loadtests.sweep import inprocess_estimate
from deploylab.services.modelzoo.catalog import MODEL_SETS
from deploylab.services.modelzoo.manifest import Manifest, ParityRecord, write_manifest
from deploylab.services.modelzoo.repository import ServingConfig
from pydantic import ValidationError


def test_points_run_closed_loop_first_so_open_loop_rates_can_use_them() -> None:
    points = plan_points(get_profile("full"), "resnet50", "default")
    loops = [p.loop for p in points]
    assert loops == sorted(loops, key=["closed", "ramp", "open"].index)
    assert len({p.id for p in points}) == len(points)
    assert {(p.target, p.api) for p in points} == {
        ("gateway", "classify"),
        ("gateway", "v2"),
        ("triton", "v2"),
    }


def test_without_a_gateway_only_triton_points_remain() -> None:
    points = plan_points(get_profile("full"), "resnet50", "default", with_gateway=False)
    assert points and all(p.target == "triton" for p in points)


@pytest.mark.parametrize(("profile", "budget_s"), [("full", 15 * 60), ("quick", 4.25 * 60)])
def test_default_set_fits_the_time_budget_on_paper(profile: str, budget_s: float) -> None:
    """Sweep + baselines, before export and start-up (~1.5 min on 2 cores), within the promised budget."""
    chosen = get_profile(profile)
    targets = resolve_targets([], "default")
    assert len(targets) == len(MODEL_SETS["default"]) + 1  # repvgg_a0: train and deploy
    total = sum(
        estimated_seconds(plan_points(chosen, t.model, t.variant)) + inprocess_estimate(chosen)
        for t in targets
    )
    pairs = pairs_among([t.triton_model for t in targets])
    assert len(pairs) == 4  # every claim's pair is in the default set
    total += estimate_paired(pairs, chosen.paired_rounds, chosen.paired_duration_s)
    assert total < budget_s


def test_point_templates_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="exactly one user count"):
        PointTemplate(target="gateway", api="classify", loop="closed", users=[1, 2])
    with pytest.raises(ValidationError, match="rate_fraction or arrival_rate"):
        PointTemplate(target="gateway", api="classify", loop="open", users=[1])
    with pytest.raises(ValidationError, match="v2 only"):
        PointTemplate(target="triton", api="classify", loop="closed", users=[1])


def test_customize_profile_replaces_closed_loop_users_on_every_path() -> None:
    custom = customize_profile(get_profile("quick"), users=[2, 3], window_s=9.0)
    closed = [(t.target, t.api, t.users[0]) for t in custom.templates if t.loop == "closed"]
    assert closed == [
        ("gateway", "classify", 2),
        ("gateway", "classify", 3),
        ("triton", "v2", 2),
        ("triton", "v2", 3),
    ]
    assert custom.window_s == 9.0
    assert [t for t in custom.templates if t.loop != "closed"] == [
        t for t in get_profile("quick").templates if t.loop != "closed"
    ]


def test_resolve_targets_expands_catalog_names_and_keeps_triton_names() -> None:
    names = [t.triton_model for t in resolve_targets(["repvgg_a0", "resnet18", "repvgg_a0_train"], None)]
    assert names == ["repvgg_a0_train", "repvgg_a0_deploy", "resnet18"]


def test_step_ramp_stages_follow_each_other() -> None:
    stages = step_ramp_stages([1, 2, 4], step_s=5)
    assert [(s.until_s, s.users) for s in stages] == [(5, 1), (10, 2), (15, 4)]
    assert stage_at(stages, 0.0) == stages[0]
    assert stage_at(stages, 7.5) == stages[1]
    assert stage_at(stages, 15.0) is None
    with pytest.raises(ValueError, match="at least one step"):
        step_ramp_stages([], 5)


def test_ramp_users_parse_from_the_command_line_form() -> None:
    assert parse_users("1, 2,8") == [1, 2, 8]
    with pytest.raises(ValueError, match="comma-separated"):
        parse_users("1,two")


def test_every_profile_is_described() -> None:
    assert all(p.description and p.templates for p in PROFILES.values())


def test_compare_keeps_the_serving_config_a_model_was_exported_with(tmp_path: Path) -> None:
    """A tuned config (instances, batch sizes) survives `deploylab compare`'s export step."""
    assert existing_serving(tmp_path, "resnet50") is None
    manifest = Manifest(
        model="resnet50",
        catalog_name="resnet50",
        variant="default",
        family="resnet",
        params=1,
        gmacs=1.0,
        input_size=224,
        num_classes=1000,
        onnx_bytes=1,
        onnx_sha256="0",
        opset=18,
        parity=ParityRecord(batch_sizes=[1], max_abs_error=0.0, max_scaled_error=0.0, rtol=1e-3, atol=1e-5),
        weights=None,
        versions={},
        onnx_fingerprint="0",
        exported_at="2026-01-01",
        export_seconds=1.0,
        serving={"instance_count": 1, "max_batch_size": 4, "preferred_batch_sizes": [4], "retired_knob": 3},
    )
    (tmp_path / "resnet50").mkdir()
    write_manifest(tmp_path / "resnet50", manifest)
    kept = existing_serving(tmp_path, "resnet50")
    assert kept == ServingConfig(instance_count=1, max_batch_size=4, preferred_batch_sizes=(4,))
