# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import math

import pytest
import torch

from monai_tonno.tomography.geometry import (
    VolumeGeometry,
    cut_slices,
    fibonacci_directions,
    orthonormal_frames,
    slice_affine,
    slice_grid,
    slice_points,
)


def axis_frame(normal_axis: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    eye = torch.eye(3, dtype=torch.float64)
    others = [a for a in range(3) if a != normal_axis]
    return eye[normal_axis], eye[others[0]], eye[others[1]]


@pytest.mark.parametrize("normal_axis", [0, 1, 2])
def test_axis_normal_slice_is_the_array_slice(normal_axis):
    """Pins grid_sample's axis order: a slice normal to array axis a at voxel k is volume.select(a, k)."""
    shape = (9, 9, 9)
    volume = torch.randn(2, *shape, dtype=torch.float64)
    geometry = VolumeGeometry(shape)
    n, u, v = axis_frame(normal_axis)
    for k in (0, 2, 4, 7):
        offset = torch.tensor([(k - 4) / 4.0], dtype=torch.float64)
        points = slice_points(n[None], u[None], v[None], offset, slice_size=9)
        sliced = cut_slices(volume, geometry, points)[0]
        torch.testing.assert_close(sliced, volume.select(normal_axis + 1, k))


def test_anisotropic_slice_follows_millimetres():
    """Spacing (1, 1, 3): the z-axis spans as many millimetres as x and y, so 7 z-voxels fill a 19-pixel row."""
    volume = torch.arange(19 * 19 * 7, dtype=torch.float64).reshape(1, 19, 19, 7)
    geometry = VolumeGeometry((19, 19, 7), spacing=(1.0, 1.0, 3.0))
    n, u, v = axis_frame(0)  # u = y, v = z
    points = slice_points(n[None], u[None], v[None], torch.zeros(1, dtype=torch.float64), slice_size=19)
    sliced = cut_slices(volume, geometry, points)[0, 0]
    torch.testing.assert_close(sliced[:, ::3], volume[0, 9])


def test_fibonacci_directions_are_unit_and_even():
    for hemisphere in (False, True):
        directions = fibonacci_directions(2000, hemisphere)
        torch.testing.assert_close(directions.norm(dim=1), torch.ones(2000, dtype=torch.float64))
        second_moment = directions.T @ directions / 2000
        torch.testing.assert_close(second_moment, torch.eye(3, dtype=torch.float64) / 3, atol=2e-3, rtol=0)
    assert bool((fibonacci_directions(100, hemisphere=True)[:, 1] > 0).all())
    assert fibonacci_directions(1).shape == (1, 3)
    with pytest.raises(ValueError, match="at least 1"):
        fibonacci_directions(0)


def test_frames_are_orthonormal_everywhere():
    normals = torch.cat(
        [fibonacci_directions(500), torch.eye(3, dtype=torch.float64), -torch.eye(3, dtype=torch.float64)]
    )
    n, u, v = orthonormal_frames(normals)
    basis = torch.stack([n, u, v], dim=1)
    torch.testing.assert_close(basis @ basis.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(len(n), 3, 3))
    torch.testing.assert_close(torch.linalg.det(basis), torch.ones(len(n), dtype=torch.float64))


def test_field_of_view_radius():
    geometry = VolumeGeometry((11, 21, 5), spacing=(2.0, 1.0, 1.0))
    assert geometry.radius == pytest.approx(10.0)
    circumscribed = VolumeGeometry((11, 21, 5), spacing=(2.0, 1.0, 1.0), fov="circumscribed")
    assert circumscribed.radius == pytest.approx(math.sqrt(20**2 + 20**2 + 4**2) / 2)
    assert float(circumscribed.voxel_points().norm(dim=1).max()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": (4, 0, 4)}, "at least 2 voxels"),
        ({"shape": (4, 4)}, "3D spatial shape"),
        ({"shape": (4, 4, 4), "spacing": (1.0, 0.0, 1.0)}, "positive finite"),
        ({"shape": (4, 4, 4), "spacing": (1.0, float("nan"), 1.0)}, "positive finite"),
        ({"shape": (4, 4, 4), "fov": "square"}, "fov must be one of"),
    ],
)
def test_bad_geometry_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VolumeGeometry(**kwargs)


def test_slice_affine_maps_pixels_to_world():
    """The affine of a slice sends each pixel to the world position of the voxel it was sampled at."""
    geometry = VolumeGeometry((9, 9, 9), spacing=(2.0, 2.0, 2.0))
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] *= 2.0
    affine[:3, 3] = torch.tensor([10.0, -5.0, 3.0])
    n, u, v = orthonormal_frames(torch.tensor([[0.3, -0.5, 0.8]], dtype=torch.float64))
    offset = torch.tensor([0.25], dtype=torch.float64)
    points = slice_points(n, u, v, offset, slice_size=5)[0]  # (5, 5, 3) normalised
    world = geometry.index_to_world(affine)
    expected = (world[:3, :3] @ points.reshape(-1, 3).T).T + world[:3, 3]
    pixel_affine = slice_affine(geometry, n[0], u[0], v[0], offset, 5, affine)
    i, j = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    pixels = torch.stack([i, j, torch.zeros_like(i), torch.ones_like(i)], dim=-1).reshape(-1, 4).double()
    torch.testing.assert_close((pixel_affine @ pixels.T).T[:, :3], expected)


def test_cpu_slicing_one_batch_entry_per_slice_equals_the_autograd_path():
    geometry = VolumeGeometry((9, 10, 11), (1.0, 1.2, 0.8))
    volume = torch.rand(2, 9, 10, 11)
    normals = fibonacci_directions(7).float()
    u, v = orthonormal_frames(fibonacci_directions(7))[1:]
    points = slice_points(normals, u.float(), v.float(), torch.linspace(-0.5, 0.5, 7), 12)
    fast = cut_slices(volume, geometry, points)
    tracked = volume.clone().requires_grad_(True)
    reference = cut_slices(tracked, geometry, points)  # the single-call path, which autograd needs
    assert fast.shape == reference.shape == (7, 2, 12, 12)
    torch.testing.assert_close(fast, reference.detach(), rtol=0, atol=0)
    reference.sum().backward()
    assert tracked.grad.shape == volume.shape and float(tracked.grad.abs().sum()) > 0


def test_slice_grid_is_the_grid_of_slice_points():
    geometry = VolumeGeometry((9, 10, 11), (1.0, 1.2, 0.8))
    normals, u, v = (axis.float() for axis in orthonormal_frames(fibonacci_directions(5)))
    offsets = torch.linspace(-0.7, 0.7, 5)
    expected = geometry.to_grid(slice_points(normals, 1.1 * u, v + 0.2 * u, offsets, (6, 8)))
    torch.testing.assert_close(slice_grid(geometry, normals, 1.1 * u, v + 0.2 * u, offsets, (6, 8)), expected)
