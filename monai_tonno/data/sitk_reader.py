# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A MONAI ``ImageReader`` backed by SimpleITK: DICOM series (chosen by description or UID) and single files.

``LoadImage(reader=SimpleITKReader(series_description="dyn pre"))`` reads a DICOM series folder, or any file
SimpleITK reads (NIfTI, NRRD, MHA, ...), into the same array and affine as MONAI's NIfTI path: the array is
indexed ``(x, y, z)`` (column, row, slice) and the affine maps those indices to RAS world coordinates in mm
(SimpleITK's geometry is LPS; the first two world axes change sign).

Slices of a series are ordered by their ``ImagePositionPatient`` projected on the slice normal, never by file
name. The ``InstanceNumber`` of every slice, in array order, is kept in the metadata (``slice_instance_numbers``,
a string: read it with :func:`instance_numbers`) so that annotations in acquisition order can be placed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from monai.config import PathLike
from monai.data import ImageReader
from monai.data.utils import orientation_ras_lps
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

__all__ = ["DicomSeries", "SimpleITKReader", "find_dicom_series", "instance_numbers"]

SERIES_DESCRIPTION = "0008|103e"
SERIES_UID = "0020|000e"
POSITION = "0020|0032"
ORIENTATION = "0020|0037"
INSTANCE_NUMBER = "0020|0013"
SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ima", ".img", ".hdr", ".vtk", ".tif")


def instance_numbers(meta: dict) -> np.ndarray | None:
    """The ``InstanceNumber`` of every array slice (``slice_instance_numbers`` in the metadata), or ``None``."""
    text = meta.get("slice_instance_numbers")
    return None if text is None else np.array([int(v) for v in str(text).split()])


class DicomSeries:
    """One DICOM series: its UID, description and files in slice order (with their instance numbers)."""

    def __init__(self, uid: str, description: str, files: list[str], instance_numbers: list[int]) -> None:
        self.uid, self.description, self.files, self.instance_numbers = uid, description, files, instance_numbers

    def __repr__(self) -> str:
        return f"DicomSeries({self.description!r}, {len(self.files)} slices, uid={self.uid})"


def _header(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ValueError(f"could not read the DICOM header of {path!r}: {error}") from error
    return reader


def _tag(reader: sitk.ImageFileReader, key: str, default: str = "") -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else default


def _ordered_series(uid: str, files: Sequence[str]) -> DicomSeries:
    """Files of one series sorted by position along the slice normal; sizes and orientations checked."""
    headers = [_header(f) for f in files]
    sizes = {tuple(h.GetSize()[:2]) for h in headers}
    if len(sizes) > 1:
        raise ValueError(
            f"the DICOM series {uid} mixes slice sizes {sorted(sizes)}; expected every slice of a series to have "
            "the same rows and columns."
        )
    orientation = _tag(headers[0], ORIENTATION)
    if not orientation:
        raise ValueError(f"the DICOM series {uid} has no ImageOrientationPatient (0020,0037); cannot place slices.")
    cosines = np.array([float(v) for v in orientation.split("\\")])
    normal = np.cross(cosines[:3], cosines[3:])
    positions = []
    for path, header in zip(files, headers, strict=True):
        text = _tag(header, POSITION)
        if not text:
            raise ValueError(f"{path!r} has no ImagePositionPatient (0020,0032); cannot order the slices.")
        positions.append(float(np.dot(normal, [float(v) for v in text.split("\\")])))
    order = np.argsort(positions, kind="stable")
    if len(order) > 1 and np.any(np.diff(np.asarray(positions)[order]) == 0):
        raise ValueError(
            f"the DICOM series {uid} has two slices at the same position; expected one slice per position "
            "(is it a multi-phase series? choose the phase by series_uid)."
        )
    numbers = [int(float(_tag(headers[i], INSTANCE_NUMBER, str(i + 1)))) for i in order]
    return DicomSeries(uid, _tag(headers[0], SERIES_DESCRIPTION), [files[i] for i in order], numbers)


def find_dicom_series(folder: PathLike, recursive: bool = True) -> list[DicomSeries]:
    """Every DICOM series under ``folder`` (its subfolders too when ``recursive``), slices ordered by position."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder {str(root)!r} does not exist.")
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())] if recursive else [root]
    series = []
    for directory in folders:
        if not any(p.is_file() for p in directory.iterdir()):
            continue  # a study folder: GDCM would warn that it holds no series
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)):
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(directory), uid))
            series.append(_ordered_series(uid, files))
    return series


def _choose(series: list[DicomSeries], folder: PathLike, description: str | None, uid: str | None) -> DicomSeries:
    if not series:
        raise ValueError(f"no DICOM series in {str(folder)!r}: expected a folder of .dcm slices.")
    listing = "; ".join(f"{s.description!r} (uid {s.uid}, {len(s.files)} slices)" for s in series)
    chosen = series
    if uid:
        chosen = [s for s in chosen if s.uid == uid]
    if description:
        pattern = re.compile(description, re.IGNORECASE)
        chosen = [s for s in chosen if pattern.search(s.description)]
    if not chosen:
        wanted = " and ".join(filter(None, [uid and f"uid {uid}", description and f"description ~ {description!r}"]))
        raise ValueError(f"no DICOM series with {wanted} in {str(folder)!r}; the folder holds: {listing}.")
    if len(chosen) > 1:
        raise ValueError(
            f"{len(chosen)} DICOM series in {str(folder)!r} fit the request; choose one with series_description "
            f"(a regular expression) or series_uid. The folder holds: {listing}."
        )
    return chosen[0]


class SimpleITKReader(ImageReader):
    """Read DICOM series and single files with SimpleITK, for ``LoadImage``/``LoadImaged(reader=...)``.

    A folder is read as one DICOM series (searched recursively): the only one, or the one whose
    ``SeriesDescription`` matches ``series_description`` (a case-insensitive regular expression) and/or whose
    ``SeriesInstanceUID`` is ``series_uid``. Slices are ordered by position along the normal. A list of paths
    is stacked as channels (they must share the grid). When this reader raises, ``LoadImage`` tries MONAI's
    other installed readers before it reports every error; ``reader.read(path)`` gives this reader's alone.

    Args:
        series_description: regular expression searched in the series descriptions of a folder.
        series_uid: ``SeriesInstanceUID`` of the series to read from a folder.
        affine_lps_to_ras: give the affine in RAS, as MONAI's NIfTI reader does (``False``: SimpleITK's LPS).
        recursive: look for series in the subfolders of a folder too.
        dtype: the array's type.
    """

    def __init__(
        self,
        series_description: str | None = None,
        series_uid: str | None = None,
        affine_lps_to_ras: bool = True,
        recursive: bool = True,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        if series_description is not None:
            re.compile(series_description)
        self.series_description, self.series_uid = series_description, series_uid
        self.affine_lps_to_ras, self.recursive, self.dtype = affine_lps_to_ras, recursive, dtype

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """A folder (DICOM series) or a file with a suffix SimpleITK reads."""
        return all(Path(f).is_dir() or str(f).lower().endswith(SUFFIXES) for f in ensure_tuple(filename))

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> list[sitk.Image] | sitk.Image:
        """Read one path (or several, to be stacked as channels) into SimpleITK images.

        Args:
            data: a DICOM series folder or an image file, or a sequence of them.
            kwargs: ``series_description`` / ``series_uid`` for this call instead of the reader's.
        """
        description = kwargs.get("series_description", self.series_description)
        uid = kwargs.get("series_uid", self.series_uid)
        images = [self._read_one(Path(name), description, uid) for name in ensure_tuple(data)]
        return images if len(images) > 1 else images[0]

    def _read_one(self, path: Path, description: str | None, uid: str | None) -> sitk.Image:
        if path.is_dir():
            series = _choose(find_dicom_series(path, self.recursive), path, description, uid)
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(series.files)
            try:
                image = reader.Execute()
            except RuntimeError as error:
                raise ValueError(
                    f"SimpleITK could not read the DICOM series {series} in {str(path)!r}: {error}"
                ) from error
            image.SetMetaData("series_description", series.description)
            image.SetMetaData("series_instance_uid", series.uid)
            image.SetMetaData("slice_instance_numbers", " ".join(map(str, series.instance_numbers)))
        elif not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist: expected an image file or a DICOM series folder.")
        else:
            try:
                image = sitk.ReadImage(str(path))
            except RuntimeError as error:
                raise ValueError(
                    f"SimpleITK could not read {str(path)!r} (corrupt or not an image?): {error}"
                ) from error
        image.SetMetaData("filename_or_obj", str(path))
        return image

    def get_data(self, img: sitk.Image | Sequence[sitk.Image]) -> tuple[np.ndarray, dict]:
        """The ``(x, y, z)`` array (channels stacked first when several images) and MONAI's metadata."""
        arrays, metas = [], []
        for image in [img] if isinstance(img, sitk.Image) else list(img):  # an Image iterates over its pixels
            array = sitk.GetArrayFromImage(image).astype(self.dtype, copy=False)
            dim = image.GetDimension()
            vector = image.GetNumberOfComponentsPerPixel() > 1
            array = np.moveaxis(array, list(range(dim)), list(range(dim))[::-1])  # (z, y, x) -> (x, y, z)
            arrays.append(array)
            metas.append(self._meta(image, array, vector))
        meta = metas[0]
        for other in metas[1:]:
            if tuple(other[MetaKeys.SPATIAL_SHAPE]) != tuple(meta[MetaKeys.SPATIAL_SHAPE]) or not np.allclose(
                other[MetaKeys.AFFINE], meta[MetaKeys.AFFINE], atol=1e-3
            ):
                raise ValueError(
                    f"cannot stack {other['filename_or_obj']!r} as a channel of {meta['filename_or_obj']!r}: their "
                    f"grids differ (shape {tuple(other[MetaKeys.SPATIAL_SHAPE])} vs "
                    f"{tuple(meta[MetaKeys.SPATIAL_SHAPE])}, or the affine); resample one onto the other first."
                )
        if len(arrays) == 1:
            return arrays[0], meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays, 0), meta

    def _meta(self, image: sitk.Image, array: np.ndarray, vector: bool) -> dict:
        dim = image.GetDimension()
        spatial = min(dim, 3)
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:spatial, :spatial]
        affine = np.eye(spatial + 1)
        affine[:spatial, :spatial] = direction @ np.diag(image.GetSpacing()[:spatial])
        affine[:spatial, -1] = image.GetOrigin()[:spatial]
        if self.affine_lps_to_ras:
            affine = orientation_ras_lps(affine)
        # every entry a string or a fixed-size array, so that volumes with different slice counts collate
        meta = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys() if not key.startswith("ITK_")}
        meta.update(
            {
                MetaKeys.ORIGINAL_AFFINE: affine,
                MetaKeys.AFFINE: affine.copy(),
                MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[:spatial]),
                MetaKeys.SPACE: SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS,
                MetaKeys.ORIGINAL_CHANNEL_DIM: -1 if vector else float("nan"),
                "spacing": np.asarray(image.GetSpacing()),
            }
        )
        return meta
