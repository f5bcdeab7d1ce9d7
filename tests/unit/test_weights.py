"""`--weights FILE`: state_dicts and checkpoints load; anything else fails with a message naming why."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from deploylab.services.modelzoo.build import build_model, load_weights
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.errors import WeightsError

SPEC = get_spec("mobilenet_v3_small")


@pytest.fixture(scope="module")
def trained_state() -> dict[str, torch.Tensor]:
    """A state_dict that differs from the seeded random init (as a real checkpoint would)."""
    model = build_model(SPEC)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.state_dict()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.ones(1, 3, 224, 224))


def test_plain_state_dict_loads(tmp_path: Path, trained_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "w.pt"
    torch.save(trained_state, path)
    model = build_model(SPEC, weights=path)
    assert torch.equal(model.classifier[3].weight, trained_state["classifier.3.weight"])
    assert not torch.equal(logits(model), logits(build_model(SPEC)))


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_checkpoint_dict_holding_a_state_dict_loads(
    tmp_path: Path, trained_state: dict[str, torch.Tensor], key: str
) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({key: trained_state, "epoch": 90, "optimizer": {"lr": 0.1}}, path)
    model = build_model(SPEC, weights=path)
    assert torch.equal(model.classifier[3].bias, trained_state["classifier.3.bias"])


def test_data_parallel_prefix_is_stripped(tmp_path: Path, trained_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in trained_state.items()}, path)
    build_model(SPEC, weights=path)


def test_missing_and_unexpected_keys_are_named(
    tmp_path: Path, trained_state: dict[str, torch.Tensor]
) -> None:
    state = dict(trained_state)
    del state["classifier.3.weight"]
    state["extra.head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        build_model(SPEC, weights=path)
    assert "missing keys: classifier.3.weight" in str(info.value)
    assert "unexpected keys: extra.head.weight" in str(info.value)


def test_shape_mismatch_is_named_with_both_shapes(
    tmp_path: Path, trained_state: dict[str, torch.Tensor]
) -> None:
    state = dict(trained_state)
    state["classifier.3.weight"] = torch.zeros(10, 1024)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(
        WeightsError, match=r"classifier\.3\.weight \(file \(10, 1024\), model \(1000, 1024\)\)"
    ):
        build_model(SPEC, weights=path)


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save(build_model(get_spec("resnet18")).state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit the model"):
        build_model(SPEC, weights=path)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused_by_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        build_model(SPEC, weights=path)


def test_non_dict_and_garbage_and_missing_files(tmp_path: Path) -> None:
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_weights(build_model(SPEC), tensor)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_weights(build_model(SPEC), garbage)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(build_model(SPEC), tmp_path / "absent.pt")


def test_repvgg_deploy_is_fused_from_the_loaded_training_weights(tmp_path: Path) -> None:
    spec = get_spec("repvgg_a0")
    train = build_model(spec, "train")
    with torch.no_grad():
        for p in train.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "repvgg.pt"
    torch.save(train.state_dict(), path)
    deployed = build_model(spec, "deploy", weights=path)
    reference = build_model(spec, "train", weights=path)
    torch.testing.assert_close(logits(deployed), logits(reference), rtol=1e-4, atol=1e-5)
