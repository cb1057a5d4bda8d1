# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Voxel and slice size from the dataset, so that a bundle's defaults fit data nobody tuned them to.

A fixed 4 mm voxel and 64-pixel slice suit the synthetic 64^3 default and shrink the lesions of other data: a
whole-body scan of about 1 m cut into 64 pixels has 15 mm pixels, and a 6 mm lesion vanishes. Here the isotropic
voxel follows the scans' own spacing (no finer than they were acquired, no coarser than ``voxel_budget``
forces), and the slice size makes one slice pixel one voxel across the field of view (the largest extent: the
``inscribed`` field of view of :class:`~monai_tonno.tomography.geometry.VolumeGeometry`), up to ``max_slice_size``.
Only the NIfTI headers are read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

__all__ = ["DatasetGeometry", "FittedPreprocessing", "dataset_geometry", "fit_preprocessing"]

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class DatasetGeometry:
    """Median voxel spacing and physical extent (millimetres, per array axis) over the studies read."""

    spacing: tuple[float, float, float]
    extent: tuple[float, float, float]
    studies: int


@dataclass(frozen=True)
class FittedPreprocessing:
    """The preprocessing a training uses, with where it came from and the smallest lesion it resolves."""

    pixdim: list[float]
    slice_size: int
    pixel_mm: float
    smallest_lesion_radius_mm: float
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_file(image: Any) -> Path:
    files = image if isinstance(image, (list, tuple)) else [image]
    return Path(files[0])


def dataset_geometry(items: Sequence[Mapping], key: str = "image", limit: int = 64) -> DatasetGeometry:
    """The median spacing and extent of up to ``limit`` studies (evenly spread over ``items``), from their
    NIfTI headers (the first file of a multi-channel item).

    Raises:
        ValueError: no item, or a file that is not a readable NIfTI (named, with the reason).
    """
    if not items:
        raise ValueError("no study to read the voxel spacing from.")
    chosen = [items[int(i)] for i in np.unique(np.linspace(0, len(items) - 1, min(limit, len(items))).round())]
    spacings, extents = [], []
    for item in chosen:
        path = _first_file(item[key])
        try:
            header = nib.load(str(path)).header
        except Exception as error:
            raise ValueError(
                f"cannot read the NIfTI header of {str(path)!r} to fit the voxel size ({error}); give --pixdim and "
                "--slice_size instead of 'auto'"
            ) from error
        zooms = np.abs(np.asarray(header.get_zooms()[:3], dtype=np.float64))
        shape = np.asarray(header.get_data_shape()[:3], dtype=np.float64)
        if zooms.size != 3 or not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
            raise ValueError(f"{str(path)!r} has voxel spacing {zooms.tolist()}; three positive millimetre values "
                             "were expected.")  # fmt: skip
        spacings.append(zooms)
        extents.append(zooms * (shape - 1))  # between the first and last voxel centres, as VolumeGeometry
    median = tuple(float(v) for v in np.median(spacings, axis=0))
    extent = tuple(float(v) for v in np.median(extents, axis=0))
    return DatasetGeometry(median, extent, len(chosen))  # type: ignore[arg-type]


def fit_preprocessing(
    items: Sequence[Mapping],
    pixdim: Any = AUTO,
    slice_size: Any = AUTO,
    voxel_budget: int = 2**23,
    max_slice_size: int = 224,
    key: str = "image",
) -> FittedPreprocessing:
    """``pixdim`` and ``slice_size`` for training: the given values, or ``"auto"`` fitted to the studies.

    ``pixdim="auto"``: the isotropic spacing ``s`` = the larger of the geometric mean of the median spacings (an
    anisotropic 0.7 x 0.7 x 5 mm CT gives 1.3 mm) and the spacing at which the median study holds
    ``voxel_budget`` voxels, rounded up to 0.1 mm. ``slice_size="auto"``: the largest median extent over ``s``
    (one pixel per voxel across the field of view), rounded up to a multiple of 16, between 32 and
    ``max_slice_size``. A lesion is resolved when it spans about two voxels and two pixels, so the smallest
    resolved radius is the larger of ``s`` and the pixel size.

    Args:
        items: the training studies (``key`` holds the NIfTI file, or a list whose first file is read).
        pixdim: ``"auto"`` or three millimetre values.
        slice_size: ``"auto"`` or pixels per side.
        voxel_budget: the most voxels of the median study after resampling. It bounds the memory of the cached
            volumes and, through the slice size it leads to, the cost of every slice: the bundles use 2^18 (64^3,
            the embedded default's grid) on a CPU and 2^23 (32 MiB per float32 channel) on a GPU.
        max_slice_size: the largest fitted slice size (224: the paper's, and ImageNet's).
        key: the item key of the image.
    """
    if isinstance(voxel_budget, bool) or not isinstance(voxel_budget, int) or voxel_budget < 2**12:
        raise ValueError(f"voxel_budget must be an integer of at least 4096 voxels, got {voxel_budget!r}.")
    fit_pixdim, fit_size = pixdim == AUTO, slice_size == AUTO
    if not fit_pixdim:
        values = [float(v) for v in (pixdim if isinstance(pixdim, (list, tuple)) else [pixdim] * 3)]
        if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"pixdim must be 'auto' or three positive millimetre values, got {pixdim!r}.")
    if not fit_size and (isinstance(slice_size, bool) or not isinstance(slice_size, int) or slice_size < 8):
        raise ValueError(f"slice_size must be 'auto' or an integer of at least 8 pixels, got {slice_size!r}.")
    geometry = dataset_geometry(items, key) if fit_pixdim or fit_size else None
    if fit_pixdim:
        native = float(np.exp(np.mean(np.log(geometry.spacing))))
        budgeted = (float(np.prod(geometry.extent)) / voxel_budget) ** (1 / 3)
        spacing = math.ceil(max(native, budgeted) * 10 - 1e-9) / 10
        values = [spacing] * 3
    if fit_size:
        across = max(geometry.extent) / max(values)
        slice_size = int(min(max_slice_size, max(32, 16 * math.ceil(across / 16 - 1e-9))))
    extent = max(geometry.extent) if geometry is not None else None
    pixel = extent / slice_size if extent is not None else float("nan")
    source = (
        "given"
        if geometry is None
        else f"fitted to {geometry.studies} studies (median spacing {[round(s, 2) for s in geometry.spacing]} mm, "
        f"extent {[round(e) for e in geometry.extent]} mm)"
    )
    fitted = FittedPreprocessing(values, int(slice_size), pixel, max(max(values), pixel if extent else 0.0), source)
    if geometry is not None:
        logger.info(
            "preprocessing %s: pixdim %s mm, slice size %d (%.2g mm pixels); lesions of radius %.2g mm and more are "
            "resolved",
            source, fitted.pixdim, fitted.slice_size, fitted.pixel_mm, fitted.smallest_lesion_radius_mm,
        )  # fmt: skip
    return fitted
