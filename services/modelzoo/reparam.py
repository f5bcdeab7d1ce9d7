"""Structural re-parameterization of RepVGG (Ding et al. 2021, arXiv:2101.03697, Sec. 3.3).

Each training block sums three branches — 3x3 conv+BN, 1x1 conv+BN, identity BN. In eval mode they
are linear, so they fold into one 3x3 conv: per branch W' = (γ/σ)·W, b' = β − μ·γ/σ; the 1x1 kernel is
zero-padded to 3x3, the identity BN becomes a 3x3 identity kernel; the branches are then summed.
timm implements the fusion (`RepVggBlock.reparameterize`); this module owns the contract around it:
a deep copy, eval mode, and a structural check that no multi-branch block survives.
"""

from __future__ import annotations

from torch import nn

from .errors import ReparameterizationError


def reparameterize(model: nn.Module) -> nn.Module:
    """A deploy-form copy of `model`; the input is left untouched. Idempotent."""
    from timm.utils.model import reparameterize_model

    deployed = reparameterize_model(model.eval(), inplace=False)
    deployed.eval()
    check_single_branch(deployed)
    return deployed


def repvgg_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every RepVGG block (stem included) of a timm RepVGG model."""
    from timm.models.byobnet import RepVggBlock

    return [(name, m) for name, m in model.named_modules() if isinstance(m, RepVggBlock)]


def check_single_branch(model: nn.Module) -> None:
    """Raise unless every RepVGG block is exactly one 3x3 convolution (plus activation)."""
    blocks = repvgg_blocks(model)
    if not blocks:
        raise ReparameterizationError("model has no RepVGG blocks to check")
    bad = []
    for name, block in blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if len(convs) != 1 or convs[0].kernel_size != (3, 3) or norms:
            bad.append(name or "<root>")
    if bad:
        raise ReparameterizationError(f"blocks still multi-branch after fusion: {', '.join(bad[:5])}")
