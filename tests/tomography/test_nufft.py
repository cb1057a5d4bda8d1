# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The slab-by-slab type-1 NUFFT gives the sums of the whole-grid one, without the whole grid."""

import math

import pytest
import torch

from monai_tonno.tomography.fourier_backprojection import FourierBackprojection
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions
from monai_tonno.tomography.nufft import GaussianGridding


@pytest.mark.parametrize("shape", [(20, 24, 18), (7, 9, 11), (33, 16, 5)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("memory_bytes", [None, 1, 60_000])
def test_slabs_give_the_whole_grid_sums(shape, channels, memory_bytes):
    """In float64 the two differ by rounding only (1e-16 relative), whatever the slab size (one plane at a time with
    ``memory_bytes=1``), odd or even sizes, frequencies beyond one period."""
    generator = torch.Generator().manual_seed(sum(shape) + channels)
    theta = (torch.rand(2000, 3, generator=generator, dtype=torch.float64) * 2 - 1) * 1.5 * math.pi
    strengths = torch.randn(2000, channels, generator=generator, dtype=torch.complex128)
    whole = GaussianGridding(shape, dtype=torch.float64, channels=channels)
    whole.spread(theta, strengths if channels > 1 else strengths[:, 0])
    expected = whole.modes().real
    slabs = GaussianGridding(shape, dtype=torch.float64, channels=channels)
    found = slabs.real_modes_of_points(theta, strengths, memory_bytes=memory_bytes)
    assert found.shape == expected.shape and found.dtype == torch.float64
    assert float((found - expected).norm() / expected.norm()) < 1e-13
    assert slabs._grid is None  # the oversampled grid was never allocated


def test_fourier_backprojection_never_allocates_the_oversampled_grid_without_gradients():
    geometry = VolumeGeometry((24, 20, 16), (1.0, 1.5, 2.0))
    directions = fibonacci_directions(40, hemisphere=True)
    profiles = torch.randn(40, 12, generator=torch.Generator().manual_seed(0))
    fourier = FourierBackprojection(geometry, 12)
    fourier.add(profiles, directions)
    volume = fourier.volume()
    assert fourier.gridding._grid is None
    reference = FourierBackprojection(geometry, 12)
    reference.add(profiles.requires_grad_(), directions)  # with gradients: the differentiable whole-grid path
    expected = reference.volume()
    assert reference.gridding._grid is not None and expected.requires_grad
    torch.testing.assert_close(volume, expected.detach(), rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_type2_gridding_matches_the_direct_sum_and_is_the_adjoint_of_type1():
    shape = (10, 12, 7)
    generator = torch.Generator().manual_seed(0)
    theta = (torch.rand(50, 3, generator=generator, dtype=torch.float64) - 0.5) * 8
    modes = torch.randn(*shape, generator=generator, dtype=torch.complex128)
    index = torch.stack(torch.meshgrid(*[torch.arange(n) - n // 2 for n in shape], indexing="ij"), -1).double()
    exact = (modes[..., None] * torch.exp(-1j * (index @ theta.T))).sum(dim=(0, 1, 2))
    gridding = GaussianGridding(shape, 4, dtype=torch.float64)
    values = gridding.interpolate(modes, theta)
    assert float((values - exact).abs().max() / exact.abs().max()) < 5e-4  # measured 1.4e-4
    strengths = torch.randn(50, generator=generator, dtype=torch.complex128)
    gridding.spread(theta, strengths)
    adjoint_pair = torch.vdot(gridding.modes().reshape(-1), modes.reshape(-1)), torch.vdot(strengths, values)
    torch.testing.assert_close(*adjoint_pair)
