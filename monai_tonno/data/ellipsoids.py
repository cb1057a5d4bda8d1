# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Ellipsoid phantoms: a 3D Shepp-Logan head, for checking reconstructions against a known volume."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["SHEPP_LOGAN_3D", "ellipsoid_phantom"]

# amplitude, semi-axes (a, b, c), centre (x, y, z), rotation about the third axis in degrees; normalised units.
# The "modified" 3D Shepp-Logan head (higher contrast than Kak & Slaney's original), rotations about one axis only.
SHEPP_LOGAN_3D: tuple[tuple[float, tuple[float, float, float], tuple[float, float, float], float], ...] = (
    (1.0, (0.69, 0.92, 0.81), (0.0, 0.0, 0.0), 0.0),
    (-0.8, (0.6624, 0.874, 0.78), (0.0, -0.0184, 0.0), 0.0),
    (-0.2, (0.11, 0.31, 0.22), (0.22, 0.0, 0.0), -18.0),
    (-0.2, (0.16, 0.41, 0.28), (-0.22, 0.0, 0.0), 18.0),
    (0.1, (0.21, 0.25, 0.41), (0.0, 0.35, -0.15), 0.0),
    (0.1, (0.046, 0.046, 0.05), (0.0, 0.1, 0.25), 0.0),
    (0.1, (0.046, 0.046, 0.05), (0.0, -0.1, 0.25), 0.0),
    (0.1, (0.046, 0.023, 0.05), (-0.08, -0.605, 0.0), 0.0),
    (0.1, (0.023, 0.023, 0.02), (0.0, -0.606, 0.0), 0.0),
    (0.1, (0.023, 0.046, 0.02), (0.06, -0.605, 0.0), 0.0),
)


def ellipsoid_phantom(
    shape: Sequence[int],
    ellipsoids: Sequence[tuple[float, Sequence[float], Sequence[float], float]] = SHEPP_LOGAN_3D,
    scale: float = 1.0,
) -> torch.Tensor:
    """Sum of uniform ellipsoids sampled at voxel centres spanning ``[-1, 1]`` on each axis.

    Args:
        shape: spatial shape ``(X, Y, Z)``.
        ellipsoids: ``(amplitude, semi_axes, centre, angle_degrees)`` rows; the angle rotates about axis 2.
        scale: shrinks (< 1) or grows the whole phantom about the centre.

    Returns:
        ``(1, X, Y, Z)`` float32 volume.
    """
    axes = [torch.linspace(-1.0, 1.0, int(n), dtype=torch.float64) for n in shape]
    x, y, z = torch.meshgrid(*axes, indexing="ij")
    volume = torch.zeros_like(x)
    for amplitude, semi_axes, centre, angle in ellipsoids:
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        dx, dy, dz = x / scale - centre[0], y / scale - centre[1], z / scale - centre[2]
        rx, ry = cos * dx + sin * dy, -sin * dx + cos * dy
        inside = (rx / semi_axes[0]) ** 2 + (ry / semi_axes[1]) ** 2 + (dz / semi_axes[2]) ** 2 <= 1.0
        volume += amplitude * inside
    return volume[None].float()
