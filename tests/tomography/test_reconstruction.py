# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import functools

import pytest
import torch
from helpers import gaussian_blobs, relative_error

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.tomography.radon import radon_sum
from monai_tonno.tomography.reconstruction import FilteredBackprojection, IterativeReconstruction

BLOBS = [((0.2, -0.1, 0.3), 0.18, 1.0), ((-0.3, 0.25, -0.1), 0.22, 0.6)]


def _blob_profiles(size: int, num_angles: int, num_slices: int):
    geometry = VolumeGeometry((size,) * 3)
    volume = gaussian_blobs(geometry, BLOBS)[0].float()
    directions = fibonacci_directions(num_angles, True)
    frames = tuple(axis.float() for axis in orthonormal_frames(directions))
    profiles = radon_sum(volume[None], geometry, directions, num_slices, slice_size=size)
    return geometry, volume, frames, profiles


def test_iterative_reconstruction_removes_most_streaks_at_few_directions():
    """SliceSum profiles of blobs at 32^3, M = 32, L = 40 on the hemisphere, with a random constant added to every
    direction's profile: filtered backprojection 0.134 relative error inside the ball; iterative with the priors
    of a density (non-negative, in the ball) 0.041. Least squares alone (0.161) is no better than filtered
    backprojection: what the directions do not see is free, and it fills it with streaks of its own."""
    geometry, volume, frames, profiles = _blob_profiles(32, 40, 32)
    profiles = profiles + torch.randn(40, 1, generator=torch.Generator().manual_seed(0))
    inside = geometry.voxel_points().norm(dim=1).reshape(geometry.shape) < 0.95
    errors = {}
    for name, reconstruction in {
        "fbp": FilteredBackprojection(geometry, 32, 40),
        "density": IterativeReconstruction(
            geometry, 32, 40, nonnegative=True, support="ball", iterations=60, regularization=0.0
        ),
    }.items():
        reconstruction.add(profiles, frames)
        errors[name] = relative_error(reconstruction.result()[0][inside], volume[inside])
    assert errors["density"] < 0.5 * errors["fbp"], errors


def test_iterative_reconstruction_ignores_a_constant_per_direction():
    geometry, _, frames, profiles = _blob_profiles(16, 20, 12)
    results = []
    shift = 5.0 * torch.randn(20, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for added in (0.0, shift):
        reconstruction = IterativeReconstruction(geometry, 12, 20, iterations=10, tolerance=0.0)
        reconstruction.add(profiles.double() + added, tuple(axis.double() for axis in frames))
        results.append(reconstruction.result())
    # D1 and D2 remove constants exactly; what is left is float64 rounding of profiles of size ~5
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-9 * float(results[0].abs().max()))


class _Outputs(torch.nn.Module):
    """Three outputs per slice from one scale parameter: ``a R``, ``2 a R + 1``, ``-a R`` (``R`` the slice sum)."""

    def __init__(self, which: tuple[int, ...] = (0, 1, 2)) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.which = which

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        total = self.scale * SliceSum()(slices)
        outputs = torch.cat([total, 2 * total + 1, -total], dim=1)
        return outputs[:, list(self.which)]


@pytest.mark.parametrize("reconstruction", ["filtered_backprojection", "iterative"])
def test_k_outputs_per_slice_equal_the_single_output_runs(reconstruction):
    volume = gaussian_blobs(VolumeGeometry((14, 14, 14)), BLOBS).float()[None]
    if reconstruction == "iterative":
        reconstruction = functools.partial(IterativeReconstruction, iterations=5, tolerance=0.0)
    inferer = TomographicInferer(num_angles=12, num_slices=8, slice_size=14, reconstruction=reconstruction)
    with torch.no_grad():
        together = inferer(volume, _Outputs())
        assert together.shape == (1, 3, 14, 14, 14)
        for k in range(3):
            torch.testing.assert_close(together[:, k : k + 1], inferer(volume, _Outputs((k,))), rtol=1e-4, atol=1e-4)


def test_gradients_reach_the_network_through_the_iterative_reconstruction():
    """Without a prior and with a fixed number of iterations the heatmap is linear in the profiles, so with
    outputs ``a R`` the loss ``<W, G>`` is linear in ``a`` and its derivative is the loss at ``a = 1``."""
    volume = gaussian_blobs(VolumeGeometry((12, 12, 12)), BLOBS).float()[None]
    network = _Outputs((0,))
    fixed_iterations = functools.partial(IterativeReconstruction, iterations=4, tolerance=0.0)
    inferer = TomographicInferer(num_angles=10, num_slices=8, slice_size=12, reconstruction=fixed_iterations)
    weights = torch.randn(1, 1, 12, 12, 12, generator=torch.Generator().manual_seed(3))
    loss = (inferer(volume, network) * weights).sum()
    loss.backward()
    assert network.scale.grad is not None
    assert float(network.scale.grad) == pytest.approx(float(loss), rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reconstruction": "art"}, "reconstruction must be one of"),
        ({"reconstruction": "iterative", "mode": "averaged_cam"}, "mode='tonno'"),
    ],
)
def test_bad_reconstruction_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TomographicInferer(**kwargs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"support": "cube"}, "support must be one of"),
        ({"sparsity": -1.0}, "sparsity"),
        ({"regularization": float("nan")}, "regularization"),
        ({"iterations": 2.5}, "iterations"),
    ],
)
def test_bad_iterative_options_are_named_when_the_reconstruction_is_made(options, message):
    """The options travel with the factory; the reconstruction checks them before any slice is scored."""
    volume = torch.zeros(1, 1, 8, 8, 8)
    inferer = TomographicInferer(4, 4, 8, reconstruction=functools.partial(IterativeReconstruction, **options))
    network = SliceSum()
    with pytest.raises(ValueError, match=message):
        inferer(volume, network)
