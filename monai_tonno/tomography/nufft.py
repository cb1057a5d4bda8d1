# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Non-uniform FFTs in 3D by Gaussian gridding, in pure torch (CPU and CUDA, differentiable).

Type 1 computes ``f[j] = sum_p c_p exp(i theta_p . j)`` for non-uniform frequencies ``theta_p`` (radians per
grid step) and integer ``j`` on a centred grid: per axis ``j = -N // 2 .. N - N // 2 - 1``. Each point is spread
onto an oversampled grid with a Gaussian kernel, the grid goes through one inverse FFT, and the kernel is
divided out (L. Greengard and J.-Y. Lee, *Accelerating the nonuniform fast Fourier transform*, SIAM Review
46(3), 2004). Spreading is additive, so points can be added in any number of calls and the FFT runs once.

Type 2, ``c_p = sum_j f[j] exp(-i theta_p . j)``, is its adjoint, and is computed as the exact adjoint of the
same steps (kernel divided out, forward FFT, Gaussian interpolation), so that iterative solvers see a pair
``<T1 c, f> = <c, T2 f>`` to rounding, not only to the gridding accuracy.

Several channels (the same points, different strengths) share the kernel weights and indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["GaussianGridding"]


class GaussianGridding:
    """Accumulates non-uniform points on an oversampled grid; :meth:`modes` returns the type-1 sums.

    :meth:`interpolate` is the type-2 transform on the same grid (it does not touch the accumulated points).

    The relative error is about ``exp(-pi * half_width * (1 - 1 / (2 R - 1)))`` for oversampling ``R``
    (Greengard and Lee, Eq. 9): about 1e-4 for ``half_width = 4`` and ``R = 2``, 1e-6 for 6.

    Args:
        shape: ``(N_x, N_y, N_z)`` modes wanted.
        half_width: kernel half-width in oversampled grid points; the kernel covers ``2 * half_width`` points
            per axis.
        oversampling: ``R``, oversampled grid points per mode (at least 1.5).
        dtype: real floating point type of the computation.
        device: device of the grid.
        points_per_call: points spread at once; bounds the memory of a call to about
            ``points_per_call * (2 half_width)^3`` complex numbers (with 16 bytes of index and value each).
            Default 4096 on a CPU (34 MB at ``half_width = 4``) and 32768 on a GPU (270 MB), where fewer, larger
            calls keep it busy. With several channels, that many point-channel pairs.
        channels: independent sets of strengths at the same points (``modes`` gains a leading channel axis).
    """

    def __init__(
        self,
        shape: Sequence[int],
        half_width: int = 4,
        oversampling: float = 2.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        points_per_call: int | None = None,
        channels: int = 1,
    ) -> None:
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be three positive sizes, got {tuple(shape)}.")
        if half_width < 1:
            raise ValueError(f"half_width must be at least 1, got {half_width}.")
        if oversampling < 1.5:
            raise ValueError(f"oversampling must be at least 1.5, got {oversampling}.")
        self.shape = tuple(int(n) for n in shape)
        self.half_width = int(half_width)
        self.grid_shape = tuple(max(2 * math.ceil(oversampling * n / 2), 2 * self.half_width) for n in self.shape)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if points_per_call is None:
            points_per_call = 4096 if self.device.type == "cpu" else 32768
        if points_per_call < 1:
            raise ValueError(f"points_per_call must be at least 1, got {points_per_call}.")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}.")
        self.channels = int(channels)
        self.points_per_call = max(1, int(points_per_call) // self.channels)
        # Greengard and Lee's tau for each axis, from the ratio actually used
        self.tau = [
            math.pi * self.half_width / (n * n * (g / n) * (g / n - 0.5))
            for n, g in zip(self.shape, self.grid_shape, strict=True)
        ]
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.complex_dtype = complex_dtype
        self._grid: torch.Tensor | None = None  # allocated on first use: an operator may only borrow the kernel

    @property
    def grid_size(self) -> int:
        """``G``, the number of oversampled grid points."""
        return math.prod(self.grid_shape)

    @property
    def grid(self) -> torch.Tensor:
        """The ``(channels, G)`` oversampled grid of the points spread so far."""
        if self._grid is None:
            self._grid = torch.zeros(self.channels, self.grid_size, dtype=self.complex_dtype, device=self.device)
        return self._grid

    def spread(self, theta: torch.Tensor, strengths: torch.Tensor) -> None:
        """Add points ``theta`` ``(P, 3)`` (radians per grid step, any real value) with complex ``strengths``.

        ``strengths`` is ``(P,)``, or ``(P, channels)`` with several channels.
        """
        expected = theta.shape[:1] if self.channels == 1 else (theta.shape[0], self.channels)
        if theta.ndim != 2 or theta.shape[1] != 3 or strengths.shape not in (expected, (*theta.shape[:1], 1)):
            raise ValueError(
                f"expected theta of shape (P, 3) and strengths of shape (P,) or (P, channels={self.channels}), got "
                f"{tuple(theta.shape)} and {tuple(strengths.shape)}."
            )
        theta = theta.to(device=self.device, dtype=self.dtype)
        strengths = strengths.to(device=self.device, dtype=self.complex_dtype).reshape(theta.shape[0], self.channels)
        for start in range(0, theta.shape[0], self.points_per_call):
            stop = start + self.points_per_call
            index, weights = self.kernel_entries(theta[start:stop])
            values = (strengths[start:stop].T[:, :, None, None, None] * weights).reshape(self.channels, -1)
            if values.requires_grad or self.grid.requires_grad:
                self._grid = self.grid.index_add(1, index.reshape(-1), values)
            else:
                self.grid.index_add_(1, index.reshape(-1), values)

    def interpolate(self, modes: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Type 2: ``c_p = sum_j modes[j] exp(-i theta_p . j)``, the adjoint of :meth:`spread` then :meth:`modes`.

        Args:
            modes: complex or real ``(N_x, N_y, N_z)``, or ``(channels, N_x, N_y, N_z)``, indexed like
                :meth:`modes`' output.
            theta: ``(P, 3)`` frequencies in radians per grid step.

        Returns:
            complex ``(P,)``, or ``(channels, P)`` for channelled ``modes``.
        """
        single = tuple(modes.shape) == self.shape
        if not single and tuple(modes.shape[1:]) != self.shape:
            raise ValueError(
                f"expected modes of shape {self.shape} or (channels, *{self.shape}), got {tuple(modes.shape)}."
            )
        result = self.interpolate_spectrum(self.oversampled_spectrum(modes.reshape(-1, *self.shape)), theta)
        return result[0] if single else result

    def interpolate_spectrum(self, spectrum: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The last step of :meth:`interpolate`: ``(C, P)`` values at ``theta`` of an :meth:`oversampled_spectrum`."""
        if theta.ndim != 2 or theta.shape[1] != 3:
            raise ValueError(f"expected theta of shape (P, 3), got {tuple(theta.shape)}.")
        theta = theta.to(device=self.device, dtype=self.dtype)
        channels = spectrum.shape[0]
        per_call = max(1, self.points_per_call * self.channels // channels)
        values = []
        for start in range(0, theta.shape[0], per_call):
            index, weights = self.kernel_entries(theta[start : start + per_call])
            gathered = spectrum[:, index.reshape(-1)].reshape(channels, *weights.shape)
            values.append((gathered * weights).sum(dim=(-3, -2, -1)))
        return torch.cat(values, dim=1) if values else spectrum.new_zeros(channels, 0)

    def oversampled_spectrum(self, modes: torch.Tensor) -> torch.Tensor:
        """The first steps of :meth:`interpolate` (the adjoint of :meth:`modes_of`), to share between calls at
        different points: ``(C, *shape)`` modes to the flat ``(C, G)`` oversampled grid."""
        grid = modes.to(device=self.device, dtype=self.complex_dtype)
        for axis in range(3):
            grid = grid * self._kernel_correction(axis)
        # zero-pad: mode j goes to grid index j mod g (the transpose of modes()' index_select)
        for axis, (n, g) in enumerate(zip(self.shape, self.grid_shape, strict=True)):
            j = torch.arange(n, device=self.device) - n // 2
            shape = list(grid.shape)
            shape[axis + 1] = g
            grid = grid.new_zeros(shape).index_copy(axis + 1, j % g, grid)
        # the adjoint of ifftn (1 / G times the conjugate DFT) is fftn / G
        return torch.fft.fftn(grid, dim=(1, 2, 3), norm="forward").reshape(grid.shape[0], -1)

    def _kernel_correction(self, axis: int) -> torch.Tensor:
        """Per mode along ``axis``, the inverse of the kernel's Fourier transform ``sqrt(4 pi tau) exp(-j^2 tau)``
        (times the quadrature's 2 pi), shaped to broadcast over ``(C, N_x, N_y, N_z)``."""
        n, tau = self.shape[axis], self.tau[axis]
        j = torch.arange(n, device=self.device) - n // 2
        correction = 2.0 * math.pi * torch.exp(j.to(self.dtype) ** 2 * tau) / math.sqrt(4.0 * math.pi * tau)
        return correction.reshape([-1 if a == axis + 1 else 1 for a in range(4)])

    def kernel_entries(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat grid indices and real weights of every point's ``(2 w)^3`` kernel entries: ``(P, 2w, 2w, 2w)``."""
        index, weights = self.axis_kernels(theta)
        _, ny, nz = self.grid_shape
        # the (2w)^3 entries are outer products; only the last step touches (P, 2w, 2w, 2w) tensors
        flat_xy = (index[:, 0, :, None] * ny + index[:, 1, None, :]) * nz
        flat = flat_xy[..., None] + index[:, 2, None, None, :]
        weights_xy = weights[:, 0, :, None] * weights[:, 1, None, :]
        return flat, weights_xy[..., None] * weights[:, 2, None, None, :]

    def axis_kernels(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per point and axis, the grid indices (wrapped) and weights of the kernel's ``2 w`` entries:
        ``(P, 3, 2w)`` each; a point's kernel is their outer product."""
        sizes = torch.tensor(self.grid_shape, dtype=self.dtype, device=self.device)
        position = theta * sizes / (2.0 * math.pi)  # in oversampled grid points
        offsets = torch.arange(1 - self.half_width, self.half_width + 1, device=self.device)
        nearest = position.detach().floor().long()
        index = nearest[..., None] + offsets  # (P, 3, 2w)
        distance = index.to(self.dtype) - position[..., None]
        # exp(-(2 pi d / n)^2 / (4 tau)) with d in grid points
        rate = torch.tensor(
            [math.pi**2 / (g * g * t) for g, t in zip(self.grid_shape, self.tau, strict=True)],
            dtype=self.dtype,
            device=self.device,
        )
        weights = torch.exp(-(distance**2) * rate[:, None])
        return index % torch.tensor(self.grid_shape, device=self.device)[:, None], weights

    def real_modes_of_points(
        self, theta: torch.Tensor, strengths: torch.Tensor, memory_bytes: int | None = None
    ) -> torch.Tensor:
        """``Re`` of the type-1 sums of points ``theta`` with ``strengths``, without the oversampled grid.

        The same sums as :meth:`spread` onto an empty grid followed by ``modes().real`` (equal to float rounding:
        only the order of the additions differs), in bounded memory: the oversampled grid (``8 R^3`` bytes per
        mode and channel in complex64, 64 at ``R = 2``) and its inverse FFT (as much again) never exist whole.
        A few x-planes of the grid at a time are spread (each kernel entry once, as :meth:`spread` does) and
        transformed along y and z. Since only the real part is wanted, planes ``k`` and ``-k`` are folded into
        their Hermitian part as they come: a ``(channels, g_x / 2 + 1, N_y, N_z)`` complex intermediate (``4 R``
        bytes per mode, 8 at ``R = 2``), which a real inverse FFT along x turns into the result a few rows at a
        time. Not differentiable.

        Args:
            theta: ``(P, 3)`` frequencies in radians per grid step.
            strengths: ``(P,)`` or ``(P, channels)`` complex strengths.
            memory_bytes: the memory of one slab's grid and transforms; default the larger of half a byte per mode
                and 4 MiB on a CPU, 64 MiB on a GPU.

        Returns:
            real ``shape``, or ``(channels, *shape)`` with several channels.
        """
        theta = theta.detach().to(device=self.device, dtype=self.dtype)
        strengths = strengths.detach().to(device=self.device, dtype=self.complex_dtype).reshape(-1, self.channels)
        if theta.ndim != 2 or theta.shape[1] != 3 or strengths.shape[0] != theta.shape[0]:
            raise ValueError(
                f"expected theta of shape (P, 3) and strengths of shape (P,) or (P, channels={self.channels}), got "
                f"{tuple(theta.shape)} and {tuple(strengths.shape)}."
            )
        channels = self.channels
        (nx, ny, nz), (gx, gy, gz) = self.shape, self.grid_shape
        item = torch.empty((), dtype=self.complex_dtype).element_size()
        if memory_bytes is None:  # on a GPU, fewer and larger slabs keep it busy
            memory_bytes = max(nx * ny * nz // 2, (4 if self.device.type == "cpu" else 64) << 20)
        centred = [
            (torch.arange(n, device=self.device) - n // 2) % g for n, g in zip(self.shape, self.grid_shape, strict=True)
        ]
        correction_yz = self._kernel_correction(1) * self._kernel_correction(2)
        # every (point, x-offset) pair of the kernels, sorted by the x-plane it lands on: a slab of planes takes
        # a contiguous run of pairs, so each kernel entry is spread exactly once
        index, weights = self.axis_kernels(theta)  # (P, 3, 2w)
        index = index.int()  # a few hundred bytes per point in all: the tables below are per point, not per voxel
        width = 2 * self.half_width
        plane, order = index[:, 0].reshape(-1).sort(stable=True)
        point = (order // width).int()
        weight_x = weights[:, 0].reshape(-1)[order]
        del order
        pairs_per_call = max(16, memory_bytes // (4 * width * width * (8 + 2 * item)))
        half = gx // 2  # gx is even
        hermitian = torch.zeros(channels, half + 1, ny, nz, dtype=self.complex_dtype, device=self.device)
        planes = max(1, min(gx, memory_bytes // max(1, 3 * channels * gy * gz * item)))
        bounds = torch.searchsorted(plane, torch.arange(0, gx + planes, planes, device=self.device)).tolist()
        for slab_index, low in enumerate(range(0, gx, planes)):
            high = min(low + planes, gx)
            slab = torch.zeros(channels, (high - low) * gy * gz, dtype=self.complex_dtype, device=self.device)
            for start in range(bounds[slab_index], bounds[slab_index + 1], pairs_per_call):
                stop = min(start + pairs_per_call, bounds[slab_index + 1])
                owner = point[start:stop].long()
                kernel_index, kernel_weight = index[owner].long(), weights[owner]
                yz = (kernel_index[:, 1, :, None] * gz + kernel_index[:, 2, None, :]).reshape(-1, width * width)
                flat = (plane[start:stop, None].long() - low) * (gy * gz) + yz  # (pairs, 4w^2)
                scale = strengths[owner] * weight_x[start:stop, None]  # (pairs, channels)
                yz_weight = (kernel_weight[:, 1, :, None] * kernel_weight[:, 2, None, :]).reshape(-1, width * width)
                values = scale.T[:, :, None] * yz_weight  # (channels, pairs, 4w^2)
                slab.index_add_(1, flat.reshape(-1), values.reshape(channels, -1))
            spectrum = torch.fft.ifftn(slab.reshape(channels, high - low, gy, gz), dim=(2, 3))
            del slab
            spectrum = spectrum.index_select(2, centred[1]).index_select(3, centred[2]) * (0.5 * correction_yz)
            # Re(sum_k H_k e^{i w k j}) is the transform of the Hermitian part (H_k + conj(H_-k)) / 2
            k = torch.arange(low, high, device=self.device)
            low_half, high_half = k <= half, (k >= half) | (k == 0)
            hermitian.index_add_(1, k[low_half], spectrum[:, low_half])
            hermitian.index_add_(1, (gx - k[high_half]) % gx, spectrum[:, high_half].conj())
            del spectrum
        result = torch.empty(channels, nx, ny, nz, dtype=self.dtype, device=self.device)
        correction_x = self._kernel_correction(0)
        rows = max(1, min(ny, memory_bytes // max(1, 3 * channels * gx * nz * item)))
        for low in range(0, ny, rows):
            real = torch.fft.irfft(hermitian[:, :, low : low + rows], n=gx, dim=1)
            result[:, :, low : low + rows] = real.index_select(1, centred[0]) * correction_x
        return result[0] if channels == 1 else result

    def modes(self) -> torch.Tensor:
        """``f[j]`` for the centred ``j``: complex ``shape`` (index ``N // 2`` holds ``j = 0``), or
        ``(channels, *shape)`` with several channels."""
        modes = self.modes_of(self.grid)
        return modes[0] if self.channels == 1 else modes

    def modes_of(self, grid: torch.Tensor) -> torch.Tensor:
        """:meth:`modes` of a flat ``(C, G)`` grid spread elsewhere: ``(C, *shape)``."""
        modes = torch.fft.ifftn(grid.reshape(grid.shape[0], *self.grid_shape), dim=(1, 2, 3))
        for axis, (n, g) in enumerate(zip(self.shape, self.grid_shape, strict=True)):
            j = torch.arange(n, device=self.device) - n // 2
            modes = modes.index_select(axis + 1, j % g) * self._kernel_correction(axis)
        return modes
