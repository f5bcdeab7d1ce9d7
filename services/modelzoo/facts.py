"""Size and cost facts measured on the built model: parameters and GMACs at the model's input size.

GMACs are counted with torch's `FlopCounterMode`, which reports FLOPs for convolutions and matmuls
with one multiply-add = 2 FLOPs; we divide by 2 to get multiply-accumulates, the unit model cards
(torchvision `_ops`, most papers' "FLOPs") actually quote. Elementwise ops (BN, activations, pooling)
are not counted, as in the model cards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .build import build_model, instantiate
from .catalog import ModelSpec


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN running stats are not parameters)."""
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, input_size: int = 224) -> float:
    """Multiply-accumulates, in billions, of one forward pass on a 1x3xHxW input."""
    sample = torch.zeros(1, 3, input_size, input_size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(sample)
    return counter.get_total_flops() / 2 / 1e9


@dataclass(frozen=True)
class ModelFacts:
    params: int
    gmacs: float


def measure_facts(spec: ModelSpec, variant: str | None = None) -> ModelFacts:
    """Params and GMACs of a catalog model without exporting it.

    Shapes are all that parameter and MAC counts depend on, so plain variants are built on the
    `meta` device (no memory, no init: VGG-16 in milliseconds). Re-parameterization computes real
    kernels, so RepVGG's deploy form is built and fused for real (a fraction of a second).
    """
    chosen = spec.variant(variant)
    if chosen.reparameterize:
        model = build_model(spec, chosen.name)
        return ModelFacts(count_params(model), count_gmacs(model, spec.input_size))
    with torch.device("meta"):
        model = instantiate(spec).eval()
    sample = torch.zeros(1, 3, spec.input_size, spec.input_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(sample)
    return ModelFacts(count_params(model), counter.get_total_flops() / 2 / 1e9)
