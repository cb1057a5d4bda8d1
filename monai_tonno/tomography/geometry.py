# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Directions, frames and slice-sampling grids: the single place that knows the geometry.

Conventions (see ``DESIGN.md`` at the root of the repository):

- volumes are channel-first ``(C, X, Y, Z)``; every 3-vector here is in *array axis order* ``(x, y, z)``;
- *normalised coordinates* are physical millimetres measured from the centre of the volume and divided by the
  field-of-view radius ``R`` (:attr:`VolumeGeometry.radius`), so a slice ``s n + i' u + j' v`` with
  ``s, i', j'`` in ``[-1, 1]`` is a square of side ``2R`` millimetres whatever the voxel spacing;
- :meth:`VolumeGeometry.to_grid` is the only function that converts to ``grid_sample``'s coordinates, whose
  last axis is ordered ``(z, y, x)`` and whose ``[-1, 1]`` spans voxel centres (``align_corners=True``).

Nothing here knows of networks, MONAI engines or files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.data.utils import affine_to_spacing

__all__ = [
    "FOV_MODES",
    "VolumeGeometry",
    "cut_slices",
    "fibonacci_directions",
    "orthonormal_frames",
    "rotate_in_plane",
    "sample_grid",
    "slice_affine",
    "slice_grid",
    "slice_points",
    "spacing_from_affine",
]

FOV_MODES = ("inscribed", "circumscribed")
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def fibonacci_directions(
    num: int, hemisphere: bool = False, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """Unit normals from the Fibonacci lattice, evenly spread over the sphere or the hemisphere ``n[1] > 0``.

    The sphere follows the paper (Eq. 8): ``y_l = 2 l / (L - 1) - 1``, ``r_l = sqrt(1 - y_l^2)``,
    ``theta_l = l * golden_angle``, ``n_l = (r_l cos theta_l, y_l, r_l sin theta_l)``. The hemisphere uses
    ``y_l = (l + 1/2) / L`` so that no direction lies on the equator, where it would coincide with its own
    antipode's plane family.

    Args:
        num: number of directions ``L`` (at least 1).
        hemisphere: keep one direction of each antipodal pair (``n`` and ``-n`` cut the same planes).
        dtype: floating point type of the result.
        device: device of the result.

    Returns:
        tensor of shape ``(L, 3)`` with unit rows, in array axis order.
    """
    if num < 1:
        raise ValueError(f"the number of directions must be at least 1, got {num}.")
    index = torch.arange(num, dtype=torch.float64)
    if hemisphere:
        y = (index + 0.5) / num
    elif num == 1:
        y = torch.zeros(1, dtype=torch.float64)
    else:
        y = 2.0 * index / (num - 1) - 1.0
    r = torch.sqrt(torch.clamp(1.0 - y * y, min=0.0))
    theta = index * GOLDEN_ANGLE
    normals = torch.stack([r * torch.cos(theta), y, r * torch.sin(theta)], dim=-1)
    return normals.to(dtype=dtype, device=device)


def orthonormal_frames(normals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Complete unit normals to right-handed orthonormal frames ``(n, u, v)``.

    ``u`` is ``e_z x n`` normalised, a smooth function of ``n`` away from the poles ``+-e_z``; near those poles
    ``e_x x n`` is used instead. For ``n = e_x`` this gives ``u = e_y, v = e_z``, so that slice pixel ``(i, j)``
    is array voxel ``(k, i, j)``.

    Args:
        normals: ``(..., 3)`` unit vectors.

    Returns:
        ``(n, u, v)``, each of the shape of ``normals``.
    """
    n = normals / torch.linalg.vector_norm(normals, dim=-1, keepdim=True)
    e_z = torch.zeros_like(n)
    e_z[..., 2] = 1.0
    e_x = torch.zeros_like(n)
    e_x[..., 0] = 1.0
    near_pole = (n[..., 2].abs() > 0.999)[..., None]
    u = torch.linalg.cross(torch.where(near_pole, e_x, e_z), n, dim=-1)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    v = torch.linalg.cross(n, u, dim=-1)
    return n, u, v


def rotate_in_plane(u: torch.Tensor, v: torch.Tensor, angle: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the in-plane axes ``(u, v)`` of a frame by ``angle`` radians about its normal."""
    angle = torch.as_tensor(angle, dtype=u.dtype, device=u.device)[..., None]
    cos, sin = torch.cos(angle), torch.sin(angle)
    return cos * u + sin * v, cos * v - sin * u


def spacing_from_affine(affine: torch.Tensor) -> tuple[float, float, float]:
    """Voxel spacing in millimetres of a ``(4, 4)`` affine (MONAI's ``affine_to_spacing``: the norms of its
    first three columns)."""
    affine = torch.as_tensor(affine, dtype=torch.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) affine, got shape {tuple(affine.shape)}.")
    # suppress_zeros would turn a zero spacing (a broken header) into 1 mm; VolumeGeometry names it instead
    spacing = affine_to_spacing(affine, r=3, suppress_zeros=False)
    return tuple(float(s) for s in spacing)  # type: ignore[return-value]


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the voxels of a ``(X, Y, Z)`` volume lie in normalised coordinates.

    Args:
        shape: spatial shape ``(X, Y, Z)``; each axis needs at least 2 voxels.
        spacing: voxel spacing in millimetres, per array axis; all positive and finite.
        fov: ``"inscribed"`` (the paper: the largest physical extent spans ``[-1, 1]``, so the unit ball seen by
            every direction is inscribed in the volume) or ``"circumscribed"`` (the half-diagonal is 1, so every
            voxel, corners included, is inside the unit ball and seen from every direction).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fov: str = "inscribed"

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        spacing = tuple(float(s) for s in self.spacing)
        if len(shape) != 3:
            raise ValueError(f"expected a 3D spatial shape (X, Y, Z), got {shape}.")
        if min(shape) < 2:
            raise ValueError(f"every spatial axis needs at least 2 voxels, got spatial shape {shape}.")
        if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"voxel spacing must be three positive finite numbers, got {spacing}.")
        if self.fov not in FOV_MODES:
            raise ValueError(f"fov must be one of {FOV_MODES}, got {self.fov!r}.")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)

    @property
    def extent(self) -> tuple[float, float, float]:
        """Physical distance in millimetres between the first and last voxel centres, per axis."""
        return tuple((n - 1) * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]

    @property
    def radius(self) -> float:
        """Millimetres per normalised unit (the field-of-view radius ``R``)."""
        if self.fov == "inscribed":
            return max(self.extent) / 2.0
        return math.sqrt(sum(e * e for e in self.extent)) / 2.0

    def half_extent(self) -> torch.Tensor:
        """Half of each axis' extent in normalised units: voxel centres lie in ``[-h_a, h_a]``."""
        return torch.tensor([e / (2.0 * self.radius) for e in self.extent], dtype=torch.float64)

    def voxel_step(self) -> torch.Tensor:
        """Distance between neighbouring voxel centres along each axis, in normalised units (float64)."""
        return torch.tensor([s / self.radius for s in self.spacing], dtype=torch.float64)

    def centred_origin(self) -> torch.Tensor:
        """Normalised position of voxel ``(X // 2, Y // 2, Z // 2)``, the origin of centred integer indices.

        The voxel at array index ``i`` lies at ``centred_origin() + (i - shape // 2) * voxel_step()``; the
        non-uniform FFTs index their modes this way.
        """
        middle = torch.tensor([n // 2 for n in self.shape], dtype=torch.float64)
        return -self.half_extent() + self.voxel_step() * middle

    def to_grid(self, points: torch.Tensor) -> torch.Tensor:
        """Convert normalised ``(..., 3)`` points (array axis order) to ``grid_sample`` coordinates."""
        scale = (1.0 / self.half_extent()).to(dtype=points.dtype, device=points.device)
        return (points * scale).flip(-1)

    def voxel_points(
        self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Normalised coordinates of all voxel centres, ``(X * Y * Z, 3)`` in C order of the array."""
        axes = [
            torch.linspace(-h, h, n, dtype=torch.float64)
            for h, n in zip(self.half_extent().tolist(), self.shape, strict=True)
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
        return grid.to(dtype=dtype, device=device)

    def voxel_volume(self) -> float:
        """Volume of one voxel in cubic normalised units."""
        return math.prod(s / self.radius for s in self.spacing)

    def index_to_world(self, affine: torch.Tensor | None = None) -> torch.Tensor:
        """``(4, 4)`` map from normalised coordinates to world millimetres through the volume's ``affine``.

        Without an affine the world frame is the voxel frame scaled by the spacing (origin at voxel 0).
        """
        if affine is None:
            affine = torch.diag(torch.tensor([*self.spacing, 1.0], dtype=torch.float64))
        affine = torch.as_tensor(affine, dtype=torch.float64)
        centre = torch.tensor([(n - 1) / 2.0 for n in self.shape], dtype=torch.float64)
        voxels_per_unit = torch.tensor([self.radius / s for s in self.spacing], dtype=torch.float64)
        normalised_to_index = torch.eye(4, dtype=torch.float64)
        normalised_to_index[:3, :3] = torch.diag(voxels_per_unit)
        normalised_to_index[:3, 3] = centre
        return affine @ normalised_to_index


def slice_points(
    normals: torch.Tensor, us: torch.Tensor, vs: torch.Tensor, offsets: torch.Tensor, slice_size: int | Sequence[int]
) -> torch.Tensor:
    """Normalised coordinates of the pixels of slices ``S(s, n)(i, j) = s n + i' u + j' v`` (paper Eq. 4).

    ``i'`` and ``j'`` run over ``[-1, 1]`` in ``slice_size`` steps (pixel centres at both ends).

    Args:
        normals: ``(N, 3)`` slice normals.
        us: ``(N, 3)`` first in-plane axis (its length scales the slice, its angle to ``v`` shears it).
        vs: ``(N, 3)`` second in-plane axis.
        offsets: ``(N,)`` signed distance of each slice from the centre, in normalised units.
        slice_size: pixels per side, an int or ``(height, width)``.

    Returns:
        ``(N, H, W, 3)`` points in array axis order.
    """
    return _plane_pixels(offsets[:, None] * normals, us, vs, slice_size)


def _plane_pixels(
    centres: torch.Tensor, us: torch.Tensor, vs: torch.Tensor, slice_size: int | Sequence[int]
) -> torch.Tensor:
    """``centre + i' u + j' v`` for ``(N, 3)`` frames: ``(N, H, W, 3)``, a permuted view.

    The rows ``centre + i' u`` and the columns ``j' v`` are small, and their sum is the only pass over the
    pixels (elementwise, so exact float32 also where matrix products run in TF32). It is taken one coordinate
    at a time, ``(3, N, H, W)``, so that its innermost loop runs along ``W`` (on a CPU much faster than along the
    3 coordinates); ``grid_sample`` reads the permuted view as it is.
    """
    height, width = (slice_size, slice_size) if isinstance(slice_size, int) else tuple(slice_size)
    i = torch.linspace(-1.0, 1.0, height, dtype=centres.dtype, device=centres.device)
    j = torch.linspace(-1.0, 1.0, width, dtype=centres.dtype, device=centres.device)
    rows = centres.T[:, :, None, None] + i[None, None, :, None] * us.T[:, :, None, None]  # (3, N, H, 1)
    columns = j[None, None, None, :] * vs.T[:, :, None, None]  # (3, N, 1, W)
    return (rows + columns).permute(1, 2, 3, 0)


def slice_grid(
    geometry: VolumeGeometry,
    normals: torch.Tensor,
    us: torch.Tensor,
    vs: torch.Tensor,
    offsets: torch.Tensor,
    slice_size: int | Sequence[int],
) -> torch.Tensor:
    """``geometry.to_grid(slice_points(...))`` in one pass: ``(N, H, W, 3)`` ``grid_sample`` coordinates.

    ``to_grid`` is linear, so it is applied to the ``(N, 3)`` frames rather than to every pixel.
    """
    centres, u, v = geometry.to_grid(torch.stack([offsets[:, None] * normals, us, vs])).unbind(0)
    return _plane_pixels(centres, u, v, slice_size)


def cut_slices(
    volume: torch.Tensor,
    geometry: VolumeGeometry,
    points: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Sample a ``(C, X, Y, Z)`` volume at ``(N, H, W, 3)`` normalised points: ``(N, C, H, W)`` slices.

    Trilinear interpolation (``mode="bilinear"`` in ``grid_sample``'s naming), zero outside the volume, in one
    ``grid_sample`` call for the whole stack.
    """
    return sample_grid(volume, geometry.to_grid(points.to(volume.dtype)), mode, padding_mode)


def sample_grid(
    volume: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros"
) -> torch.Tensor:
    """Sample a ``(C, X, Y, Z)`` volume at ``(N, H, W, 3)`` ``grid_sample`` coordinates: ``(N, C, H, W)``."""
    if volume.device.type == "cpu" and not (volume.requires_grad and torch.is_grad_enabled()):
        # PyTorch's CPU kernel runs the batch entries in parallel, not the points of one entry: one entry per
        # slice (the volume expanded, not copied) is 2.7x faster on 2 cores. Not under autograd, where the
        # volume's gradient would be allocated once per slice.
        expanded = volume[None].expand(grid.shape[0], *volume.shape)
        sampled = F.grid_sample(expanded, grid[:, None], mode=mode, padding_mode=padding_mode, align_corners=True)
        return sampled[:, :, 0]
    sampled = F.grid_sample(volume[None], grid[None], mode=mode, padding_mode=padding_mode, align_corners=True)
    return sampled[0].transpose(0, 1)


def slice_affine(
    geometry: VolumeGeometry,
    normal: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    slice_size: int | Sequence[int],
    affine: torch.Tensor | None = None,
) -> torch.Tensor:
    """World affine of a slice (or an evenly spaced stack) cut with :func:`slice_points`.

    The result is a ``(4, 4)`` matrix mapping pixel indices ``(i, j, k)`` (``k`` the stack index, 0 for one
    slice) to the world millimetres of the input volume's ``affine``, like the affine of a single DICOM slice.

    Args:
        geometry: the volume's geometry.
        normal: ``(3,)`` slice normal.
        u: ``(3,)`` first in-plane axis.
        v: ``(3,)`` second in-plane axis.
        offsets: ``(K,)`` offsets of the stack, evenly spaced (one value for a single slice).
        slice_size: pixels per side, an int or ``(height, width)``.
        affine: the volume's ``(4, 4)`` affine, or ``None`` for the voxel frame scaled by the spacing.
    """
    height, width = (slice_size, slice_size) if isinstance(slice_size, int) else tuple(slice_size)
    normal, u, v, offsets = (torch.as_tensor(t, dtype=torch.float64).cpu() for t in (normal, u, v, offsets))
    offsets = offsets.reshape(-1)
    step = float(offsets[1] - offsets[0]) if offsets.numel() > 1 else 1.0
    pixel_to_normalised = torch.eye(4, dtype=torch.float64)
    pixel_to_normalised[:3, 0] = u * (2.0 / max(height - 1, 1))
    pixel_to_normalised[:3, 1] = v * (2.0 / max(width - 1, 1))
    pixel_to_normalised[:3, 2] = normal * step
    pixel_to_normalised[:3, 3] = offsets[0] * normal - u - v
    return geometry.index_to_world(affine) @ pixel_to_normalised
