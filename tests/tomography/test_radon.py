# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import pytest
import torch
from helpers import gaussian_blobs, gaussian_blobs_radon, relative_error

from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions
from monai_tonno.tomography.radon import (
    backproject_profiles,
    filtered_backprojection,
    profile_offsets,
    radon_sum,
    second_difference,
)

BLOBS = [((0.2, -0.1, 0.3), 0.18, 1.0), ((-0.3, 0.25, -0.1), 0.22, 0.6)]


def test_radon_sum_matches_closed_form():
    geometry = VolumeGeometry((40, 40, 40))
    volume = gaussian_blobs(geometry, BLOBS)
    directions = fibonacci_directions(60)
    profiles = radon_sum(volume, geometry, directions, num_slices=40, slice_size=80)
    offsets, _ = profile_offsets(40, torch.float64)
    exact = gaussian_blobs_radon(BLOBS, directions, offsets)
    assert relative_error(profiles, exact) < 0.01  # measured 0.43 %


def test_inverse_of_closed_form_profiles_gives_the_volume():
    """Filtered backprojection alone, fed the exact Radon transform (M = 64, L = 1000): under 3 % error."""
    geometry = VolumeGeometry((32, 32, 32))
    volume = gaussian_blobs(geometry, BLOBS)
    directions = fibonacci_directions(1000)
    offsets, _ = profile_offsets(64, torch.float64)
    exact = gaussian_blobs_radon(BLOBS, directions, offsets)
    reconstruction = filtered_backprojection(exact, directions, geometry.voxel_points(torch.float64))
    assert relative_error(reconstruction, volume.reshape(-1)) < 0.03


def test_second_difference_of_a_parabola():
    offsets, step = profile_offsets(10, torch.float64)
    torch.testing.assert_close(
        second_difference(3 * offsets**2 + offsets, step), torch.full((10,), 6.0, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="at least 2"):
        profile_offsets(1)


def test_backprojection_is_the_adjoint_of_plane_integration():
    """<R_sum f, g> h = <f, B g> dV with the same directions on both sides, to quadrature accuracy."""
    geometry = VolumeGeometry((32, 32, 32))
    volume = gaussian_blobs(geometry, BLOBS)
    directions = fibonacci_directions(40)
    num_slices = 48
    profiles = radon_sum(volume, geometry, directions, num_slices, slice_size=64)[:, 1:-1].double()
    g = torch.rand(40, num_slices, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, step = profile_offsets(num_slices)
    lhs = float((profiles * g).sum()) * step
    rhs = float((volume.reshape(-1) * backproject_profiles(g, directions, geometry.voxel_points(torch.float64))).sum())
    rhs *= geometry.voxel_volume()
    assert lhs == pytest.approx(rhs, rel=0.01)


def test_backprojection_memory_is_chunked_and_differentiable():
    directions = fibonacci_directions(10)
    points = VolumeGeometry((6, 6, 6)).voxel_points(torch.float64)
    profiles = torch.rand(10, 12, dtype=torch.float64, requires_grad=True)
    whole = backproject_profiles(profiles, directions, points, chunk_size=10)
    chunked = backproject_profiles(profiles, directions, points, chunk_size=3)
    torch.testing.assert_close(whole, chunked)
    assert torch.autograd.gradcheck(lambda q: backproject_profiles(q, directions, points, 4), (profiles,))
