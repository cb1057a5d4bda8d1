# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Backprojection of 1D profiles onto a voxel grid through the Fourier domain, in ``O(L M w^3 + N^3 log N)``.

The straightforward backprojection ``B q (x) = sum_l q~_l(x . n_l)``
(:func:`~monai_tonno.tomography.radon.backproject_profiles`) interpolates every profile at every voxel: ``L x N^3``
interpolations. Here each profile is written as a Fourier series of period ``T`` (longer than the voxels' range of ``x
. n`` plus the profile's support, so that no periodic copy reaches a voxel):

    ``q~_l(s) = sum_k a_lk exp(2 pi i k (s + 1) / T)``,

so that ``B q`` on the voxel grid is a sum of plane waves with frequencies ``k n_l / T`` on radial lines: one
type-1 non-uniform FFT (:class:`~monai_tonno.tomography.nufft.GaussianGridding`) for all directions together.

The coefficients are those of the linear interpolation of the samples restricted to its base band:
``a_k = Q_k sinc^2(k / K) / K`` with ``Q`` the DFT of the zero-padded samples. Linear interpolation multiplies the
samples' spectrum by ``sinc^2``, then repeats it above the samples' Nyquist frequency; the repetitions are the
staircase artefacts of interpolation and are dropped, so for profiles band-limited to the base band this is at
least as accurate as linear interpolation, and differs from it only by those artefacts.
"""

from __future__ import annotations

import math

import torch

from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.nufft import GaussianGridding

__all__ = ["FourierBackprojection"]


class FourierBackprojection:
    """Accumulates the backprojections of profiles on ``[-1, 1]`` onto the voxel grid of ``geometry``.

    Call :meth:`add` with any number of chunks of directions, then :meth:`volume` once; the result equals
    ``backproject_profiles`` of all the profiles (within the interpolation difference stated in the module's
    docstring, and the gridding accuracy set by ``half_width``).

    Args:
        geometry: the output grid (shape and normalised extent).
        num_samples: ``M``, samples per profile, evenly spaced over ``[-1, 1]``.
        half_width: Gaussian gridding half-width (4: relative error about 1e-4; 6: 1e-6).
        oversampling: gridding oversampling factor.
        dtype: real floating point type.
        device: device of the computation.
        directions_per_spread: added directions are turned into gridding points in batches of at least this
            many (fewer, larger tensor operations); default 64 on a CPU, 512 on a GPU. The points are gridded
            once, by :meth:`volume`.
        channels: profiles of several outputs per direction, ``(l, M, channels)``, reconstructed side by side
            (sharing the gridding kernel).
    """

    def __init__(
        self,
        geometry: VolumeGeometry,
        num_samples: int,
        half_width: int = 4,
        oversampling: float = 2.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        directions_per_spread: int | None = None,
        channels: int = 1,
    ) -> None:
        if num_samples < 2:
            raise ValueError(f"num_samples must be at least 2, got {num_samples}.")
        self.geometry = geometry
        self.num_samples = int(num_samples)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        half_extent = geometry.half_extent()
        step = 2.0 / (num_samples - 1)
        reach = float(torch.linalg.vector_norm(half_extent))  # largest |x . n| over the voxels
        periods = math.ceil((reach + 1.0 + step) / step) + 1
        self.period_samples = periods + (1 - periods % 2)  # odd: symmetric frequencies, no Nyquist term
        self.period = self.period_samples * step
        self.voxel_step = geometry.voxel_step().to(self.device, dtype)
        self.centre = geometry.centred_origin().to(self.device, dtype)  # voxel index n // 2 is mode 0
        frequencies = torch.arange(1, (self.period_samples - 1) // 2 + 1, device=self.device, dtype=dtype)
        self.frequencies = frequencies
        self.taper = torch.sinc(frequencies / self.period_samples) ** 2
        self.channels = int(channels)
        self.constant = torch.zeros(self.channels, dtype=dtype, device=self.device)
        self.gridding = GaussianGridding(
            geometry.shape, half_width, oversampling, dtype, self.device, channels=self.channels
        )
        if directions_per_spread is None:
            directions_per_spread = 64 if self.device.type == "cpu" else 512
        self.directions_per_spread = int(directions_per_spread)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # added, not yet turned into points
        self.points: list[tuple[torch.Tensor, torch.Tensor]] = []  # gridding frequencies and strengths

    def add(self, profiles: torch.Tensor, directions: torch.Tensor) -> None:
        """Add the backprojections of ``profiles`` ``(l, M)`` or ``(l, M, channels)`` along unit ``directions``."""
        if profiles.ndim == 2 and self.channels == 1:
            profiles = profiles[..., None]
        if (
            profiles.shape[1:] != (self.num_samples, self.channels)
            or profiles.ndim != 3
            or directions.shape != (len(profiles), 3)
        ):
            expected = f"(l, {self.num_samples})" if self.channels == 1 else f"(l, {self.num_samples}, {self.channels})"
            raise ValueError(
                f"expected profiles {expected} and directions (l, 3), got {tuple(profiles.shape)} "
                f"and {tuple(directions.shape)}."
            )
        self.pending.append((profiles.to(device=self.device, dtype=self.dtype),
                             directions.to(device=self.device, dtype=self.dtype)))  # fmt: skip
        if sum(len(p) for p, _ in self.pending) >= self.directions_per_spread:
            self._collect_points()

    def _collect_points(self) -> None:
        if not self.pending:
            return
        profiles = torch.cat([p for p, _ in self.pending])
        directions = torch.cat([d for _, d in self.pending])
        self.pending = []
        spectrum = torch.fft.fft(profiles, n=self.period_samples, dim=1)  # (l, k, channels)
        self.constant = self.constant + spectrum[:, 0].real.sum(dim=0) / self.period_samples
        # q~(x . n) = constant + 2 Re sum_{k >= 1} a_k exp(2 pi i k (x_c . n + 1) / T) exp(i theta_k . j)
        cycles = self.frequencies / self.period  # (k,)
        phase = 2.0 * math.pi * cycles[None, :] * (directions @ self.centre + 1.0)[:, None]
        strengths = (
            2.0
            / self.period_samples
            * (self.taper * torch.polar(torch.ones_like(phase), phase))[..., None]
            * spectrum[:, 1 : len(cycles) + 1]
        )
        theta = 2.0 * math.pi * cycles[None, :, None] * (directions * self.voxel_step)[:, None, :]
        self.points.append((theta.reshape(-1, 3), strengths.reshape(-1, self.channels)))

    def volume(self) -> torch.Tensor:
        """The accumulated backprojection: real, of the geometry's shape, or ``(channels, *shape)``.

        The gridding runs here, once, slab by slab
        (:meth:`~monai_tonno.tomography.nufft.GaussianGridding.real_modes_of_points`), so that the memory added to the
        output stays about 16 bytes per voxel and channel whatever the number of directions (the whole oversampled
        grid and its FFT would take about 128).
        """
        self._collect_points()
        if self.points:
            theta = torch.cat([t for t, _ in self.points])
            strengths = torch.cat([c for _, c in self.points])
            if strengths.requires_grad and torch.is_grad_enabled():  # the grid path is the differentiable one
                self.gridding.spread(theta, strengths)
                volume = self.gridding.modes().real.reshape(self.channels, *self.geometry.shape)
                return self._with_constant(volume)
            volume = self.gridding.real_modes_of_points(theta, strengths).reshape(self.channels, *self.geometry.shape)
        else:
            volume = torch.zeros(self.channels, *self.geometry.shape, dtype=self.dtype, device=self.device)
        volume += self.constant[:, None, None, None]  # in place: no second volume
        return volume[0] if self.channels == 1 else volume

    def _with_constant(self, volume: torch.Tensor) -> torch.Tensor:
        volume = volume + self.constant[:, None, None, None]
        return volume[0] if self.channels == 1 else volume
