"""Trained-like checkpoints of every catalog family pass parity at logits of ~1e4; wrong exports fail.

A "trained-like" checkpoint is the seeded architecture with its normalization layers' affine
parameters randomized, BatchNorm statistics re-estimated on a random batch and then perturbed, and
the classifier scaled so logits reach ~1e4: what a trained network shows the parity check (float
noise proportional to large activations), without downloading weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from deploylab.services.cli import app
from deploylab.services.modelzoo.build import build_model
from deploylab.services.modelzoo.catalog import CATALOG, ModelSpec, get_spec
from deploylab.services.modelzoo.export import export_onnx
from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.parity import (
    RTOL,
    ParityToleranceError,
    check_parity,
    random_batch,
    torch_logits,
)
from deploylab.services.modelzoo.repository import onnx_path
from onnx import numpy_helper
from torch import nn
from typer.testing import CliRunner

runner = CliRunner()

#: One model per family, the smallest where the family has several; the heavy two (vgg16's 550 MB of
#: weights, convnext_tiny's 4.5 GMACs) run the parity check directly on a small input instead of a
#: whole export at 224².
EXPORTED = ("resnet18", "mobilenet_v3_small")
HEAVY = ("vgg16", "convnext_tiny")
HEAVY_INPUT = 64
TARGET_LOGIT = 1e4
#: What a failed export must tell: the criterion, the worst logit, and the flags that relax it.
FAILURE_FRAGMENTS = (
    "criterion: per sample",
    "rtol=1e-09",
    "worst logit: sample",
    "--parity-rtol",
    "--parity-atol",
)


def make_trained_like(model: nn.Module, input_size: int = 224, seed: int = 0) -> nn.Module:
    """`model` (train form, eval mode on return) given trained-like parameters; see the module doc."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=gen) * (high - low) + low

    def normal(t: torch.Tensor, std: float) -> torch.Tensor:
        return torch.randn(t.shape, generator=gen) * std

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm)]
    batch_norms = [m for m in norms if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.copy_(uniform(norm.weight, 0.5, 1.5))
            norm.bias.copy_(normal(norm.bias, 0.2))
        for name, param in model.named_parameters():
            if name.endswith("layer_scale"):  # ConvNeXt: 1e-6 at init, O(0.1) once trained
                param.copy_(uniform(param, 0.05, 0.3))
        if batch_norms:
            for bn in batch_norms:
                bn.reset_running_stats()
                bn.momentum = None  # a cumulative average: the statistics of exactly this batch
            model.train()
            model(torch.randn(4, 3, input_size, input_size, generator=gen))
            for bn in batch_norms:
                bn.momentum = 0.1
                bn.running_var.mul_(uniform(bn.running_var, 0.7, 1.4))
                bn.running_mean.add_(normal(bn.running_mean, 0.1) * bn.running_var.sqrt())
        model.eval()
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        scale = float(np.abs(torch_logits(model, random_batch(4, input_size, seed=99))).max())
        head.weight.mul_(TARGET_LOGIT / scale)
        head.bias.copy_(normal(head.bias, TARGET_LOGIT / 20))
    return model


def save_trained_like(spec: ModelSpec, path: Path) -> Path:
    train_variant = next(v.name for v in spec.variants if not v.reparameterize)
    torch.save(make_trained_like(build_model(spec, train_variant)).state_dict(), path)
    return path


def export_cli(name: str, weights: Path, repository: Path, *flags: str) -> str:
    result = runner.invoke(
        app, ["export", name, "--weights", str(weights), "--repository", str(repository), *flags]
    )
    assert result.exit_code in (0, 1), result.output
    return result.output if result.exit_code == 0 else f"exit 1: {result.output}"


@pytest.fixture(scope="module")
def repvgg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """repvgg_a0 (train and deploy) exported from a trained-like checkpoint through the CLI."""
    root = tmp_path_factory.mktemp("repvgg")
    weights = save_trained_like(get_spec("repvgg_a0"), root / "repvgg_a0.pt")
    output = export_cli("repvgg_a0", weights, root / "repo", "--parity-atol", "1e-30")
    return root / "repo", weights, output


def test_the_catalog_families_are_all_covered() -> None:
    covered = {get_spec(name).family for name in (*EXPORTED, *HEAVY, "repvgg_a0")}
    assert covered == {spec.family for spec in CATALOG.values()}


def test_repvgg_train_and_deploy_with_logits_of_1e4_export(repvgg: tuple[Path, Path, str]) -> None:
    repository, _, output = repvgg
    assert not output.startswith("exit 1"), output
    for name in ("repvgg_a0_train", "repvgg_a0_deploy"):
        manifest = read_manifest(repository / name)
        assert manifest is not None, output
        assert manifest.parity.max_abs_logit is not None and manifest.parity.max_abs_logit > 1e3
        assert manifest.parity.max_scaled_error < RTOL
        assert (manifest.parity.rtol, manifest.parity.atol) == (RTOL, 1e-30)
        assert manifest.parity.criterion is not None and "rtol=0.001, atol=1e-30" in manifest.parity.criterion


@pytest.mark.parametrize("name", EXPORTED)
def test_a_trained_like_checkpoint_exports_with_the_default_criterion(name: str, tmp_path: Path) -> None:
    weights = save_trained_like(get_spec(name), tmp_path / f"{name}.pt")
    output = export_cli(name, weights, tmp_path / "repo")
    assert not output.startswith("exit 1"), output
    manifest = read_manifest(tmp_path / "repo" / name)
    assert manifest is not None and manifest.weights is not None
    assert manifest.parity.max_abs_logit is not None and manifest.parity.max_abs_logit > 1e3
    assert manifest.parity.max_scaled_error < RTOL


@pytest.mark.parametrize("name", HEAVY)
def test_heavy_families_with_logits_of_1e4_pass_parity(name: str, tmp_path: Path) -> None:
    model = make_trained_like(build_model(get_spec(name)), HEAVY_INPUT)
    onnx_file = tmp_path / f"{name}.onnx"
    export_onnx(model, onnx_file, HEAVY_INPUT)
    result = check_parity(model, onnx_file, HEAVY_INPUT)
    assert result.max_abs_logit > 1e3
    assert result.max_scaled_error < RTOL


def test_a_perturbed_weight_fails_parity_at_large_logits(repvgg: tuple[Path, Path, str]) -> None:
    repository, weights, _ = repvgg
    model = build_model(get_spec("repvgg_a0"), "deploy", weights)
    with torch.no_grad():
        model.stem.reparam_conv.weight.mul_(1.01)
    with pytest.raises(ParityToleranceError, match="worst logit: sample .*criterion: per sample"):
        check_parity(model, onnx_path(repository, "repvgg_a0_deploy"), 224)


def test_an_onnx_file_with_two_classes_swapped_fails_parity(
    repvgg: tuple[Path, Path, str], tmp_path: Path
) -> None:
    repository, weights, _ = repvgg
    model = build_model(get_spec("repvgg_a0"), "deploy", weights)
    logits = torch_logits(model, random_batch(1, 224, seed=0))[0]
    top, bottom = int(logits.argmax()), int(logits.argmin())
    graph = onnx.load(str(onnx_path(repository, "repvgg_a0_deploy")))
    for tensor in graph.graph.initializer:  # the classifier's rows: a label-order bug
        if tensor.name in ("head.fc.weight", "head.fc.bias"):
            values = numpy_helper.to_array(tensor).copy()
            values[[top, bottom]] = values[[bottom, top]]
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    corrupted = tmp_path / "corrupted.onnx"
    onnx.save(graph, str(corrupted))
    with pytest.raises(ParityToleranceError, match=f"class ({top}|{bottom})"):
        check_parity(model, corrupted, 224)


def test_a_failed_parity_names_criterion_worst_logit_and_flags_and_installs_nothing(
    repvgg: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, weights, _ = repvgg
    repository = tmp_path / "repo"
    output = export_cli("repvgg_a0", weights, repository, "--variant", "deploy", "--parity-rtol", "1e-9")
    assert output.startswith("exit 1"), output
    message = " ".join(output.split())  # rich wraps long lines
    for fragment in (
        "worst logit: sample",
        "criterion: per sample",
        "rtol=1e-09",
        "--parity-rtol",
        "--parity-atol",
    ):
        assert fragment in message, message
    model_dir = repository / "repvgg_a0_deploy"
    assert read_manifest(model_dir) is None
    assert not list(model_dir.rglob("*.onnx*"))


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (("--parity-rtol", "0"), "parity rtol must be > 0"),
        (("--parity-rtol", "0.5"), "parity rtol must be > 0 and at most 0.1"),
        (("--parity-rtol", "nan"), "parity rtol must be > 0"),
        (("--parity-atol", "-1e-6"), "parity atol must be > 0 and at most 1"),
        (("--parity-atol", "2"), "parity atol must be > 0 and at most 1"),
    ],
)
def test_nonsense_parity_tolerances_are_refused_before_any_build(
    flags: tuple[str, ...], fragment: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["export", "resnet18", "--repository", str(tmp_path / "repo"), *flags])
    assert result.exit_code == 1
    assert fragment in " ".join(result.output.split())
    assert not (tmp_path / "repo" / "resnet18").exists()
