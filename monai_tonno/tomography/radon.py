# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The 3D-2D Radon transform by summation and its filtered backprojection (paper Eq. 5, 8-11).

All lengths are normalised units of :class:`~monai_tonno.tomography.geometry.VolumeGeometry`. A profile is sampled at
the ``M + 2`` offsets ``s_m = -1 + m h``, ``m = -1 .. M``, ``h = 2 / (M - 1)``; its second difference lives on the
``M`` inner offsets ``[-1, 1]``. The inverse is

    ``G(x) = c |S^2| / L * sum_l q~_l(x . n_l)``,  ``c = -1 / (8 pi^2)``,

with ``q~`` the linear interpolation of the second difference, zero outside ``[-1, 1]``. References: S. Helgason,
*The Radon Transform*, Theorem 3.6; M. Schmidt-Mengin et al., *ToNNO*, arXiv 2404.13103, Section 3.

Averaged and Tomographic CAM (paper Eq. 12-13) backproject stacks of 2D maps instead of 1D profiles
(:func:`backproject_stacks`).

Everything is pure torch and differentiable; loops run over chunks of directions so that peak memory does not
grow with their number. :func:`backproject_profiles` is the straightforward backprojection (an interpolation per
direction and voxel); :class:`~monai_tonno.tomography.fourier_backprojection.FourierBackprojection` computes it on a
voxel grid through one non-uniform FFT, and is what :class:`~monai_tonno.inferers.TomographicInferer` uses by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from monai_tonno.tomography.geometry import VolumeGeometry, orthonormal_frames, sample_grid, slice_grid

__all__ = [
    "RADON_INVERSION_CONSTANT",
    "SPHERE_AREA",
    "backproject_profiles",
    "backproject_stacks",
    "filtered_backprojection",
    "inverse_radon_weight",
    "profile_offsets",
    "profile_slices",
    "radon_sum",
    "second_difference",
    "slice_integral",
]

RADON_INVERSION_CONSTANT = -1.0 / (8.0 * math.pi**2)
SPHERE_AREA = 4.0 * math.pi


def inverse_radon_weight(num_directions: int) -> float:
    """``c |S^2| / L``: the weight of each direction's filtered profile in the inverse (paper Eq. 11).

    Right for directions on the sphere and on a hemisphere alike: on a hemisphere each direction also stands
    for its antipode, whose profile is the mirror image.
    """
    if num_directions < 1:
        raise ValueError(f"the number of directions must be at least 1, got {num_directions}.")
    return RADON_INVERSION_CONSTANT * SPHERE_AREA / num_directions


def profile_offsets(
    num_slices: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[torch.Tensor, float]:
    """The ``M + 2`` slice offsets of one profile and their step ``h = 2 / (M - 1)``.

    Args:
        num_slices: ``M``, the number of offsets inside ``[-1, 1]`` (at least 2).
        dtype: floating point type of the offsets.
        device: device of the offsets.
    """
    if num_slices < 2:
        raise ValueError(f"num_slices (M) must be at least 2 to take a second difference, got {num_slices}.")
    step = 2.0 / (num_slices - 1)
    offsets = -1.0 + step * torch.arange(-1, num_slices + 1, dtype=torch.float64)
    return offsets.to(dtype=dtype, device=device), step


def second_difference(profiles: torch.Tensor, step: float) -> torch.Tensor:
    """Second finite difference along the last axis (paper Eq. 9): ``(..., M + 2)`` to ``(..., M)``."""
    if profiles.shape[-1] < 3:
        raise ValueError(f"a second difference needs at least 3 samples, got {profiles.shape[-1]}.")
    return (profiles[..., 2:] + profiles[..., :-2] - 2.0 * profiles[..., 1:-1]) / (step * step)


def backproject_profiles(
    profiles: torch.Tensor, directions: torch.Tensor, points: torch.Tensor, chunk_size: int = 8
) -> torch.Tensor:
    """Unweighted backprojection ``B q (x) = sum_l q~_l(x . n_l)`` of 1D profiles sampled on ``[-1, 1]``.

    ``q~_l`` is the linear interpolation of ``profiles[l]`` over ``M`` evenly spaced samples from -1 to 1, and
    zero outside that range. This is the adjoint, up to quadrature weights, of sampling plane integrals.

    Args:
        profiles: ``(L, M)`` values.
        directions: ``(L, 3)`` unit normals.
        points: ``(P, 3)`` normalised coordinates where the result is wanted.
        chunk_size: directions processed at once; peak memory is about ``8 * P * chunk_size`` floats.

    Returns:
        ``(P,)`` tensor in the dtype and on the device of ``points``.
    """
    num_dirs, num_samples = profiles.shape
    if directions.shape != (num_dirs, 3):
        raise ValueError(f"expected directions of shape ({num_dirs}, 3), got {tuple(directions.shape)}.")
    profiles = profiles.to(dtype=points.dtype, device=points.device)
    directions = directions.to(dtype=points.dtype, device=points.device)
    scale = (num_samples - 1) / 2.0
    result = points.new_zeros(points.shape[0])
    for start in range(0, num_dirs, chunk_size):
        stop = min(start + chunk_size, num_dirs)
        position = (points @ directions[start:stop].T + 1.0) * scale  # fractional sample index, (P, l)
        inside = (position >= 0) & (position <= num_samples - 1)
        lower = position.detach().floor().clamp_(0, num_samples - 2)
        weight = position - lower
        flat = profiles[start:stop].reshape(-1)
        index = lower.long() + torch.arange(stop - start, device=points.device) * num_samples
        below, above = flat[index], flat[index + 1]
        result = result + torch.where(inside, torch.lerp(below, above, weight), 0.0).sum(dim=1)
    return result


def filtered_backprojection(
    profiles: torch.Tensor,
    directions: torch.Tensor,
    points: torch.Tensor,
    chunk_size: int = 8,
    num_directions: int | None = None,
) -> torch.Tensor:
    """Inverse Radon transform of profiles sampled at :func:`profile_offsets` (paper Eq. 8-11).

    Directions may cover the sphere or a hemisphere (see :func:`inverse_radon_weight`).

    Args:
        profiles: ``(L, M + 2)`` values of ``R V(s_m, n_l)``, or a network's logits in their place.
        directions: ``(L, 3)`` unit normals.
        points: ``(P, 3)`` normalised coordinates of the output voxels.
        chunk_size: directions backprojected at once.
        num_directions: the ``L`` of the weight when ``profiles`` is one share of all directions (the shares'
            results then add up to the whole reconstruction).

    Returns:
        ``(P,)`` reconstruction.
    """
    step = 2.0 / (profiles.shape[-1] - 3)
    filtered = second_difference(profiles, step)
    weight = inverse_radon_weight(num_directions or profiles.shape[0])
    return weight * backproject_profiles(filtered, directions, points, chunk_size)


def backproject_stacks(
    stacks: torch.Tensor,
    frames: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    points: torch.Tensor,
    slice_size: int,
    chunk_size: int = 4,
) -> torch.Tensor:
    """Unweighted backprojection of per-direction stacks of 2D maps: ``sum_l p~_l(x.n_l, x.u_l, x.v_l)``.

    ``stacks[l]`` holds ``K`` maps of ``h x w`` pixels for the slices at ``K`` evenly spaced offsets over
    ``[-1, 1]`` along ``n_l``; map pixel ``(a, b)`` summarises the input pixels ``[a k, (a + 1) k)`` of a
    ``slice_size`` slice (``k = slice_size / h``), as the activations of a CNN layer do, so its centre sits at
    the centre of that block. ``p~`` interpolates trilinearly and is zero outside the stack.

    Args:
        stacks: ``(L, K, h, w)`` maps (CAMs, or pooled slices).
        frames: ``(n, u, v)``, each ``(L, 3)``: the frames the slices were cut in.
        points: ``(P, 3)`` normalised coordinates of the output voxels.
        slice_size: pixels per side of the slices the maps were computed from.
        chunk_size: directions sampled at once.

    Returns:
        ``(P,)`` tensor in the dtype and on the device of ``points``.
    """
    num_dirs, depth = stacks.shape[:2]
    # with align_corners=False, grid_sample puts pixel a of n at (2 a + 1) / n - 1: the centre of its block
    scale = torch.tensor(
        [(slice_size - 1) / slice_size, (slice_size - 1) / slice_size, (depth - 1) / depth],
        dtype=points.dtype,
        device=points.device,
    )
    result = points.new_zeros(points.shape[0])
    for start in range(0, num_dirs, chunk_size):
        stop = min(start + chunk_size, num_dirs)
        # grid_sample's last grid axis is (w, h, d): (v, u, n)
        axes = torch.stack([frames[2][start:stop], frames[1][start:stop], frames[0][start:stop]], dim=1)
        coordinates = torch.einsum("pk,lak->lpa", points, axes.to(points)) * scale
        sampled = F.grid_sample(
            stacks[start:stop, None].to(points.dtype),
            coordinates[:, :, None, None, :],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        result = result + sampled.reshape(stop - start, -1).sum(dim=0)
    return result


def slice_integral(slices: torch.Tensor) -> torch.Tensor:
    """``R_sum`` of cut slices, the plane integral by summation (paper Eq. 5): ``(N, C, H, W)`` to ``(N, 1)``.

    The channels are summed. Pixel centres span ``[-1, 1]`` at both ends, so each pixel stands for
    ``(2 / (H - 1)) x (2 / (W - 1))`` square units: the paper's "mean x slice area of 4" underestimates the
    integral by the factor ``((H - 1) / H)^2`` (3 % at 64 pixels).
    """
    height, width = slices.shape[-2:]
    pixel_area = (2.0 / (height - 1)) * (2.0 / (width - 1))
    return slices.sum(dim=(-2, -1)).sum(dim=1, keepdim=True) * pixel_area


def profile_slices(
    volume: torch.Tensor,
    geometry: VolumeGeometry,
    frames: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    offsets: torch.Tensor,
    start: int,
    stop: int,
    slice_size: int,
) -> torch.Tensor:
    """Slices ``start .. stop - 1`` of all profiles, numbered direction-major: ``(stop - start, C, S, S)``.

    Slice ``k`` has normal ``n[k // K]`` and offset ``offsets[k % K]``, ``K = len(offsets)``, so a caller can
    walk through ``L * K`` slices in batches of any size without materialising them all.

    Args:
        volume: ``(C, X, Y, Z)`` float volume.
        geometry: the volume's geometry.
        frames: ``(n, u, v)``, each ``(L, 3)``, on the volume's device and in its dtype.
        offsets: ``(K,)`` offsets shared by all directions.
        start: first flat slice index.
        stop: one past the last flat slice index.
        slice_size: pixels per side.
    """
    index = torch.arange(start, stop, device=volume.device)
    direction, offset = index // offsets.shape[0], index % offsets.shape[0]
    n, u, v = (axis[direction] for axis in frames)
    return sample_grid(volume, slice_grid(geometry, n, u, v, offsets[offset], slice_size))


def radon_sum(
    volume: torch.Tensor,
    geometry: VolumeGeometry,
    directions: torch.Tensor,
    num_slices: int,
    slice_size: int = 64,
    batch_size: int = 256,
) -> torch.Tensor:
    """``R_sum`` profiles of a ``(C, X, Y, Z)`` volume: ``(L, M + 2)`` plane integrals at :func:`profile_offsets`.

    Args:
        volume: channel-first volume; the channels are summed.
        geometry: the volume's geometry.
        directions: ``(L, 3)`` unit normals.
        num_slices: ``M``.
        slice_size: pixels per side of each slice (the quadrature of the plane integral).
        batch_size: slices cut at once.
    """
    volume = volume.float()
    offsets, _ = profile_offsets(num_slices, device=volume.device)
    frames = tuple(axis.to(device=volume.device, dtype=volume.dtype) for axis in orthonormal_frames(directions))
    total = directions.shape[0] * offsets.shape[0]
    sums = [
        slice_integral(
            profile_slices(volume, geometry, frames, offsets, start, min(start + batch_size, total), slice_size)
        )
        for start in range(0, total, batch_size)
    ]
    return torch.cat(sums).reshape(directions.shape[0], offsets.shape[0])
