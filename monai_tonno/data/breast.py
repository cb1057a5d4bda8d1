# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Breast MRI transforms for the Duke collection: the box as a mask, one breast of two, DCE phases as channels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform
from monai.transforms.croppad.array import Crop
from monai.utils import TransformBackends

from monai_tonno.data.duke import box_voxels, parse_phases
from monai_tonno.data.sitk_reader import instance_numbers

__all__ = ["BoxMaskd", "BreastSided", "DCEChannelsd", "breast_output_name"]

SIDES = ("left", "right")


class BoxMaskd(MapTransform):
    """Draw a Duke annotation box as a ``(1, X, Y, Z)`` mask on the grid of the image as read.

    Place it right after ``LoadImaged`` (with :class:`~monai_tonno.data.SimpleITKReader`), before any spatial
    transform: the box counts rows, columns and slices of the series as stored, slices in acquisition order
    (``slice_instance_numbers`` in the image's metadata). The mask is empty when the item's label is 0 (the
    breast without the box); later spatial transforms carry it with the image.

    Args:
        keys: the image key (one).
        box_key: the item's box, ``[start row, end row, start column, end column, start slice, end slice]``.
        output_key: where the mask goes.
        label_key: the item's label; no box is drawn where it is 0 (``None``: always drawn).
        allow_missing_keys: do not raise for missing keys.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        box_key: str = "box",
        output_key: str = "mask",
        label_key: str | None = "label",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_key, self.output_key, self.label_key = box_key, output_key, label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor) or image.ndim != 4:
                raise ValueError(f"BoxMaskd needs {key} as a channel-first MetaTensor (C, X, Y, Z) from LoadImaged.")
            if image.applied_operations:
                raise ValueError(
                    f"BoxMaskd must come before any spatial transform (the box counts the series' own rows, columns "
                    f"and slices); {key} has been through {[op['class'] for op in image.applied_operations]}."
                )
            mask = torch.zeros((1, *image.shape[1:]), dtype=torch.float32)
            if self.label_key is None or int(d[self.label_key]) != 0:
                x, y, z = box_voxels(d[self.box_key], image.shape[1:], instance_numbers(image.meta))
                mask[0, x, y, torch.as_tensor(z)] = 1.0
            d[self.output_key] = MetaTensor(mask, meta=dict(image.meta))  # the meta carries the affine
        return d


class BreastSided(MapTransform, InvertibleTransform):
    """Keep one breast: the half of the volume on the item's side of the body's midline.

    The midline is a plane of constant RAS x (:func:`~monai_tonno.data.find_midline`, computed once per
    patient by :func:`~monai_tonno.data.duke_datalist`); the crop keeps the array indices of the left-right
    axis on the item's side, whatever the orientation. The cropped image keeps its world coordinates (its affine
    is shifted), and ``Invertd`` pads it back into the whole volume.

    Args:
        keys: image and mask keys, ``(C, X, Y, Z)`` on the same grid.
        side_key: the item's ``"left"`` or ``"right"`` (the patient's).
        midline_key: the item's midline, RAS x in mm.
        allow_missing_keys: do not raise for missing keys.
    """

    backend = Crop.backend

    def __init__(
        self,
        keys: KeysCollection,
        side_key: str = "side",
        midline_key: str = "midline",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.side_key, self.midline_key = side_key, midline_key
        self.cropper = Crop()

    @staticmethod
    def half_slices(affine: np.ndarray, shape: Sequence[int], side: str, midline: float) -> tuple[slice, ...]:
        """Array slices of the voxels on ``side`` of the plane RAS ``x = midline``."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}.")
        affine = np.asarray(affine, dtype=np.float64)
        axis = int(np.argmax(np.abs(affine[0, :3])))
        centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
        x0 = float(affine[0, :3] @ centre + affine[0, 3]) - affine[0, axis] * centre[axis]
        cut = (midline - x0) / affine[0, axis]  # fractional index of the midline along the axis
        boundary = int(np.clip(np.floor(cut) + 1, 0, shape[axis]))  # first index past the midline
        rising = affine[0, axis] > 0  # x grows (towards the patient's right) with the index
        keep_low = (side == "left") == rising
        slices = [slice(None)] * len(shape)
        slices[axis] = slice(0, boundary) if keep_low else slice(boundary, int(shape[axis]))
        if slices[axis].stop - (slices[axis].start or 0) <= 0:
            raise ValueError(f"the midline x = {midline:.1f} mm leaves no voxel on the {side} side of the volume.")
        return tuple(slices)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        slices = None
        for key in self.key_iterator(d):
            image = d[key]
            if slices is None:
                slices = self.half_slices(
                    np.asarray(image.affine), image.shape[1:], d[self.side_key], d[self.midline_key]
                )
            d[key] = self.cropper(image, slices)
            if isinstance(d[key], MetaTensor):
                d[key].meta["breast_side"] = d[self.side_key]
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper.inverse(d[key])
        return d


class DCEChannelsd(MapTransform):
    """Dynamic contrast-enhanced phases as channels: the series stacked on loading, to phases and differences.

    The loaded image holds one channel per series of ``series_phases`` (e.g. ``pre``, ``post1``); the output
    holds one channel per entry of ``phases`` (e.g. ``pre`` and ``post1-pre``, the subtraction image). Every
    channel is divided by the ``percentile`` of the first series, so that enhancement is measured in units of
    the pre-contrast brightness, the same in every patient whatever the scanner's scale.

    Args:
        keys: the image key.
        phases: the output channels.
        series_key: the item's list of the loaded series' phases (from :func:`~monai_tonno.data.duke_datalist`).
        percentile: the percentile of the first series that becomes 1.
        allow_missing_keys: do not raise for missing keys.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        phases: Sequence[str] = ("pre", "post1-pre"),
        series_key: str = "series_phases",
        percentile: float = 99.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}.")
        self.phases, self.channels = list(phases), parse_phases(phases)[1]
        self.series_key, self.percentile = series_key, float(percentile)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        loaded = list(d[self.series_key])
        for key in self.key_iterator(d):
            image = d[key]
            if image.shape[0] != len(loaded):
                raise ValueError(f"{key} has {image.shape[0]} channels for the {len(loaded)} series {loaded}.")
            missing = [p for c in self.channels for p in c if p is not None and p not in loaded]
            if missing:
                raise ValueError(f"phases {self.phases} need series {missing}, not among the loaded {loaded}.")
            scale = float(torch.quantile(image[0].reshape(-1)[:: max(image[0].numel() // 1_000_000, 1)].float(),
                                         self.percentile / 100))  # fmt: skip
            if not scale > 0:
                raise ValueError(f"the {loaded[0]} series of {key} is empty (its {self.percentile}th percentile is 0).")
            channels = [image[loaded.index(a)] - (image[loaded.index(b)] if b else 0) for a, b in self.channels]
            d[key] = torch.stack(channels, 0) / scale
        return d


def breast_output_name(metadict: Mapping, saver: Any) -> dict:
    """``SaveImage`` file names ``<patient>_<side>``: the series folder's name says nothing of the breast.

    The patient is the folder two levels above the (first) series folder, ``<patient>/<study>/<series>``.
    """
    source = metadict.get("filename_or_obj", "volume")
    source = source[0] if isinstance(source, (list, tuple)) else source
    parts = Path(str(source)).parts
    patient = parts[-3] if len(parts) >= 3 else Path(str(source)).name
    return {"subject": f"{patient}_{metadict.get('breast_side', 'volume')}", "idx": None}
