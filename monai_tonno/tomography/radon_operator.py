# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The plane-integral Radon transform of a voxel volume and its adjoint, by the Fourier-slice theorem.

:class:`RadonOperator` ``A`` maps a volume on the voxel grid of a
:class:`~monai_tonno.tomography.geometry.VolumeGeometry` to the profiles that
:func:`~monai_tonno.tomography.radon.radon_sum` (and so :class:`~monai_tonno.networks.SliceSum` in the inferer)
measures: plane integrals at the ``M + 2`` offsets of :func:`~monai_tonno.tomography.radon.profile_offsets` along each
direction, without cutting a slice. The volume is the trilinear interpolant of its voxels, as ``grid_sample`` sees it,
so each voxel is the tensor product of three hats of one voxel step; the plane integral of such a hat along ``n`` has
the Fourier transform ``prod_a h_a sinc^2(xi n_a h_a)``. By the Fourier-slice theorem the profile's Fourier series
(period ``T``, longer than the volume's reach plus the sampled range, so that no periodic copy reaches a sample) has
the coefficients

    ``c_lk = (1 / T) prod_a h_a sinc^2(k n_la h_a / T) sum_j f_j exp(-2 pi i k (x_j . n_l + 1) / T)``,

a type-2 non-uniform FFT (:meth:`~monai_tonno.tomography.nufft.GaussianGridding.interpolate`) at the frequencies
``k n_l / T`` on radial lines, and the samples are the series at ``s_m`` (its band limit is the samples'
Nyquist frequency). :meth:`RadonOperator.adjoint` is the exact adjoint of those steps (a type-1 transform),
so ``<A f, g> = <f, A* g>`` to rounding. Reference: F. Natterer, *The Mathematics of Computerized Tomography*,
SIAM 2001, Chapter II.1 (the projection-slice theorem).
"""

from __future__ import annotations

import math
import warnings

import torch

from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.tomography.nufft import GaussianGridding
from monai_tonno.tomography.radon import profile_offsets

__all__ = ["RadonOperator"]


class RadonOperator:
    """``A``: plane integrals of a voxel volume at ``L`` directions and ``M + 2`` offsets each; and ``A*``.

    Args:
        geometry: the volume's grid.
        directions: ``(L, 3)`` unit normals.
        num_slices: ``M``; profiles have ``M + 2`` samples at :func:`~monai_tonno.tomography.radon.profile_offsets`.
        half_width: Gaussian gridding half-width (4: relative error about 1e-4).
        oversampling: gridding oversampling factor.
        dtype: real floating point type of the computation.
        device: device of the computation.
        directions_per_call: directions transformed at once; bounds the memory of a call.
        cache_bytes: the gridding entries of the directions (the slow part to compute) are kept for the next
            call up to this size (iterative solvers call the operator many times); 0 to keep nothing.

    Example::

        operator = RadonOperator(VolumeGeometry((64, 64, 64)), fibonacci_directions(125, True), num_slices=64)
        profiles = operator(volume)            # (L, M + 2), as SliceSum measures them
        back = operator.adjoint(profiles)      # (64, 64, 64)
    """

    def __init__(
        self,
        geometry: VolumeGeometry,
        directions: torch.Tensor,
        num_slices: int,
        half_width: int = 4,
        oversampling: float = 2.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        directions_per_call: int = 256,
        cache_bytes: int = 512 * 2**20,
    ) -> None:
        if directions.ndim != 2 or directions.shape[1] != 3:
            raise ValueError(f"expected directions of shape (L, 3), got {tuple(directions.shape)}.")
        self.geometry = geometry
        self.device = torch.device(device) if device is not None else directions.device
        self.dtype = dtype
        self.directions = directions.to(device=self.device, dtype=dtype)
        self.num_slices = int(num_slices)
        offsets, step = profile_offsets(self.num_slices, dtype=torch.float64)
        self.directions_per_call = int(directions_per_call)
        voxel_step = geometry.voxel_step()
        # the furthest a voxel's hat reaches along any direction, beyond which the series would wrap
        reach = float(torch.linalg.vector_norm(geometry.half_extent())) + float(voxel_step.sum())
        period_samples = math.ceil((reach + 1.0 + 2.0 * step) / step) + 1
        self.period_samples = period_samples + (1 - period_samples % 2)  # odd: no Nyquist term
        self.period = self.period_samples * step
        self.voxel_volume = float(voxel_step.prod())
        self.voxel_step = voxel_step.to(self.device, dtype)
        self.origin = geometry.centred_origin().to(self.device, dtype)
        cycles = torch.arange(1, (self.period_samples - 1) // 2 + 1, dtype=torch.float64) / self.period
        self.cycles = cycles.to(self.device, dtype)  # k / T, cycles per normalised unit
        # E[m, k] = exp(2 pi i k (s_m + 1) / T) at the M + 2 offsets
        phase = 2.0 * math.pi * (offsets + 1.0)[:, None] * cycles[None, :]
        self.evaluation = torch.polar(torch.ones_like(phase), phase).to(self.device, _complex(dtype))
        self.gridding = GaussianGridding(geometry.shape, half_width, oversampling, dtype, self.device)
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, tuple[torch.Tensor, ...]] = {}
        self._cached_bytes = 0

    @property
    def num_directions(self) -> int:
        return int(self.directions.shape[0])

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        return self.forward(volume)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """``A f``: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` volume to ``(L, M + 2)`` or ``(C, L, M + 2)`` profiles.

        Differentiable: the backward pass is :meth:`adjoint`, and the reverse.
        """
        channels = self._check(volume, self.geometry.shape, "volume")
        volume = volume.to(device=self.device, dtype=self.dtype).reshape(-1, *self.geometry.shape)
        result = _Forward.apply(volume, self)
        return result if channels else result[0]

    def adjoint(self, profiles: torch.Tensor) -> torch.Tensor:
        """``A* g``: ``(L, M + 2)`` or ``(C, L, M + 2)`` profiles to a ``(X, Y, Z)`` or ``(C, X, Y, Z)`` volume."""
        channels = self._check(profiles, (self.num_directions, self.num_slices + 2), "profiles")
        profiles = profiles.to(device=self.device, dtype=self.dtype)
        result = _Adjoint.apply(profiles.reshape(-1, self.num_directions, self.num_slices + 2), self)
        return result if channels else result[0]

    def _kernels(self, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The directions from ``start`` as sparse gridding matrices and phase factors, cached while they fit.

        Returns the ``(P, G)`` interpolation matrix of the ``P = l k`` frequencies, its transpose (the spreading),
        and the ``(l, k)`` offset phases and footprints.
        """
        if start in self._cache:
            return self._cache[start]
        directions = self.directions[start : start + self.directions_per_call]
        theta, shift, footprint = self._frequencies(directions)
        index, weights = self.gridding.kernel_entries(theta.reshape(-1, 3))
        index, weights = index.reshape(index.shape[0], -1), weights.reshape(weights.shape[0], -1)
        columns = self.gridding.grid_size
        entries = (_sparse_rows(index, weights, columns), _sparse_columns(index, weights, columns), shift, footprint)
        size = 2 * index.numel() * (index.element_size() + weights.element_size())
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[start] = entries
            self._cached_bytes += size
        return entries

    def _apply_forward(self, volume: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_real(self.gridding.oversampled_spectrum(volume))  # (C, G, 2)
        count = volume.shape[0]
        spectrum = spectrum.permute(1, 0, 2).reshape(spectrum.shape[1], 2 * count)  # (G, 2C)
        total = volume.sum(dim=(1, 2, 3))  # the k = 0 coefficient's sum
        profiles = []
        for start in range(0, self.num_directions, self.directions_per_call):
            interpolation, _, shift, footprint = self._kernels(start)
            values = interpolation @ spectrum  # (l k, 2C)
            coefficients = torch.view_as_complex(values.reshape(-1, count, 2).contiguous()).T  # (C, l k)
            coefficients = coefficients.reshape(count, *shift.shape) * (footprint * torch.conj(shift))
            series = 2.0 * (coefficients @ self.evaluation.T).real  # (C, l, M + 2)
            profiles.append(series + (self.voxel_volume / self.period) * total[:, None, None])
        return torch.cat(profiles, dim=1)

    def _apply_adjoint(self, profiles: torch.Tensor) -> torch.Tensor:
        count = profiles.shape[0]
        gridding = self.gridding
        grid = profiles.new_zeros(gridding.grid_size, 2 * count)
        for start in range(0, self.num_directions, self.directions_per_call):
            _, spreading, shift, footprint = self._kernels(start)
            projected = profiles[:, start : start + shift.shape[0]].to(self.evaluation.dtype) @ self.evaluation
            strengths = 2.0 * footprint * shift * torch.conj(projected)  # (C, l, k)
            grid = grid + spreading @ torch.view_as_real(strengths.reshape(count, -1).T.contiguous()).reshape(
                -1, 2 * count
            )
        grid = torch.view_as_complex(grid.reshape(-1, count, 2).permute(1, 0, 2).contiguous())
        volume = gridding.modes_of(grid).real
        return volume + (self.voxel_volume / self.period) * profiles.sum(dim=(1, 2))[:, None, None, None]

    def _frequencies(self, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per direction and frequency ``k >= 1``: gridding frequencies, phase of the offset, footprint / T."""
        theta = 2.0 * math.pi * self.cycles[None, :, None] * (directions * self.voxel_step)[:, None, :]
        phase = 2.0 * math.pi * self.cycles[None, :] * (directions @ self.origin + 1.0)[:, None]
        shift = torch.polar(torch.ones_like(phase), phase)
        projected_step = self.cycles[None, :, None] * (directions * self.voxel_step)[:, None, :]
        footprint = (self.voxel_volume / self.period) * torch.sinc(projected_step).pow(2).prod(dim=-1)
        return theta, shift, footprint

    @staticmethod
    def _check(tensor: torch.Tensor, shape: tuple[int, ...], name: str) -> bool:
        """Whether ``tensor`` has a leading channel axis; raises if its shape is neither form."""
        if tuple(tensor.shape) == tuple(shape):
            return False
        if tensor.ndim == len(shape) + 1 and tuple(tensor.shape[1:]) == tuple(shape):
            return True
        raise ValueError(f"expected {name} of shape {tuple(shape)} or (C, *{tuple(shape)}), got {tuple(tensor.shape)}.")


def _sparse_rows(index: torch.Tensor, weights: torch.Tensor, columns: int) -> torch.Tensor:
    """The ``(P, columns)`` sparse matrix with ``weights[p]`` at ``index[p]`` (a CSR product is about 3x faster
    than gathering and summing on a CPU)."""
    rows, width = index.shape
    crow = torch.arange(0, rows * width + 1, width, device=index.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return torch.sparse_csr_tensor(crow, index.reshape(-1), weights.reshape(-1), size=(rows, columns))


def _sparse_columns(index: torch.Tensor, weights: torch.Tensor, columns: int) -> torch.Tensor:
    """The transpose of :func:`_sparse_rows` in CSR form: spreading ``P`` points onto ``columns`` grid points."""
    rows, width = index.shape
    flat = index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.zeros(columns + 1, dtype=torch.int64, device=index.device)
    crow[1:] = torch.cumsum(torch.bincount(flat, minlength=columns), dim=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return torch.sparse_csr_tensor(crow, order // width, weights.reshape(-1)[order], size=(columns, rows))


class _Forward(torch.autograd.Function):
    """``A`` with ``A*`` as its backward pass: exact, and nothing of the operator kept for it."""

    @staticmethod
    def forward(ctx, volume: torch.Tensor, operator: RadonOperator) -> torch.Tensor:
        ctx.operator = operator
        return operator._apply_forward(volume)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Adjoint.apply(grad, ctx.operator), None


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, profiles: torch.Tensor, operator: RadonOperator) -> torch.Tensor:
        ctx.operator = operator
        return operator._apply_adjoint(profiles)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Forward.apply(grad, ctx.operator), None


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64
