# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Backprojection of stacks of 2D maps: Averaged CAM and Tomographic CAM (paper Eq. 12-13)."""

from __future__ import annotations

import torch

from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.radon import backproject_stacks, inverse_radon_weight, profile_offsets, second_difference
from monai_tonno.tomography.reconstruction.base import Frames, Reconstructor

__all__ = ["StackBackprojection"]


class StackBackprojection(Reconstructor):
    """Each direction's ``(M + 2, h, w)`` maps placed back where their slices were cut, summed over directions.

    ``filtered=False`` (Averaged CAM): the ``M`` inner maps, averaged with the weight ``1 / L``.
    ``filtered=True`` (Tomographic CAM): the second difference along the normal per map pixel, with the inverse
    Radon weight ``c |S^2| / L``. Directions are backprojected as they are added: memory does not grow with
    ``L``.

    Args:
        geometry: the output grid.
        num_slices: ``M``.
        num_directions: ``L`` of the weights.
        slice_size: pixels per side of the slices the maps were computed from.
        filtered: Tomographic CAM if true, Averaged CAM if not.
        device: device of the reconstruction.
    """

    def __init__(
        self,
        geometry: VolumeGeometry,
        num_slices: int,
        num_directions: int,
        slice_size: int,
        filtered: bool,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(geometry, num_slices, num_directions, device)
        self.slice_size = int(slice_size)
        self.filtered = bool(filtered)
        self.step = profile_offsets(num_slices)[1]
        self.points = geometry.voxel_points(device=self.device)
        self.heatmap = self.points.new_zeros(self.points.shape[0])

    def add(self, scores: torch.Tensor, frames: Frames) -> None:
        self._check_scores(scores, frames)
        if scores.ndim != 4:
            raise ValueError(f"expected maps (l, M + 2, h, w), got {tuple(scores.shape)}.")
        scores = scores.to(self.device)
        frames = tuple(axis.to(self.device) for axis in frames)
        if self.filtered:
            filtered = second_difference(scores.movedim(1, -1), self.step).movedim(-1, 1)
            weight = inverse_radon_weight(self.num_directions)
        else:
            filtered, weight = scores[:, 1:-1], 1.0 / self.num_directions
        self.heatmap = self.heatmap + weight * backproject_stacks(filtered, frames, self.points, self.slice_size)

    def result(self) -> torch.Tensor:
        return self.heatmap.reshape(1, *self.geometry.shape)
