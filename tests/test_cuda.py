# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The same results on CUDA as on the CPU. These run where a GPU is present (they are skipped on CPU-only CI,
which runs the CPU path through every other test); run them with ``pytest tests/test_cuda.py`` on a GPU."""

import functools

import pytest
import torch
from helpers import gaussian_blobs, relative_error
from monai.data import MetaTensor
from torch import nn

from monai_tonno import RandObliqueSliced, SliceSum, TomographicInferer
from monai_tonno.networks import create_slice_classifier
from monai_tonno.tomography.fourier_backprojection import FourierBackprojection
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions
from monai_tonno.tomography.radon_operator import RadonOperator
from monai_tonno.tomography.reconstruction import FilteredBackprojection
from monai_tonno.visualize import SliceCAM

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_float32():
    """TF32 convolutions and matrix products differ from the CPU by about 1e-3: compare in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def small_resnet(in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return create_slice_classifier("resnet10t", in_channels, "frozen_batch").eval()


def volume_with_blobs(size: int = 24) -> torch.Tensor:
    geometry = VolumeGeometry((size,) * 3)
    blobs = [((0.2, -0.1, 0.3), 0.15, 1.0), ((-0.3, 0.25, -0.1), 0.2, 0.6)]
    return gaussian_blobs(geometry, blobs).float()[None]


@pytest.mark.parametrize("backprojection", ["fourier", "linear"])
def test_tonno_on_cuda_equals_cpu(backprojection):
    volume = volume_with_blobs()
    network = small_resnet()
    reconstruction = functools.partial(FilteredBackprojection, backprojection=backprojection)
    inferer = TomographicInferer(40, 16, 32, sw_batch_size=64, reconstruction=reconstruction)
    with torch.no_grad():
        on_cpu = inferer(volume, network)
        on_cuda = inferer(volume.to(CUDA), network.to(CUDA))
    assert on_cuda.device.type == "cuda"
    assert relative_error(on_cuda.cpu(), on_cpu) < 1e-4


@pytest.mark.parametrize("mode", ["averaged_cam", "tomographic_cam"])
def test_cam_modes_on_cuda_equal_cpu(mode):
    volume = volume_with_blobs()
    network = small_resnet()
    inferer = TomographicInferer(20, 12, 32, sw_batch_size=64, mode=mode, cam_layer="layer2")
    on_cpu = inferer(volume, network)
    on_cuda = inferer(volume.to(CUDA), network.to(CUDA))
    assert relative_error(on_cuda.cpu(), on_cpu) < 1e-4


def test_round_trip_on_cuda_and_output_device_choice():
    volume = MetaTensor(volume_with_blobs(32), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    inferer = TomographicInferer(300, 40, 48, sw_batch_size=512, sw_device=CUDA, device="cpu")
    heatmap = inferer(volume, SliceSum())
    assert isinstance(heatmap, MetaTensor) and heatmap.device.type == "cpu"
    torch.testing.assert_close(heatmap.affine, volume.affine)
    reference = TomographicInferer(300, 40, 48, sw_batch_size=512)(volume, SliceSum())
    assert relative_error(heatmap, reference) < 1e-4


def test_fourier_backprojection_on_cuda_equals_cpu():
    geometry = VolumeGeometry((20, 22, 18))
    directions = fibonacci_directions(64).float()
    profiles = torch.randn(64, 30, generator=torch.Generator().manual_seed(0))
    results = []
    for device in ("cpu", CUDA):
        fourier = FourierBackprojection(geometry, 30, device=device)
        fourier.add(profiles.to(device), directions.to(device))
        results.append(fourier.volume().cpu())
    assert relative_error(results[1], results[0]) < 1e-5


def test_rand_oblique_slices_on_cuda_equal_cpu():
    volume, mask = torch.rand(2, 16, 18, 20), (torch.rand(1, 16, 18, 20) > 0.7).float()
    sampler = RandObliqueSliced(
        ["image", "mask"], slice_size=24, num_samples=3, scale_range=(0.8, 1.2), shear_range=0.2,
        mode=["bilinear", "nearest"],
    )  # fmt: skip
    outputs = []
    for device in ("cpu", CUDA):
        sampler.set_random_state(7)
        outputs.append(sampler({"image": MetaTensor(volume.to(device)), "mask": mask.to(device), "label": 1}))
    for cpu_item, cuda_item in zip(*outputs, strict=True):
        assert cuda_item["image"].device.type == "cuda" and cuda_item["label"] == 1
        torch.testing.assert_close(
            cuda_item["image"].cpu().as_tensor(), cpu_item["image"].as_tensor(), atol=1e-5, rtol=1e-5
        )
        assert float((cuda_item["mask"].cpu() != cpu_item["mask"]).float().mean()) < 0.01


def test_slice_cam_on_cuda_equals_cpu():
    network = small_resnet()
    slices = torch.rand(4, 1, 32, 32)
    maps = [SliceCAM(network.to(device), "layer2")(slices.to(device)).cpu() for device in ("cpu", CUDA)]
    assert relative_error(maps[1], maps[0]) < 1e-4


def test_slice_wise_cams_run_the_network_on_sw_device():
    """A CPU volume (as evaluation reads it) and a CUDA network: SliceCAMInferer moves the slices there."""
    from monai_tonno.inferers import SliceCAMInferer

    volume = MetaTensor(volume_with_blobs(20), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    network = small_resnet()
    on_cpu = SliceCAMInferer("layercam", "layer2", axis=2, slice_size=32)(volume, network)
    network = network.to(CUDA)
    inferer = SliceCAMInferer("layercam", "layer2", axis=2, slice_size=32, sw_device="cuda", device="cpu")
    on_cuda = inferer(volume, network)
    assert on_cuda.device.type == "cpu" and isinstance(on_cuda, MetaTensor)
    assert relative_error(on_cuda, on_cpu) < 1e-4


def test_radon_operator_and_iterative_reconstruction_on_cuda_equal_cpu():
    geometry = VolumeGeometry((16, 16, 16))
    directions = fibonacci_directions(20, True)
    volume = volume_with_blobs(16)[0, 0]
    on_cpu = RadonOperator(geometry, directions, 12)
    on_cuda = RadonOperator(geometry, directions, 12, device=CUDA)
    profiles = on_cpu(volume)
    assert relative_error(on_cuda(volume.to(CUDA)).cpu(), profiles) < 1e-5
    assert relative_error(on_cuda.adjoint(profiles.to(CUDA)).cpu(), on_cpu.adjoint(profiles)) < 1e-5
    inferer = TomographicInferer(num_angles=20, num_slices=12, slice_size=16, reconstruction="iterative")
    with torch.no_grad():
        expected = inferer(volume[None, None], SliceSum())
        result = inferer(volume[None, None].to(CUDA), SliceSum())
    assert result.device.type == "cuda"
    assert relative_error(result.cpu(), expected) < 1e-4
