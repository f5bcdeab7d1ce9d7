"""Build catalog models as torch modules in eval mode, from random init or a weights file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .catalog import ModelSpec
from .errors import WeightsError
from .reparam import reparameterize

RANDOM_INIT_SEED = 0


def build_model(spec: ModelSpec, variant: str | None = None, weights: Path | None = None) -> nn.Module:
    """The model for `spec`/`variant` in eval mode; weights (train-form) loaded before any reparam.

    Weights always describe the *training* architecture (that is what checkpoints hold); the deploy
    form is derived from them, so one file serves both RepVGG variants.
    """
    chosen = spec.variant(variant)
    # Seeded (without touching the caller's RNG) so a random-init export is reproducible.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = instantiate(spec)
    if weights is not None:
        load_weights(model, weights)
    model.eval()
    if chosen.reparameterize:
        model = reparameterize(model)
    return model


def instantiate(spec: ModelSpec) -> nn.Module:
    """The untrained architecture (random init on the current default device)."""
    if spec.source == "torchvision":
        import torchvision

        builder = getattr(torchvision.models, spec.builder)
        return builder(weights=None, num_classes=spec.num_classes)  # type: ignore[no-any-return]
    import timm

    return timm.create_model(spec.builder, pretrained=False, num_classes=spec.num_classes)  # type: ignore[no-any-return]


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state_dict, or a checkpoint dict holding one, strictly; errors name the bad keys.

    `weights_only=True` refuses pickled code: a weights file must never be able to run anything.
    """
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights file {path}: {first_line}") from None
    state = _extract_state_dict(loaded, path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_preview(mismatched)}")
    if problems:
        raise WeightsError(f"weights file {path} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


def _extract_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict):
        raise WeightsError(f"weights file {path} holds a {type(loaded).__name__}, not a state_dict")
    if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return _strip_prefix(loaded)
    for key in _CHECKPOINT_KEYS:
        inner = loaded.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return _strip_prefix(inner)
    raise WeightsError(
        f"weights file {path} is a dict without a state_dict "
        f"(looked for tensors at the top level and under {', '.join(_CHECKPOINT_KEYS)})"
    )


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix DataParallel/DDP checkpoints carry."""
    if state and all(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} … (+{len(items) - limit} more)"
