"""RepVGG structural re-parameterization is exact — checked where a wrong fusion would show.

Default BN statistics (mean 0, var 1, γ 1, β 0) make the BN branches near-identity, so a fusion that
forgets σ or β still matches. Every test here randomizes BN running stats and affine parameters first.
"""

from __future__ import annotations

import pytest
import torch
from deploylab.services.modelzoo.build import build_model
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.errors import ReparameterizationError
from deploylab.services.modelzoo.facts import count_params
from deploylab.services.modelzoo.reparam import check_single_branch, reparameterize, repvgg_blocks
from torch import nn


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.3)


@pytest.fixture(scope="module")
def trained_a0() -> nn.Module:
    model = build_model(get_spec("repvgg_a0"), "train")
    randomize_batchnorm(model)
    return model.eval()


def scaled_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |Δ| relative to the largest logit: randomized BN makes logits large, so compare at scale."""
    return float((actual - expected).abs().max() / expected.abs().max())


def test_deploy_logits_equal_train_logits_with_randomized_bn(trained_a0: nn.Module) -> None:
    deployed = reparameterize(trained_a0)
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        train_out, deploy_out = trained_a0(x), deployed(x)
    assert train_out.abs().max() > 1e-3  # logits are not degenerate, so the comparison means something
    assert scaled_error(deploy_out, train_out) < 1e-5
    assert (deploy_out.argmax(1) == train_out.argmax(1)).all()


def test_fusion_is_exact_in_float64(trained_a0: nn.Module) -> None:
    """In double precision the residue is ~1e-15: the fusion is algebra, not an approximation."""
    train64 = build_model(get_spec("repvgg_a0"), "train").double()
    train64.load_state_dict(
        {k: v.double() if v.is_floating_point() else v for k, v in trained_a0.state_dict().items()}
    )
    train64.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.inference_mode():
        assert scaled_error(reparameterize(train64)(x), train64(x)) < 1e-12


def test_every_deploy_block_is_a_single_3x3_conv(trained_a0: nn.Module) -> None:
    deployed = reparameterize(trained_a0)
    blocks = repvgg_blocks(deployed)
    assert len(blocks) == 22  # stem + 2 + 4 + 14 + 1 blocks in A0
    for _, block in blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 1 and convs[0].kernel_size == (3, 3)
        assert not [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]


def test_param_counts_train_to_deploy_match_the_paper(trained_a0: nn.Module) -> None:
    assert count_params(trained_a0) == 9_108_968
    assert count_params(reparameterize(trained_a0)) == 8_309_384


def test_reparameterize_leaves_the_training_model_intact_and_is_idempotent(
    trained_a0: nn.Module,
) -> None:
    deployed = reparameterize(trained_a0)
    assert count_params(trained_a0) == 9_108_968
    again = reparameterize(deployed)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), deployed(x))


def test_training_form_fails_the_single_branch_check(trained_a0: nn.Module) -> None:
    with pytest.raises(ReparameterizationError, match="multi-branch"):
        check_single_branch(trained_a0)


def test_a_fusion_that_drops_the_identity_branch_is_caught(trained_a0: nn.Module) -> None:
    """The check above can fail: skip the identity BN and the randomized stats expose it."""
    broken = reparameterize(trained_a0)
    for (_, train_block), (_, deploy_block) in zip(
        repvgg_blocks(trained_a0), repvgg_blocks(broken), strict=True
    ):
        identity = getattr(train_block, "identity", None)
        if isinstance(identity, nn.BatchNorm2d):
            kernel, bias = train_block._fuse_bn_tensor(identity)  # what the identity contributed
            deploy_block.reparam_conv.weight.data -= kernel
            deploy_block.reparam_conv.bias.data -= bias
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert scaled_error(broken(x), trained_a0(x)) > 1e-3
