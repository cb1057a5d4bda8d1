# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Voxel and slice size fitted to the dataset's headers."""

import logging

import nibabel as nib
import numpy as np
import pytest

from monai_tonno.data import dataset_geometry, fit_preprocessing


def _study(folder, name, shape, spacing):
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.diag([*spacing, 1.0])), str(path))
    return {"image": [str(path)], "label": 0}


def test_the_embedded_default_fits_its_own_grid(tmp_path):
    """64^3 voxels of 4 mm: 4 mm voxels (the spacing is the limit, the budget of 64^3 is not) and 64-pixel slices
    (252 mm of field of view over 4 mm, rounded up to a multiple of 16)."""
    items = [_study(tmp_path, f"s{i}", (64, 64, 64), (4.0, 4.0, 4.0)) for i in range(3)]
    fitted = fit_preprocessing(items, voxel_budget=2**18)
    assert fitted.pixdim == [4.0, 4.0, 4.0] and fitted.slice_size == 64
    assert fitted.pixel_mm == pytest.approx(252 / 64) and fitted.smallest_lesion_radius_mm == 4.0


def test_fine_scans_get_the_voxels_the_budget_allows(tmp_path, caplog):
    """1 mm brain-like scans of 180 x 220 x 180 mm: at 2^18 voxels the median study is resampled to
    cbrt(179 * 219 * 179 / 2^18) = 2.98 -> 3.0 mm and sliced at 219 / 3 = 73 -> 80 pixels; at 2^23 the native
    1 mm is the limit, and the slices stop at max_slice_size."""
    items = [_study(tmp_path, f"b{i}", (180, 220, 180), (1.0, 1.0, 1.0)) for i in range(2)]
    with caplog.at_level(logging.INFO, logger="monai_tonno.data.fitting"):
        cpu = fit_preprocessing(items, voxel_budget=2**18)
    assert cpu.pixdim == [3.0, 3.0, 3.0] and cpu.slice_size == 80
    assert "lesions of radius 3 mm and more are resolved" in caplog.text
    gpu = fit_preprocessing(items, voxel_budget=2**23, max_slice_size=224)
    assert gpu.pixdim == [1.0, 1.0, 1.0] and gpu.slice_size == 224


def test_anisotropic_scans_take_the_geometric_mean_of_their_spacing(tmp_path):
    """0.7 x 0.7 x 5 mm: (0.7 * 0.7 * 5)^(1/3) = 1.35 -> 1.4 mm when the budget allows it."""
    items = [_study(tmp_path, "ct", (100, 100, 20), (0.7, 0.7, 5.0))]
    geometry = dataset_geometry(items)
    assert geometry.spacing == pytest.approx((0.7, 0.7, 5.0)) and geometry.extent == pytest.approx((69.3, 69.3, 95))
    assert fit_preprocessing(items, voxel_budget=2**23).pixdim == [1.4, 1.4, 1.4]


def test_given_values_are_kept_and_bad_ones_named(tmp_path):
    items = [_study(tmp_path, "s", (10, 10, 10), (2.0, 2.0, 2.0))]
    fitted = fit_preprocessing(items, pixdim=[3, 3, 3], slice_size=48)
    assert fitted.pixdim == [3.0, 3.0, 3.0] and fitted.slice_size == 48 and fitted.source == "given"
    assert fit_preprocessing(items, pixdim=[2.0, 2.0, 2.0]).slice_size == 32  # 18 mm over 2 mm: at least 32
    with pytest.raises(ValueError, match="pixdim must be 'auto' or three positive"):
        fit_preprocessing(items, pixdim=[0, 1, 1])
    with pytest.raises(ValueError, match="slice_size must be 'auto'"):
        fit_preprocessing(items, slice_size="big")
    with pytest.raises(ValueError, match="voxel_budget"):
        fit_preprocessing(items, voxel_budget=10)
    with pytest.raises(ValueError, match="no study"):
        fit_preprocessing([])
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        fit_preprocessing([{"image": str(broken)}])
