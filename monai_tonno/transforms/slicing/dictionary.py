# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Dictionary versions of the slicing transforms."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.transforms.traits import MultiSampleTrait
from monai.utils import ensure_tuple_rep

from monai_tonno.transforms.slicing.array import ObliqueSlice, RandObliqueSlice
from monai_tonno.validation import check_int

__all__ = ["ObliqueSliced", "RandObliqueSliced"]


class ObliqueSliced(MapTransform):
    """Dictionary version of :class:`~monai_tonno.transforms.ObliqueSlice`: the same plane through every key.

    Args:
        keys: keys of the volumes to slice.
        normal: slice normal in array axis order.
        offset: offset, or sequence of offsets for a stack, in normalised units.
        angle: in-plane rotation in radians.
        slice_size: pixels per side.
        fov: ``"inscribed"`` or ``"circumscribed"``.
        mode: interpolation per key (``"bilinear"`` or ``"nearest"``), or one for all.
        padding_mode: ``grid_sample`` padding outside the volume.
        spacing: voxel spacing in millimetres; by default read from each ``MetaTensor``'s affine.
        allow_missing_keys: do not raise for missing keys.
    """

    backend = ObliqueSlice.backend

    def __init__(
        self,
        keys: KeysCollection,
        normal: Sequence[float],
        offset: float | Sequence[float] = 0.0,
        angle: float = 0.0,
        slice_size: int = 224,
        fov: str = "inscribed",
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str = "zeros",
        spacing: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slicer = ObliqueSlice(normal, offset, angle, slice_size, fov, padding_mode=padding_mode, spacing=spacing)
        self.mode = ensure_tuple_rep(mode, len(self.keys))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.slicer(d[key], mode=mode)
        return d


class RandObliqueSliced(Randomizable, MapTransform, MultiSampleTrait):
    """Dictionary version of :class:`~monai_tonno.transforms.RandObliqueSlice` with ``num_samples`` slices.

    Every key (e.g. image and mask) is cut along the same random planes; the other entries of the dictionary,
    such as the volume-level ``label``, are carried to every sample. Returns a list of ``num_samples``
    dictionaries, as MONAI's multi-sample transforms do, so a ``DataLoader`` with ``list_data_collate`` turns
    ``B`` volumes into a batch of ``B * num_samples`` slices.

    Example::

        train_transforms = Compose([
            LoadImaged(keys="image", ensure_channel_first=True),
            RandObliqueSliced(keys="image", slice_size=128, num_samples=16, scale_range=(0.8, 1.25)),
        ])

    Args:
        keys: keys of the volumes to slice.
        slice_size: pixels per side.
        num_samples: slices cut from each volume per call.
        offset_range: ``(low, high)`` offsets in normalised units.
        scale_range: ``(low, high)`` in-plane axis length factors, or ``None``.
        shear_range: ``(low, high)`` shear angles in radians (or ``a`` for ``(-a, a)``), or ``None``.
        fov: ``"inscribed"`` or ``"circumscribed"``.
        mode: interpolation per key (``"bilinear"`` or ``"nearest"``), or one for all.
        padding_mode: ``grid_sample`` padding outside the volume.
        allow_missing_keys: do not raise for missing keys.
    """

    backend = RandObliqueSlice.backend

    def __init__(
        self,
        keys: KeysCollection,
        slice_size: int = 224,
        num_samples: int = 1,
        offset_range: tuple[float, float] = (-1.0, 1.0),
        scale_range: tuple[float, float] | None = None,
        shear_range: tuple[float, float] | float | None = None,
        fov: str = "inscribed",
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str = "zeros",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.num_samples = check_int("num_samples", num_samples, 1)
        self.slicer = RandObliqueSlice(
            slice_size, offset_range, scale_range, shear_range, fov, padding_mode=padding_mode
        )
        self.mode = ensure_tuple_rep(mode, len(self.keys))

    def set_random_state(self, seed: int | None = None, state: Any = None) -> RandObliqueSliced:
        super().set_random_state(seed, state)
        self.slicer.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.slicer.randomize(self.num_samples)

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        self.randomize()
        samples = [dict(data) for _ in range(self.num_samples)]
        for key, mode in self.key_iterator(dict(data), self.mode):
            for sample, image in zip(samples, self.slicer.cut(data[key], mode), strict=True):
                sample[key] = image
        return samples
