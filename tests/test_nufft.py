# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The slab-by-slab type-1 NUFFT gives the sums of the whole-grid one, without the whole grid."""

import math

import pytest
import torch

from monai_tonno.fourier_backprojection import FourierBackprojection
from monai_tonno.geometry import VolumeGeometry, fibonacci_directions
from monai_tonno.nufft import GaussianGridding


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
