# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Image writers that never leave half a file: what a killed inference leaves is either the old file or the new."""

from __future__ import annotations

from pathlib import Path

from monai.config import PathLike
from monai.data import NibabelWriter

from monai_tonno.atomic import atomic_path

__all__ = ["AtomicNibabelWriter"]


def _extension(path: Path) -> str:
    """``.nii.gz`` or the last suffix: what nibabel reads the format from."""
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file beside the target, fsynced and moved into place.

    Use it as ``SaveImaged(..., writer=AtomicNibabelWriter)``: a kill while a 500 MB heatmap is being compressed
    leaves no truncated ``.nii.gz`` that a later reader (or a skipped rerun) would take for an output.
    """

    def write(self, filename: PathLike, verbose: bool = False, **obj_kwargs) -> None:
        target = Path(filename)
        with atomic_path(target, suffix=_extension(target)) as temporary:
            super().write(temporary, verbose=verbose, **obj_kwargs)
