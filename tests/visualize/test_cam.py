# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest
import torch
from monai.visualize import GradCAM, GradCAMpp
from torch import nn

from monai_tonno import TomographicInferer
from monai_tonno.inferers import SliceCAMInferer
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.visualize import SliceCAM, average_pooling_cam


class SmallNet(nn.Module):
    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer1 = nn.Sequential(nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layer2(self.layer1(x))).flatten(1))


class BrightSpotNet(SmallNet):
    """Responds to bright regions: local means above 0.5 raise the logit."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.layer1[0].weight.fill_(1 / 9)
            self.layer1[0].bias.fill_(-0.5)
            self.layer2[0].weight.fill_(1 / 54)
            self.layer2[0].bias.zero_()
            self.fc.weight.fill_(1.0)
            self.fc.bias.zero_()


def hooked(network: nn.Module, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations and gradients of the logit, one slice at a time, with plain hooks."""
    activations, gradients = [], []
    store = {}
    handle = dict(network.named_modules())[layer].register_forward_hook(lambda m, i, o: store.update(a=o))
    for item in x:
        logit = network(item[None])[0, 0]
        (grad,) = torch.autograd.grad(logit, store["a"])
        activations.append(store["a"][0].detach())
        gradients.append(grad[0])
    handle.remove()
    return torch.stack(activations), torch.stack(gradients)


def test_layercam_matches_hooks_and_the_grad_cam_package_formula():
    network = SmallNet().eval()
    x = torch.rand(5, 1, 16, 16)
    maps = SliceCAM(network, "layer2", "layercam")(x)
    activations, gradients = hooked(network, "layer2", x)
    direct = torch.relu((torch.relu(gradients) * activations).sum(1))
    torch.testing.assert_close(maps, direct)
    # pytorch-grad-cam's LayerCAM.get_cam_image: np.maximum(grads, 0) * activations, summed over channels,
    # then BaseCAM clips at 0 (computed here from that formula; the package is not a dependency)
    a, g = activations.numpy(), gradients.numpy()
    reference = np.maximum((np.maximum(g, 0) * a).sum(axis=1), 0)
    np.testing.assert_allclose(maps.numpy(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method, monai_class", [("gradcam", GradCAM), ("gradcampp_monai", GradCAMpp)])
def test_gradcam_variants_match_monai(method, monai_class):
    network = SmallNet().eval()
    x = torch.rand(3, 1, 16, 16)
    ours = SliceCAM(network, "layer2", method)(x)
    # one slice per call: MONAI's GradCAM++ broadcasts its score wrongly over a batch
    reference = monai_class(nn_module=network, target_layers="layer2")
    theirs = torch.cat([reference.compute_map(item[None], class_idx=0) for item in x])
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-6)


def test_gradcampp_is_the_papers_formula_as_the_grad_cam_package_computes_it():
    """Chattopadhay et al. (2018), eq. 19: alpha = g^2 / (2 g^2 + sum_ab(A) g^3), which pytorch-grad-cam's
    GradCAMPlusPlus.get_cam_weights computes (here from its formula; the package is not a dependency); the paper
    weights with ReLU(exp(y) g), pytorch-grad-cam with ReLU(g), so the maps differ by the factor exp(y)."""
    network = SmallNet().eval()
    x = torch.rand(4, 1, 16, 16)  # at layer1 the gradients vary over the map (layer2 follows), so the variants differ
    maps = SliceCAM(network, "layer1", "gradcampp")(x)
    activations, gradients = hooked(network, "layer1", x)
    a, g = activations.double().numpy(), gradients.double().numpy()
    aij = g**2 / (2 * g**2 + a.sum(axis=(2, 3))[:, :, None, None] * g**3 + 1e-7)
    aij = np.where(g != 0, aij, 0)
    weights = (np.maximum(g, 0) * aij).sum(axis=(2, 3))
    grad_cam_package = np.maximum((weights[:, :, None, None] * a).sum(axis=1), 0)
    logits = network(x)[:, 0].detach().double().numpy()
    np.testing.assert_allclose(maps.numpy(), np.exp(logits)[:, None, None] * grad_cam_package, rtol=1e-4, atol=1e-7)
    monai_variant = SliceCAM(network, "layer1", "gradcampp_monai")(x)
    assert not torch.allclose(maps, monai_variant, rtol=1e-3)  # the two denominators weight channels differently


def test_cam_under_no_grad_removes_its_hooks():
    network = SmallNet().eval()
    with torch.no_grad():
        maps = SliceCAM(network, "layer1")(torch.rand(2, 1, 8, 8))
    assert maps.shape == (2, 8, 8) and float(maps.abs().sum()) > 0
    assert all(not m._forward_hooks for m in network.modules())


def test_bad_layer_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"no layer 'layer7'.*\['layer1', 'layer2', 'pool', 'fc'\]"):
        SliceCAM(SmallNet(), "layer7")
    with pytest.raises(ValueError, match="method"):
        SliceCAM(SmallNet(), "layer1", "scorecam")


def bright_ball(shape=(20, 20, 20), centre=(13, 6, 9), radius=3.0) -> torch.Tensor:
    grid = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij"), -1)
    return ((grid - torch.tensor(centre, dtype=torch.float32)).norm(dim=-1) <= radius).float()[None, None]


def peak(volume: torch.Tensor) -> torch.Tensor:
    return torch.tensor(torch.unravel_index(volume.argmax(), volume.shape)[2:], dtype=torch.float32)


@pytest.mark.parametrize(
    "inferer",
    [
        SliceCAMInferer("layercam", "layer1", axis=2, slice_size=20),
        SliceCAMInferer("gradcam", "layer2", axis="mean", slice_size=20),
        TomographicInferer(60, 16, 24, mode="averaged_cam", cam_layer="layer1", sw_batch_size=128),
        TomographicInferer(60, 16, 24, mode="tomographic_cam", cam_layer="layer2", sw_batch_size=128),
    ],
)
def test_cams_peak_at_the_bright_region(inferer):
    volume = bright_ball()
    network = BrightSpotNet().eval()
    with torch.no_grad():  # as inside SupervisedEvaluator: the CAMs enable gradients themselves
        heatmap = inferer(volume, network)
    assert heatmap.shape == volume.shape
    assert all(not m._forward_hooks for m in network.modules())
    assert float((peak(heatmap) - torch.tensor([13.0, 6.0, 9.0])).norm()) <= 3.0  # inside the ball


def correlation(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    a, b = a.reshape(-1)[mask.reshape(-1)].double(), b.reshape(-1)[mask.reshape(-1)].double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_figure_4_averaged_blurs_and_tomographic_keeps_edges():
    """Paper Figure 4 with numbers: correlation with the input inside the field of view, 24^3 ellipsoids,
    L = 100, M = 48, 48^2 slices. Measured: Averaged 0.959 / 0.683 / 0.508 and Tomographic 0.851 / 0.900 / 0.836
    for k = 1 / 4 / 16."""
    from monai_tonno.data import ellipsoid_phantom

    volume = ellipsoid_phantom((24, 24, 24), scale=0.8)[None]
    inside = VolumeGeometry((24, 24, 24)).voxel_points().norm(dim=1).reshape(24, 24, 24) < 0.9
    scores = {}
    for mode in ("averaged_cam", "tomographic_cam"):
        for k in (1, 4, 16):
            inferer = TomographicInferer(100, 48, 48, mode=mode, cam_method=average_pooling_cam(k), sw_batch_size=1024)
            scores[mode, k] = correlation(inferer(volume, None)[0, 0], volume[0, 0], inside)
    assert scores["averaged_cam", 1] > 0.93  # full-resolution "CAMs" averaged give the input back
    assert scores["averaged_cam", 16] < scores["averaged_cam", 1] - 0.3  # coarse ones blur it
    assert scores["tomographic_cam", 16] > scores["averaged_cam", 16] + 0.2  # the second difference sharpens


def test_many_reconstructions_from_one_pass_equal_the_single_ones():
    network = SmallNet().eval()
    volume = torch.rand(1, 1, 12, 12, 12)
    settings = {"num_angles": 6, "num_slices": 6, "slice_size": 16, "sw_batch_size": 10}
    requests = [("tonno", None, None), ("averaged_cam", "layercam", "layer1"), ("tomographic_cam", "gradcam", "layer2")]
    many = TomographicInferer(**settings).reconstruct_many(volume, network, requests)
    single = {
        requests[0]: TomographicInferer(**settings)(volume, network),
        requests[1]: TomographicInferer(**settings, mode="averaged_cam", cam_layer="layer1")(volume, network),
        requests[2]: TomographicInferer(**settings, mode="tomographic_cam", cam_method="gradcam", cam_layer="layer2")(
            volume, network
        ),
    }
    for key, heatmap in single.items():
        torch.testing.assert_close(many[key], heatmap.detach(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="needs a CAM method"):
        TomographicInferer(**settings).reconstruct_many(volume, network, [("averaged_cam", None, None)])
