# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Write a volume as a DICOM series with SimpleITK (the synthetic Duke phantom and the tests use it)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["new_uid", "write_dicom_series"]

_UID_ROOT = "1.2.826.0.1.3680043.2.1125"  # a root for example UIDs


def new_uid(rng: np.random.Generator) -> str:
    """A random DICOM UID (digits under the example root, at most 64 characters)."""
    return f"{_UID_ROOT}.{int(rng.integers(1, 10**9))}.{int(rng.integers(1, 10**9))}.{int(rng.integers(1, 10**6))}"


def write_dicom_series(
    array: np.ndarray,
    folder: str | Path,
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    description: str = "",
    patient_id: str = "anonymous",
    study_uid: str | None = None,
    series_uid: str | None = None,
    series_number: int = 1,
    reverse_instance_numbers: bool = False,
    file_names: str = "instance",
    seed: int = 0,
) -> Path:
    """Write an ``(x, y, z)`` volume as one DICOM slice file per ``z``, MR modality, 16-bit integers.

    Args:
        array: ``(x, y, z)`` values (column, row, slice), rounded to int16.
        folder: where the slices go (created).
        spacing: ``(column, row, slice)`` spacing in mm.
        origin: LPS position of the first voxel, in mm.
        direction: ``3 x 3`` LPS direction cosines, columns for the x, y, z array axes (identity: axial).
        description: ``SeriesDescription``.
        patient_id: ``PatientID``.
        study_uid, series_uid: UIDs (random ones when not given).
        series_number: ``SeriesNumber``.
        reverse_instance_numbers: number the slices from the last position (``InstanceNumber`` 1 at the highest
            ``z``), as some scanners do, so that acquisition order differs from position order.
        file_names: ``"instance"`` (``1-001.dcm`` in instance order) or ``"shuffled"`` (names in random order).
        seed: seed of the UIDs and the shuffle.

    Returns:
        the folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    volume = sitk.GetImageFromArray(np.ascontiguousarray(np.round(array).astype(np.int16).transpose(2, 1, 0)))
    volume.SetSpacing([float(s) for s in spacing])
    volume.SetOrigin([float(o) for o in origin])
    volume.SetDirection(direction.ravel().tolist())
    study_uid, series_uid = study_uid or new_uid(rng), series_uid or new_uid(rng)
    count = array.shape[2]
    names = [f"1-{index + 1:03d}.dcm" for index in range(count)]
    if file_names == "shuffled":
        names = [names[i] for i in rng.permutation(count)]
    elif file_names != "instance":
        raise ValueError(f"file_names must be 'instance' or 'shuffled', got {file_names!r}.")
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1]))
    today = time.strftime("%Y%m%d")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index in range(count):
        instance = count - index if reverse_instance_numbers else index + 1
        image = volume[:, :, index]
        position = volume.TransformIndexToPhysicalPoint((0, 0, index))
        tags = {
            "0008|0060": "MR",
            "0008|0008": "ORIGINAL\\PRIMARY",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"{series_uid}.{instance}",
            "0008|0020": today,
            "0008|0021": today,
            "0008|103e": description,
            "0010|0020": patient_id,
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0011": str(series_number),
            "0020|0013": str(instance),
            "0020|0032": "\\".join(f"{p:.6f}" for p in position),
            "0020|0037": orientation,
            "0018|0050": f"{spacing[2]:.6f}",
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / names[instance - 1]))
        writer.Execute(image)
    return folder
