# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import functools
import re

import pytest
import torch
from helpers import gaussian_blobs, relative_error
from monai.data import MetaTensor
from torch import nn

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.reconstruction import FilteredBackprojection

BLOBS = [((0.2, -0.1, 0.3), 0.15, 1.0), ((-0.3, 0.25, -0.1), 0.2, 0.6), ((0.0, 0.0, -0.35), 0.1, 1.5)]


def tiny_classifier(in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)
    )


def test_round_trip_with_summation_gives_the_volume_back():
    """R_sum in place of the network: relative L2 error 6.7 % inside the unit ball at M = 48, L = 500 (32^3)."""
    geometry = VolumeGeometry((32, 32, 32))
    volume = gaussian_blobs(geometry, BLOBS).float()[None]
    heatmap = TomographicInferer(num_angles=500, num_slices=48, slice_size=64, sw_batch_size=512)(volume, SliceSum())
    assert heatmap.shape == (1, 1, 32, 32, 32)
    inside = geometry.voxel_points().norm(dim=1).reshape(32, 32, 32) < 0.9
    assert relative_error(heatmap[0, 0][inside], volume[0, 0][inside]) < 0.08


def test_hemisphere_agrees_with_full_sphere():
    geometry = VolumeGeometry((24, 24, 24))
    volume = gaussian_blobs(geometry, BLOBS[:2]).float()[None]
    settings = {"num_angles": 300, "num_slices": 32, "slice_size": 48, "sw_batch_size": 512}
    full = TomographicInferer(hemisphere=False, **settings)(volume, SliceSum())
    half = TomographicInferer(hemisphere=True, **settings)(volume, SliceSum())
    assert relative_error(half, full) < 0.08
    assert relative_error(half, volume) < 1.1 * relative_error(full, volume)


def test_off_centre_blob_peaks_in_place():
    geometry = VolumeGeometry((28, 28, 28))
    volume = gaussian_blobs(geometry, [((0.3, -0.2, 0.15), 0.12, 1.0)]).float()[None]
    heatmap = TomographicInferer(num_angles=300, num_slices=40, slice_size=48, sw_batch_size=512)(volume, SliceSum())
    found = torch.tensor(torch.unravel_index(heatmap.argmax(), heatmap.shape)[2:], dtype=torch.float64)
    true = torch.tensor(torch.unravel_index(volume.argmax(), volume.shape)[2:], dtype=torch.float64)
    assert float((found - true).norm()) <= 1.0


def second_moments_mm(volume: torch.Tensor, spacing: tuple[float, float, float]) -> torch.Tensor:
    """Standard deviation along each axis, in millimetres, of the part of a (X, Y, Z) volume above 20 % of its peak."""
    weights = torch.where(volume > 0.2 * volume.max(), volume, 0.0)
    result = []
    for axis, step in enumerate(spacing):
        coordinate = torch.arange(volume.shape[axis], dtype=volume.dtype) * step
        shape = [1, 1, 1]
        shape[axis] = -1
        coordinate = coordinate.reshape(shape)
        mean = (weights * coordinate).sum() / weights.sum()
        result.append(torch.sqrt((weights * (coordinate - mean) ** 2).sum() / weights.sum()))
    return torch.stack(result)


def slice_maximum(slices: torch.Tensor) -> torch.Tensor:
    """A non-linear "network": unlike R_sum, its heatmap depends on how slices are cut in millimetres."""
    return slices.amax(dim=(1, 2, 3))[:, None]


def test_anisotropic_spacing_keeps_millimetre_shape():
    """A blob spherical in mm at spacing (1, 1, 3) comes back spherical in mm, as from an isotropic volume."""
    blob = [((0.1, 0.0, -0.1), 0.25, 1.0)]
    spacing = (1.0, 1.0, 3.0)
    coarse = gaussian_blobs(VolumeGeometry((31, 31, 11), spacing), blob).float()[None]
    fine = gaussian_blobs(VolumeGeometry((31, 31, 31)), blob).float()[None]
    inferer = TomographicInferer(num_angles=300, num_slices=40, slice_size=48, sw_batch_size=512)
    meta = MetaTensor(coarse, affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)))
    heatmap = inferer(meta, slice_maximum)[0, 0].as_tensor()
    spread = second_moments_mm(heatmap.double(), spacing)
    assert float(spread.max() / spread.min()) < 1.05  # measured (2.78, 2.75, 2.71) mm
    reference = inferer(fine, slice_maximum)[0, 0, :, :, ::3]
    assert relative_error(heatmap, reference) < 0.2  # measured 0.13
    # ignoring the spacing cuts slices in voxel space and stretches the blob along z (measured 4.2 mm)
    ignored = TomographicInferer(num_angles=300, num_slices=40, slice_size=48, sw_batch_size=512, spacing=(1, 1, 1))
    assert float(second_moments_mm(ignored(coarse, slice_maximum)[0, 0].double(), spacing)[2] / spread[2]) > 1.3


def test_metatensor_metadata_and_devices_are_kept():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    volume = MetaTensor(torch.rand(2, 1, 10, 10, 10), affine=affine, meta={"filename_or_obj": "case.nii.gz"})
    heatmap = TomographicInferer(num_angles=10, num_slices=8, slice_size=16, device="cpu")(volume, SliceSum())
    assert isinstance(heatmap, MetaTensor) and heatmap.shape == (2, 1, 10, 10, 10)
    torch.testing.assert_close(heatmap.affine, affine)
    assert heatmap.meta["filename_or_obj"] == "case.nii.gz"


class LogitRecorder(nn.Module):
    """A network whose logits keep their gradients, to check what the second difference does to them."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.logits: list[torch.Tensor] = []

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        logits = self.network(slices)
        if logits.requires_grad:
            logits.retain_grad()
            self.logits.append(logits)
        return logits


def test_gradients_reach_the_network_and_no_grad_works():
    network = tiny_classifier(2)
    recorder = LogitRecorder(network)
    volume = torch.rand(1, 2, 12, 12, 12)
    inferer = TomographicInferer(num_angles=6, num_slices=6, slice_size=16, sw_batch_size=16)
    inferer(volume, recorder).pow(2).sum().backward()
    # the second difference cancels a constant added to a direction's logits: in exact arithmetic the logit
    # gradients of each direction's M + 2 slices sum to zero, and so does the last bias's gradient (their sum)
    logit_grads = torch.cat([logits.grad.reshape(-1) for logits in recorder.logits]).reshape(6, 8).double()
    scale = logit_grads.abs().sum(1)
    assert bool((scale > 0).all())
    assert bool((logit_grads.sum(1).abs() <= 1e-5 * scale).all())  # float32 rounding of 8 terms: ~1e-7 relative
    bias = network[-1].bias.grad
    assert abs(float(bias)) <= 1e-5 * float(scale.sum())
    # every weight does shape the heatmap: its gradient is not zero
    weights = [p.grad for name, p in network.named_parameters() if name.endswith("weight")]
    assert all(g is not None and float(g.abs().sum()) > 1e-3 * float(scale.sum()) for g in weights)
    with torch.no_grad():
        heatmap = inferer(volume, network.eval())
    assert not heatmap.requires_grad and bool(torch.isfinite(heatmap).all())
    # stateless: the same call gives the same heatmap, whatever the batch size of network calls
    torch.testing.assert_close(heatmap, TomographicInferer(6, 6, 16, sw_batch_size=5)(volume, network).detach())


def test_under_supervised_evaluator():
    from monai.engines import SupervisedEvaluator

    data = [{"image": torch.rand(1, 1, 10, 10, 10), "label": torch.ones(1, 1, 10, 10, 10)}]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=data,
        network=tiny_classifier(),
        inferer=TomographicInferer(num_angles=4, num_slices=4, slice_size=12),
        epoch_length=1,
    )
    evaluator.run()
    assert evaluator.state.output[0]["pred"].shape == (1, 10, 10, 10)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (torch.rand(1, 8, 8, 8), "5 dimensions"),
        (torch.rand(1, 1, 8, 0, 8), "must not be empty"),
        (torch.full((1, 1, 8, 8, 8), float("nan")), "NaN"),
        (torch.rand(1, 1, 8, 1, 8), "at least 2 voxels"),
    ],
)
def test_bad_inputs_are_named(inputs, message):
    with pytest.raises(ValueError, match=message):
        TomographicInferer(num_angles=2, num_slices=4, slice_size=8)(inputs, SliceSum())


def test_zero_spacing_is_named():
    volume = MetaTensor(torch.rand(1, 1, 8, 8, 8), affine=torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0])))
    with pytest.raises(ValueError, match="spacing"):
        TomographicInferer(num_angles=2, num_slices=4, slice_size=8)(volume, SliceSum())


def test_network_with_wrong_output_shape_is_named():
    with pytest.raises(ValueError, match="outputs per slice"):
        TomographicInferer(num_angles=2, num_slices=4, slice_size=8)(
            torch.rand(1, 1, 8, 8, 8), lambda x: x.mean(dim=(2, 3))[:-1]
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [({"num_slices": 1}, "num_slices"), ({"num_angles": 0}, "num_angles"), ({"fov": "cube"}, "fov")],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TomographicInferer(**kwargs)


class AutocastRecorder(nn.Module):
    """R_sum that records whether it ran under autocast, as a network under mixed precision would."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[bool] = []

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        self.states.append(torch.is_autocast_enabled("cpu"))
        return SliceSum()(slices)


@pytest.mark.parametrize("backprojection", ["fourier", "linear"])
def test_autocast_reaches_the_network_but_not_the_geometry(backprojection):
    geometry = VolumeGeometry((24, 24, 24))
    volume = gaussian_blobs(geometry, BLOBS).float()[None]
    linear_or_fourier = functools.partial(FilteredBackprojection, backprojection=backprojection)
    inferer = TomographicInferer(60, 20, 32, reconstruction=linear_or_fourier)
    reference = inferer(volume, SliceSum())
    recorder = AutocastRecorder()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        heatmap = inferer(volume, recorder)
    assert recorder.states and all(recorder.states)
    assert heatmap.dtype == torch.float32
    # plane positions in bfloat16 would be off by up to a voxel: 1.3 % error with the Fourier backprojection
    assert relative_error(heatmap, reference) < 1e-5


def test_the_inferer_is_a_thin_wrapper_of_tomographic_inference():
    """The class forwards to the function; a reconstructor factory replaces the string and its options, also
    from a bundle config with "_mode_": "callable" (MONAI's partial); a mapping of factories gives one volume
    per key."""
    import functools

    from monai.bundle import ConfigParser

    from monai_tonno.inferers import tomographic_inference
    from monai_tonno.tomography.reconstruction import FilteredBackprojection, IterativeReconstruction

    geometry = VolumeGeometry((16, 16, 16))
    volume = MetaTensor(gaussian_blobs(geometry, BLOBS).float()[None], affine=torch.diag(torch.tensor([2.0, 2, 3, 1])))
    settings = {"num_angles": 40, "num_slices": 12, "slice_size": 24}
    by_class = TomographicInferer(**settings, sw_batch_size=50)(volume, SliceSum())
    by_function = tomographic_inference(volume, SliceSum(), FilteredBackprojection, **settings, sw_batch_size=50)
    torch.testing.assert_close(by_function, by_class)
    assert isinstance(by_function, MetaTensor) and torch.equal(by_function.affine, volume.affine)
    shorthand = TomographicInferer(**settings, reconstruction="iterative")(volume, SliceSum())
    torch.testing.assert_close(
        TomographicInferer(**settings, reconstruction=IterativeReconstruction)(volume, SliceSum()), shorthand
    )
    factory = functools.partial(IterativeReconstruction, iterations=4)
    four_iterations = TomographicInferer(**settings, reconstruction=factory)(volume, SliceSum())
    assert relative_error(four_iterations, shorthand) > 1e-3  # the options reach the reconstruction
    target = "monai_tonno.tomography.reconstruction.IterativeReconstruction"
    iterative = {"_target_": target, "_mode_": "callable", "iterations": 4}
    inferer = {"_target_": "monai_tonno.TomographicInferer", **settings, "reconstruction": iterative}
    parser = ConfigParser({"inferer": inferer})
    torch.testing.assert_close(parser.get_parsed_content("inferer")(volume, SliceSum()), four_iterations)
    both = tomographic_inference(
        volume, lambda s: {"a": SliceSum()(s), "b": 2 * SliceSum()(s)}, {"a": FilteredBackprojection, "b": factory},
        **settings,
    )  # fmt: skip
    torch.testing.assert_close(both["a"], by_class)
    torch.testing.assert_close(
        both["b"], 2 * four_iterations, rtol=1e-3, atol=1e-4
    )  # the solve is linear in the profiles
    with pytest.raises(ValueError, match="mode='tonno'"):
        TomographicInferer(mode="averaged_cam", reconstruction=factory)


@pytest.mark.parametrize(
    ("moved", "fix"),
    [
        ({"iterations": 50}, "functools.partial(IterativeReconstruction, iterations=50)"),
        ({"backprojection": "linear"}, "functools.partial(FilteredBackprojection, backprojection='linear')"),
        ({"backprojection_chunk": 4}, "directions_per_update=4"),
        ({"num_angels": 10}, "unexpected keyword argument 'num_angels'"),
    ],
)
def test_an_option_that_moved_to_the_reconstruction_names_its_new_home(moved, fix):
    with pytest.raises(TypeError, match=re.escape(fix)):
        TomographicInferer(**moved)
