# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from monai_tonno import TomographicInferer
from monai_tonno.networks import create_slice_classifier, fold_batch_norm
from monai_tonno.visualize import SliceCAM


def randomised_statistics(network: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so that a wrong fold shows."""
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            size = module.running_mean.shape
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return network


def count(network: nn.Module, kind: type) -> int:
    return sum(type(module) is kind for module in network.modules())


@pytest.mark.parametrize("norm", ["frozen_batch", "batch"])
def test_folded_network_gives_the_same_logits_without_batch_norm(norm):
    torch.manual_seed(0)
    network = randomised_statistics(create_slice_classifier("resnet10t", 2, norm)).eval()
    kind = FrozenBatchNorm2d if norm == "frozen_batch" else nn.BatchNorm2d
    before = count(network, kind)
    folded = fold_batch_norm(network)
    assert before > 10 and count(folded, kind) == 0
    assert count(network, kind) == before  # the original is untouched
    slices = torch.randn(3, 2, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(folded(slices), network(slices), rtol=1e-4, atol=1e-4)


def test_cam_layers_and_the_inferer_see_the_same_network():
    torch.manual_seed(0)
    network = randomised_statistics(create_slice_classifier("resnet10t", 1, "frozen_batch")).eval()
    folded = fold_batch_norm(network)
    slices = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(
        SliceCAM(folded, "layer2")(slices), SliceCAM(network, "layer2")(slices), rtol=1e-3, atol=1e-5
    )
    volume = torch.rand(1, 1, 12, 12, 12)
    inferer = TomographicInferer(4, 6, 24)
    with torch.no_grad():
        torch.testing.assert_close(inferer(volume, folded), inferer(volume, network), rtol=1e-3, atol=1e-3)


def test_what_is_not_a_fixed_affine_map_is_left_alone():
    group = create_slice_classifier("resnet10t", 1, "group").eval()
    assert count(fold_batch_norm(group), nn.GroupNorm) == count(group, nn.GroupNorm) > 0
    training = create_slice_classifier("resnet10t", 1, "batch").train()
    assert count(fold_batch_norm(training), nn.BatchNorm2d) == count(training, nn.BatchNorm2d)
    # a normalisation after an addition (not directly after a convolution) stays
    residual = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    assert count(fold_batch_norm(residual), nn.BatchNorm2d) == 1


def test_untraceable_network_is_named():
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.norm(self.conv(x)) if x.sum() > 0 else x

    with pytest.raises(ValueError, match="torch.fx can trace"):
        fold_batch_norm(DataDependent().eval())
