# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Array transforms that cut 2D slices of any orientation out of ``(C, X, Y, Z)`` volumes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import Randomizable, Transform
from monai.utils import TransformBackends, convert_to_tensor

from monai_tonno.tomography.geometry import (
    FOV_MODES,
    VolumeGeometry,
    orthonormal_frames,
    rotate_in_plane,
    sample_grid,
    slice_affine,
    slice_grid,
    spacing_from_affine,
)
from monai_tonno.validation import check_finite, check_int, warn_default_spacing

__all__ = ["ObliqueSlice", "RandObliqueSlice", "SliceFrames"]

# frames of N slices: normals, first and second in-plane axes (each (N, 3)) and offsets (N,)
SliceFrames = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _volume_geometry(
    img: torch.Tensor, fov: str, spacing: Sequence[float] | None, has_affine: bool = True
) -> VolumeGeometry:
    if img.ndim != 4:
        raise ValueError(f"expected a channel-first volume of shape (C, X, Y, Z), got shape {tuple(img.shape)}.")
    if spacing is None:
        if not (has_affine and isinstance(img, MetaTensor)):
            warn_default_spacing("the oblique slicer")
        spacing = spacing_from_affine(img.affine) if isinstance(img, MetaTensor) else (1.0, 1.0, 1.0)
    return VolumeGeometry(tuple(img.shape[1:]), tuple(spacing), fov)


def _with_meta(data: torch.Tensor, source: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Wrap sliced data in a ``MetaTensor`` carrying the source's metadata and the slice's world affine."""
    if not (get_track_meta() and isinstance(source, MetaTensor)):
        return data
    meta = {key: value for key, value in source.meta.items() if key != "affine"}
    return MetaTensor(data, affine=affine.to(source.affine.dtype), meta=meta)


def _slice_volume(
    img: NdarrayOrTensor,
    frames: SliceFrames,
    slice_size: int,
    fov: str,
    spacing: Sequence[float] | None,
    mode: str,
    padding_mode: str,
) -> tuple[torch.Tensor, torch.Tensor, VolumeGeometry]:
    """Cut one slice per frame: ``(N, C, S, S)`` data, the source tensor and its geometry."""
    has_affine = isinstance(img, MetaTensor)  # checked before conversion, which gives plain tensors an identity
    img = convert_to_tensor(img, track_meta=get_track_meta())
    geometry = _volume_geometry(img, fov, spacing, has_affine)
    volume = img.as_tensor() if isinstance(img, MetaTensor) else img
    check_finite("the volume to slice", volume)
    dtype = volume.dtype if volume.is_floating_point() else torch.float32
    normals, us, vs, offsets = (t.to(device=volume.device, dtype=dtype) for t in frames)
    grid = slice_grid(geometry, normals, us, vs, offsets, slice_size)
    return sample_grid(volume.to(dtype), grid, mode, padding_mode), img, geometry


class ObliqueSlice(Transform):
    """Cut one 2D slice, or a stack of parallel slices, of given orientation from a ``(C, X, Y, Z)`` volume.

    The slice is ``S(s, n)(i, j) = V(s n + i' u + j' v)`` with ``i', j'`` over ``[-1, 1]`` in normalised units
    of :class:`~monai_tonno.tomography.geometry.VolumeGeometry` (physical millimetres, so anisotropic spacing is
    honoured). ``(u, v)`` is the default frame of ``normal`` rotated by ``angle`` about it. The output carries a world
    affine: pixel ``(i, j)`` (or ``(k, i, j)`` for a stack) maps to the millimetres of the input's affine.

    Example::

        axial = ObliqueSlice(normal=(0, 0, 1), offset=0.0, slice_size=128)(volume)  # (C, 128, 128)

    Args:
        normal: slice normal in array axis order; normalised here.
        offset: signed distance of the slice from the volume centre in normalised units, or a sequence of
            offsets for a stack (evenly spaced for the stack's affine to be exact).
        angle: in-plane rotation of ``(u, v)`` in radians.
        slice_size: pixels per side.
        fov: ``"inscribed"`` or ``"circumscribed"``, see :class:`~monai_tonno.tomography.geometry.VolumeGeometry`.
        mode: ``"bilinear"`` (trilinear interpolation) or ``"nearest"`` (for label maps).
        padding_mode: ``grid_sample`` padding outside the volume, ``"zeros"`` by default.
        spacing: voxel spacing in millimetres; by default read from the ``MetaTensor`` affine.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        normal: Sequence[float],
        offset: float | Sequence[float] = 0.0,
        angle: float = 0.0,
        slice_size: int = 224,
        fov: str = "inscribed",
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        spacing: Sequence[float] | None = None,
    ) -> None:
        normal_t = torch.as_tensor(normal, dtype=torch.float64)
        if normal_t.shape != (3,) or not bool(torch.isfinite(normal_t).all()) or float(normal_t.norm()) == 0.0:
            raise ValueError(f"normal must be a non-zero finite 3-vector, got {normal!r}.")
        if fov not in FOV_MODES:
            raise ValueError(f"fov must be one of {FOV_MODES}, got {fov!r}.")
        self.normal = normal_t
        self.offset = offset
        self.angle = float(angle)
        self.slice_size = check_int("slice_size", slice_size, 2)
        self.fov = fov
        self.mode = mode
        self.padding_mode = padding_mode
        self.spacing = spacing

    def __call__(self, img: NdarrayOrTensor, mode: str | None = None) -> torch.Tensor:
        """Slice ``img``; a scalar offset gives ``(C, S, S)``, a sequence of ``K`` offsets ``(C, K, S, S)``."""
        stacked = np.ndim(self.offset) > 0
        offsets = torch.as_tensor(self.offset, dtype=torch.float64).reshape(-1)
        n, u, v = orthonormal_frames(self.normal[None])
        u, v = rotate_in_plane(u, v, self.angle)
        count = offsets.shape[0]
        frames = (n.expand(count, 3), u.expand(count, 3), v.expand(count, 3), offsets)
        data, source, geometry = _slice_volume(
            img, frames, self.slice_size, self.fov, self.spacing, mode or self.mode, self.padding_mode
        )
        source_affine = source.affine if isinstance(source, MetaTensor) else None
        affine = slice_affine(geometry, n[0], u[0], v[0], offsets, self.slice_size, source_affine)
        if not stacked:
            return _with_meta(data[0], source, affine)
        index_order = affine.clone()
        index_order[:, :3] = affine[:, [2, 0, 1]]  # array axes are (k, i, j)
        return _with_meta(data.transpose(0, 1), source, index_order)


class RandObliqueSlice(Randomizable, Transform):
    """Cut a random oblique 2D slice from a ``(C, X, Y, Z)`` volume, for training a slice classifier.

    The normal is uniform on the sphere, the offset uniform in ``offset_range``, the in-plane rotation uniform
    in ``[0, 2 pi)``; optionally each in-plane axis is scaled by a factor from ``scale_range`` and the second
    axis sheared towards the first by an angle from ``shear_range`` (paper Section 3.3). Slices are cut by the
    same function as :class:`~monai_tonno.inferers.TomographicInferer`'s, so the network sees at training the
    kind of image it sees at inference.

    Example::

        slicer = RandObliqueSlice(slice_size=128, scale_range=(0.8, 1.25), shear_range=0.2)
        slicer.set_random_state(seed=0)
        image_2d = slicer(volume)  # (C, 128, 128)

    Args:
        slice_size: pixels per side.
        offset_range: ``(low, high)`` offsets in normalised units (``[-1, 1]`` spans the inscribed field of view).
        scale_range: ``(low, high)`` factors for the lengths of ``u`` and ``v`` (drawn independently; larger
            covers more of the volume); ``None`` keeps unit length.
        shear_range: ``(low, high)`` shear angles in radians, or ``a`` for ``(-a, a)``; ``None`` for no shear.
        fov: ``"inscribed"`` or ``"circumscribed"``.
        mode: ``"bilinear"`` (trilinear interpolation) or ``"nearest"``.
        padding_mode: ``grid_sample`` padding outside the volume.
        spacing: voxel spacing in millimetres; by default read from the ``MetaTensor`` affine.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        slice_size: int = 224,
        offset_range: tuple[float, float] = (-1.0, 1.0),
        scale_range: tuple[float, float] | None = None,
        shear_range: tuple[float, float] | float | None = None,
        fov: str = "inscribed",
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        spacing: Sequence[float] | None = None,
    ) -> None:
        self.slice_size = check_int("slice_size", slice_size, 2)
        self.offset_range = self._range("offset_range", offset_range)
        self.scale_range = None if scale_range is None else self._range("scale_range", scale_range)
        if self.scale_range is not None and self.scale_range[0] <= 0:
            raise ValueError(f"scale_range must be positive, got {scale_range!r}.")
        if isinstance(shear_range, (int, float)):
            shear_range = (-abs(shear_range), abs(shear_range))
        self.shear_range = None if shear_range is None else self._range("shear_range", shear_range)
        if fov not in FOV_MODES:
            raise ValueError(f"fov must be one of {FOV_MODES}, got {fov!r}.")
        self.fov = fov
        self.mode = mode
        self.padding_mode = padding_mode
        self.spacing = spacing
        self.frames: SliceFrames | None = None

    @staticmethod
    def _range(name: str, value: Sequence[float]) -> tuple[float, float]:
        if len(value) != 2 or not value[0] <= value[1]:
            raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}.")
        return float(value[0]), float(value[1])

    def randomize(self, data: int | None = None) -> None:
        """Draw the frames of ``data`` slices (1 by default) into :attr:`frames`."""
        count = 1 if data is None else int(data)
        normals = torch.as_tensor(self.R.normal(size=(count, 3)))
        n, u, v = orthonormal_frames(normals)
        u, v = rotate_in_plane(u, v, torch.as_tensor(self.R.uniform(0.0, 2.0 * np.pi, size=count)))
        if self.shear_range is not None:
            shear = torch.as_tensor(self.R.uniform(*self.shear_range, size=count))[:, None]
            v = torch.cos(shear) * v + torch.sin(shear) * u
        if self.scale_range is not None:
            scales = torch.as_tensor(self.R.uniform(*self.scale_range, size=(count, 2)))
            u, v = u * scales[:, :1], v * scales[:, 1:]
        offsets = torch.as_tensor(self.R.uniform(*self.offset_range, size=count))
        self.frames = (n, u, v, offsets)

    def cut(self, img: NdarrayOrTensor, mode: str | None = None) -> list[torch.Tensor]:
        """Cut one ``(C, S, S)`` slice per frame drawn by the last :meth:`randomize`, in one sampling call."""
        if self.frames is None:
            raise RuntimeError("call randomize() before cut().")
        data, source, geometry = _slice_volume(
            img, self.frames, self.slice_size, self.fov, self.spacing, mode or self.mode, self.padding_mode
        )
        source_affine = source.affine if isinstance(source, MetaTensor) else None
        slices = []
        for index, item in enumerate(data):
            n, u, v, offset = (t[index] for t in self.frames)
            affine = slice_affine(geometry, n, u, v, offset[None], self.slice_size, source_affine)
            slices.append(_with_meta(item, source, affine))
        return slices

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True, mode: str | None = None) -> torch.Tensor:
        """Cut a random ``(C, S, S)`` slice (the last drawn one again if ``randomize`` is False)."""
        if randomize or self.frames is None:
            self.randomize()
        return self.cut(img, mode)[0]
