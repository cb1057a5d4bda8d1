# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Filtered backprojection of per-slice outputs (ToNNO, paper Eq. 8-11), with K outputs per slice."""

from __future__ import annotations

import torch

from monai_tonno.tomography.fourier_backprojection import FourierBackprojection
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.radon import backproject_profiles, inverse_radon_weight, profile_offsets, second_difference
from monai_tonno.tomography.reconstruction.base import Frames, Reconstructor

__all__ = ["BACKPROJECTIONS", "FilteredBackprojection"]

BACKPROJECTIONS = ("fourier", "linear")


class FilteredBackprojection(Reconstructor):
    """``G_k(x) = c |S^2| / L sum_l q~_lk(x . n_l)``, ``q_lk`` the second difference of output ``k``'s profile.

    Scores are ``(l, M + 2)`` for one output per slice or ``(l, M + 2, K)`` for ``K``; each output is
    reconstructed alone (the inverse is linear), and the second differences are kept until :meth:`result`
    (``L M K`` numbers, small beside the volume), which backprojects them ``channels_per_pass`` outputs at a
    time so that memory stays bounded for hundreds of outputs.

    Args:
        geometry: the output grid.
        num_slices: ``M``.
        num_directions: ``L`` of the inverse weight.
        device: device of the reconstruction.
        backprojection: ``"fourier"`` (one non-uniform FFT,
            :class:`~monai_tonno.tomography.fourier_backprojection.FourierBackprojection`) or ``"linear"`` (linear
            interpolation of every profile at every voxel; the reference).
        chunk_size: directions interpolated at once by the linear backprojection.
        channels_per_pass: outputs backprojected together: the Fourier backprojection holds one oversampled
            complex grid per output (about 16 MB at 64^3), so 16 bound it to about 270 MB.
    """

    def __init__(
        self,
        geometry: VolumeGeometry,
        num_slices: int,
        num_directions: int,
        device: torch.device | str | None = None,
        backprojection: str = "fourier",
        chunk_size: int = 8,
        channels_per_pass: int = 16,
    ) -> None:
        super().__init__(geometry, num_slices, num_directions, device)
        if backprojection not in BACKPROJECTIONS:
            raise ValueError(f"backprojection must be one of {BACKPROJECTIONS}, got {backprojection!r}.")
        self.backprojection = backprojection
        self.chunk_size = int(chunk_size)
        self.channels_per_pass = int(channels_per_pass)
        self.step = profile_offsets(num_slices)[1]
        self.weight = inverse_radon_weight(num_directions)
        self.filtered: list[torch.Tensor] = []  # (l, M, K) weighted second differences
        self.directions: list[torch.Tensor] = []

    def add(self, scores: torch.Tensor, frames: Frames) -> None:
        self._check_scores(scores, frames)
        if scores.ndim not in (2, 3):
            raise ValueError(f"expected scores (l, M + 2) or (l, M + 2, K), got {tuple(scores.shape)}.")
        scores = scores.reshape(*scores.shape[:2], -1).to(self.device)
        self.filtered.append(self.weight * second_difference(scores.movedim(1, -1), self.step).movedim(-1, 1))
        self.directions.append(frames[0].to(self.device))

    def result(self) -> torch.Tensor:
        if not self.filtered:
            raise RuntimeError("no directions were added to the reconstruction.")
        filtered = torch.cat(self.filtered)
        directions = torch.cat(self.directions)
        channels = []
        for start in range(0, filtered.shape[-1], self.channels_per_pass):
            chunk = filtered[..., start : start + self.channels_per_pass]
            channels.append(self._backproject(chunk, directions))
        return channels[0] if len(channels) == 1 else torch.cat(channels)  # no copy of a one-pass volume

    def _backproject(self, filtered: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """``(L, M, c)`` filtered profiles to ``(c, X, Y, Z)``."""
        shape = self.geometry.shape
        if self.backprojection == "linear":
            points = self.geometry.voxel_points(dtype=filtered.dtype, device=filtered.device)
            return torch.stack(
                [
                    backproject_profiles(filtered[..., k], directions, points, self.chunk_size).reshape(shape)
                    for k in range(filtered.shape[-1])
                ]
            )
        count = filtered.shape[-1]
        fourier = FourierBackprojection(
            self.geometry, self.num_slices, dtype=filtered.dtype, device=filtered.device, channels=count
        )
        fourier.add(filtered, directions)
        return fourier.volume().reshape(count, *shape)
