# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Reference volumes with closed-form Radon transforms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from monai_tonno.tomography.geometry import VolumeGeometry

Blob = tuple[Sequence[float], float, float]  # centre (normalised units), sigma, amplitude


def gaussian_blobs(geometry: VolumeGeometry, blobs: Sequence[Blob]) -> torch.Tensor:
    """``(1, X, Y, Z)`` float64 sum of ``a * exp(-|x - c|^2 / (2 sigma^2))`` at the voxel centres."""
    points = geometry.voxel_points(torch.float64)
    volume = torch.zeros(points.shape[0], dtype=torch.float64)
    for centre, sigma, amplitude in blobs:
        offset = points - torch.tensor(centre, dtype=torch.float64)
        volume += amplitude * torch.exp(-(offset**2).sum(1) / (2 * sigma**2))
    return volume.reshape(1, *geometry.shape)


def gaussian_blobs_radon(blobs: Sequence[Blob], directions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Exact plane integrals ``2 pi sigma^2 a exp(-(s - c.n)^2 / (2 sigma^2))``, ``(L, K)``."""
    directions, offsets = directions.double(), offsets.double()
    result = torch.zeros(directions.shape[0], offsets.shape[0], dtype=torch.float64)
    for centre, sigma, amplitude in blobs:
        projected = directions @ torch.tensor(centre, dtype=torch.float64)
        result += (
            2
            * math.pi
            * sigma**2
            * amplitude
            * torch.exp(-((offsets[None] - projected[:, None]) ** 2) / (2 * sigma**2))
        )
    return result


def relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float((estimate.double() - reference.double()).norm() / reference.double().norm())
