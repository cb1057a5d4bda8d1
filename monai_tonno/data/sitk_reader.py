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
    """One DICOM series: its UID, description and files in slice order (with their instance numbers, their
    positions along the slice normal in mm, and the distinct orientations of its slices)."""

    def __init__(
        self,
        uid: str,
        description: str,
        files: list[str],
        instance_numbers: list[int],
        positions: Sequence[float] = (),
        orientations: Sequence[Sequence[float]] = (),
    ) -> None:
        self.uid, self.description, self.files, self.instance_numbers = uid, description, files, instance_numbers
        self.positions = np.asarray(positions, dtype=np.float64)
        self.orientations = [tuple(o) for o in orientations]

    def uniform_spacing(self, tolerance: float = 0.1) -> float:
        """The slice spacing, after checking that the slices sit on one uniform grid of one orientation.

        Args:
            tolerance: the largest departure of a step between neighbouring slices from the median step, as a share
                of it. 0.1 accepts the rounding of positions written as decimal strings (micrometres) and scanner
                jitter of a tenth of a slice, and refuses any missing slice (a missing slice doubles a step).

        Raises:
            ValueError: slices with several orientations, two slices at one position, or uneven steps (a missing
                slice); the message names the series, the expected and the found spacings.
        """
        if len(self.orientations) > 1:
            raise ValueError(
                f"the DICOM series {self.description!r} (uid {self.uid}) mixes {len(self.orientations)} slice "
                f"orientations {self.orientations}; expected one ImageOrientationPatient for every slice (a "
                "localizer or a tilted series mixed in?)."
            )
        if len(self.positions) < 2:
            return 1.0
        steps = np.diff(self.positions)
        if np.any(steps <= 1e-6):
            at = self.positions[1:][steps <= 1e-6]
            raise ValueError(
                f"the DICOM series {self.description!r} (uid {self.uid}) has two slices at the same position "
                f"({', '.join(f'{p:.3f}' for p in at[:3])} mm along the normal); expected one slice per position (is "
                "it a multi-phase series? choose the phase by series_uid)."
            )
        expected = float(np.median(steps))
        off = np.flatnonzero(np.abs(steps - expected) > tolerance * expected)
        if off.size:
            found = ", ".join(
                f"{steps[i]:.3f} mm between slices {i} and {i + 1} (at {self.positions[i]:.3f} and "
                f"{self.positions[i + 1]:.3f} mm)"
                for i in off[:3]
            )
            raise ValueError(
                f"the DICOM series {self.description!r} (uid {self.uid}) is not evenly spaced: expected "
                f"{expected:.3f} mm between slices, found {found}{' ...' if off.size > 3 else ''}. A slice is "
                "missing or the spacing varies; read it anyway onto a uniform grid with "
                "SimpleITKReader(nonuniform='resample')."
            )
        return expected

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
    positions, orientations = [], []
    for path, header in zip(files, headers, strict=True):
        text = _tag(header, POSITION)
        if not text:
            raise ValueError(f"{path!r} has no ImagePositionPatient (0020,0032); cannot order the slices.")
        positions.append(float(np.dot(normal, [float(v) for v in text.split("\\")])))
        own = np.array([float(v) for v in (_tag(header, ORIENTATION) or orientation).split("\\")])
        if not any(np.allclose(own, seen, atol=1e-4) for seen in orientations):
            orientations.append(own)
    order = np.argsort(positions, kind="stable")
    numbers = [int(float(_tag(headers[i], INSTANCE_NUMBER, str(i + 1)))) for i in order]
    return DicomSeries(
        uid,
        _tag(headers[0], SERIES_DESCRIPTION),
        [files[i] for i in order],
        numbers,
        np.asarray(positions)[order],
        [tuple(round(float(v), 6) for v in o) for o in orientations],
    )


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


def _resample_uniform(image: sitk.Image, positions: np.ndarray) -> sitk.Image:
    """The slices of ``image`` (at ``positions`` along the normal, ascending) interpolated linearly onto a uniform
    grid at the median step, from the first slice to the last."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x), z in the order of positions
    span = float(positions[-1] - positions[0])
    count = int(round(span / float(np.median(np.diff(positions))))) + 1
    grid = positions[0] + np.linspace(0.0, span, count)
    lower = np.clip(np.searchsorted(positions, grid, side="right") - 1, 0, len(positions) - 2)
    weight = ((grid - positions[lower]) / (positions[lower + 1] - positions[lower])).astype(np.float32)
    weight = weight[:, None, None]
    resampled = sitk.GetImageFromArray((1 - weight) * array[lower] + weight * array[lower + 1])
    resampled.SetOrigin(image.GetOrigin())
    resampled.SetDirection(image.GetDirection())
    resampled.SetSpacing((*image.GetSpacing()[:2], span / (count - 1)))
    for key in image.GetMetaDataKeys():
        resampled.SetMetaData(key, image.GetMetaData(key))
    resampled.SetMetaData("resampled_to_uniform_spacing", "true")
    return resampled


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
        nonuniform: what to do with a series whose slices are not evenly spaced (a missing slice, a varying
            spacing): ``"error"`` (default) refuses it, naming the expected and the found spacings (ITK would place
            the slices evenly between the first and the last, and every lesion after a gap would sit in the wrong
            place); ``"resample"`` interpolates the slices linearly onto a uniform grid at the median spacing,
            from the first slice to the last (the per-slice ``slice_instance_numbers`` are then left out).
        spacing_tolerance: the largest departure of a step between slices from the median step, as a share of it
            (see :meth:`DicomSeries.uniform_spacing`).
    """

    def __init__(
        self,
        series_description: str | None = None,
        series_uid: str | None = None,
        affine_lps_to_ras: bool = True,
        recursive: bool = True,
        dtype: np.dtype | type = np.float32,
        nonuniform: str = "error",
        spacing_tolerance: float = 0.1,
    ) -> None:
        super().__init__()
        if series_description is not None:
            re.compile(series_description)
        if nonuniform not in ("error", "resample"):
            raise ValueError(f"nonuniform must be 'error' or 'resample', got {nonuniform!r}.")
        if not 0.0 < spacing_tolerance < 0.5:
            raise ValueError(f"spacing_tolerance is a share of the slice step in (0, 0.5), got {spacing_tolerance}.")
        self.series_description, self.series_uid = series_description, series_uid
        self.affine_lps_to_ras, self.recursive, self.dtype = affine_lps_to_ras, recursive, dtype
        self.nonuniform, self.spacing_tolerance = nonuniform, spacing_tolerance

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
            try:
                series.uniform_spacing(self.spacing_tolerance)
                uniform = True
            except ValueError as error:
                if self.nonuniform != "resample" or "not evenly spaced" not in str(error):
                    raise ValueError(f"{str(path)!r}: {error}") from None
                uniform = False
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(series.files)
            try:
                image = reader.Execute()
            except RuntimeError as error:
                raise ValueError(
                    f"SimpleITK could not read the DICOM series {series} in {str(path)!r}: {error}"
                ) from error
            if not uniform:
                image = _resample_uniform(image, series.positions)
            image.SetMetaData("series_description", series.description)
            image.SetMetaData("series_instance_uid", series.uid)
            if uniform:
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
