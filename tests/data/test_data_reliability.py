# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Real collections break assumptions: a slice missing from a series, a repeated acquisition, a replaced mask, a
folder of one label. Each is refused with its name or handled by a documented rule, never read wrong silently."""

import json
import logging
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage

from monai_tonno.data import (
    SimpleITKReader,
    StrictLoadImaged,
    SyntheticBreastConfig,
    autopet_datalist,
    check_training_split,
    duke_datalist,
    generate_synthetic_duke,
    write_dicom_series,
)
from monai_tonno.networks import load_network_config
from monai_tonno.transforms import Binarize, load_threshold, save_threshold


def _series_with_a_gap(folder):
    """Six slices 2 mm apart whose values are their positions in mm; the slice at 6 mm removed: 0, 2, 4, 8, 10."""
    array = np.zeros((4, 4, 6), np.float32)
    array[...] = np.arange(6) * 2.0
    write_dicom_series(array, folder, (1.0, 1.0, 2.0), description="ax t1")
    files = sorted(folder.iterdir())
    files[3].unlink()  # instance 4, at 6 mm
    return folder


def test_a_series_with_a_missing_slice_is_refused_with_the_spacings(tmp_path):
    folder = _series_with_a_gap(tmp_path / "series")
    with pytest.raises(ValueError, match=r"'ax t1'.*not evenly spaced: expected 2\.000 mm.*found 4\.000 mm"):
        SimpleITKReader().read(folder)


def test_the_reader_refuses_before_monai_tries_its_other_readers(tmp_path):
    folder = _series_with_a_gap(tmp_path / "series")
    with pytest.raises(RuntimeError) as fallback:  # MONAI's LoadImage: its own message first
        LoadImage(reader=SimpleITKReader())(folder)
    assert str(fallback.value).startswith("LoadImage cannot find a suitable reader")
    with pytest.raises(ValueError, match="not evenly spaced"):  # this package's loader: the reader's reason
        StrictLoadImaged("image", reader=SimpleITKReader())({"image": folder})


def test_a_series_with_a_missing_slice_is_resampled_when_asked(tmp_path):
    folder = _series_with_a_gap(tmp_path / "series")
    image = LoadImage(reader=SimpleITKReader(nonuniform="resample"), image_only=True)(folder)
    assert tuple(image.shape) == (4, 4, 6)
    np.testing.assert_allclose(np.asarray(image)[0, 0], [0, 2, 4, 6, 8, 10], atol=1e-4)  # 6 mm: between 4 and 8
    np.testing.assert_allclose(np.diag(np.asarray(image.affine))[:3], [-1.0, -1.0, 2.0], atol=1e-6)


def test_evenly_spaced_positions_with_rounding_are_accepted(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(np.zeros((4, 4, 5), np.float32), folder, (1.0, 1.0, 1.2345678))  # positions rounded to text
    assert LoadImage(reader=SimpleITKReader(), image_only=True)(folder).shape == (4, 4, 5)


def _duke(tmp_path, patients=2):
    config = SyntheticBreastConfig(num_patients=patients, shape=(24, 24, 8), spacing_mm=(6.0, 6.0, 10.0), seed=2)
    return generate_synthetic_duke(tmp_path / "duke data", config)


def test_a_duke_patient_with_a_repeated_study_is_skipped_and_named(tmp_path, caplog):
    root = _duke(tmp_path)
    patient = root / "Duke-Breast-Cancer-MRI" / "Breast_MRI_002"
    study = next(patient.iterdir())
    shutil.copytree(study, patient / study.name.replace("1990", "1991"))  # a second visit with every phase
    with caplog.at_level(logging.WARNING):
        items = duke_datalist(root, progress=False)
    assert {item["patient"] for item in items} == {"Breast_MRI_001"}
    assert "Breast_MRI_002 (2 studies hold every needed phase" in caplog.text


def test_a_duke_phase_with_two_series_in_one_study_is_skipped_and_named(tmp_path, caplog):
    root = _duke(tmp_path)
    study = next((root / "Duke-Breast-Cancer-MRI" / "Breast_MRI_001").iterdir())
    repeat = study / "9.000000-ax dyn pre repeat-20009"  # a second pre-contrast series beside the first
    write_dicom_series(np.ones((24, 24, 8)), repeat, (6.0, 6.0, 10.0), description="ax dyn pre", seed=5)
    with caplog.at_level(logging.WARNING):
        items = duke_datalist(root, progress=False)
    assert {item["patient"] for item in items} == {"Breast_MRI_002"}
    assert "Breast_MRI_001 (the pre phase has 2 series in one study" in caplog.text


def test_a_duke_patient_whose_phases_are_in_different_studies_is_skipped_and_named(tmp_path, caplog):
    root = _duke(tmp_path)
    patient = root / "Duke-Breast-Cancer-MRI" / "Breast_MRI_002"
    study = next(patient.iterdir())
    later = patient / study.name.replace("1990", "1991")
    later.mkdir()
    post = next(study.glob("*1st pass*"))
    shutil.move(str(post), str(later / post.name))  # pre-contrast of one visit, post-contrast of another
    with caplog.at_level(logging.WARNING):
        items = duke_datalist(root, progress=False)
    assert {item["patient"] for item in items} == {"Breast_MRI_001"}
    assert "Breast_MRI_002 (the needed phases ['pre', 'post1'] are spread over 2 studies" in caplog.text


def test_the_duke_series_cache_sees_a_series_replaced_below_the_patient_folder(tmp_path, caplog):
    root = _duke(tmp_path)
    cache = tmp_path / "series.json"
    duke_datalist(root, cache_file=cache, progress=False)
    study = next((root / "Duke-Breast-Cancer-MRI" / "Breast_MRI_001").iterdir())
    for file in next(study.glob("*1st pass*")).iterdir():
        file.unlink()  # the post-contrast series is gone two folders below the patient
    with caplog.at_level(logging.WARNING):
        items = duke_datalist(root, cache_file=cache, progress=False)
    assert {item["patient"] for item in items} == {"Breast_MRI_002"}
    assert "Breast_MRI_001 (no post1 series)" in caplog.text


def _autopet(root, labels):
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    for index, label in enumerate(labels):
        study = root / "FDG-PET-CT-Lesions" / f"PETCT_{index:03d}" / "01-01-2000-NA-PET-CT Ganzkoerper-1"
        study.mkdir(parents=True)
        mask = np.zeros((8, 8, 8), np.uint8)
        mask[2:4, 2:4, 2:4] = label
        for name, array in (("SUV", np.ones((8, 8, 8), np.float32)), ("CTres", np.zeros((8, 8, 8), np.float32)),
                            ("SEG", mask)):  # fmt: skip
            nib.save(nib.Nifti1Image(array, affine), study / f"{name}.nii.gz")
    return root


def test_the_label_cache_sees_a_replaced_mask(tmp_path):
    root = _autopet(tmp_path / "data", [1, 0])
    cache = tmp_path / "labels.json"
    assert [item["label"] for item in autopet_datalist(root, cache, progress=False)] == [1, 0]
    seg = next((root / "FDG-PET-CT-Lesions" / "PETCT_001").glob("*/SEG.nii.gz"))
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[0:3, 0:3, 0:3] = 1  # another size than the old mask, so the stamp differs even within one mtime tick
    nib.save(nib.Nifti1Image(mask, np.eye(4)), seg)
    assert [item["label"] for item in autopet_datalist(root, cache, progress=False)] == [1, 1]
    (cache).write_text("{ truncated")  # a cache cut short by a kill (before writes were atomic) is rebuilt
    assert [item["label"] for item in autopet_datalist(root, cache, progress=False)] == [1, 1]
    assert len(json.loads(cache.read_text())) == 2


def test_training_refuses_a_split_of_one_label_and_names_the_counts(caplog):
    items = [{"patient": f"p{i}", "label": 0} for i in range(6)]
    with pytest.raises(
        ValueError, match=r"training split has 0 volumes with lesions and 4 without \(validation: 0 and 2"
    ):
        check_training_split((items[:4], items[4:]))
    mixed = [{"patient": "a", "label": 1}, {"patient": "b", "label": 0}]
    with caplog.at_level(logging.WARNING):
        assert check_training_split((mixed, [{"patient": "c", "label": 0}])) == (mixed, [{"patient": "c", "label": 0}])
    assert "validation split has 0 volumes with lesions and 1 without" in caplog.text


def test_a_threshold_is_refused_for_another_model_and_when_not_finite(tmp_path):
    model, other = tmp_path / "model.pt", tmp_path / "other.pt"
    model.write_bytes(b"weights of the model the threshold was fitted on")
    other.write_bytes(b"weights of another run")
    save_threshold(tmp_path / "threshold.json", 0.25, "volume_balanced_accuracy", 1.0, model)
    assert load_threshold(tmp_path / "threshold.json", model) == 0.25
    assert Binarize("hysteresis", threshold_file=str(tmp_path / "threshold.json"), model_file=str(model)).value == 0.25
    with pytest.raises(ValueError, match="was calibrated for another model than .*other.pt"):
        Binarize("hysteresis", threshold_file=str(tmp_path / "threshold.json"), model_file=str(other))
    (tmp_path / "old.json").write_text(json.dumps({"threshold": 0.25}))  # written before thresholds named a model
    with pytest.raises(ValueError, match="does not say which model it was calibrated for"):
        load_threshold(tmp_path / "old.json", model)
    (tmp_path / "nan.json").write_text('{"threshold": NaN}')
    with pytest.raises(ValueError, match="holds the threshold nan; a finite number was expected"):
        load_threshold(tmp_path / "nan.json")
    with pytest.raises(ValueError, match="must be finite"):
        save_threshold(tmp_path / "inf.json", float("inf"), "x", 0.0)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"slice_size": 0}, "slice_size 0"),
        ({"slice_size": "64"}, "slice_size '64'"),
        ({"preprocessing": {"pixdim": [4.0, 0.0, 4.0]}}, "preprocessing.pixdim [4.0, 0.0, 4.0]"),
        ({"preprocessing": {"intensity_scale": [10.0, None]}}, "preprocessing.intensity_scale [10.0, None]"),
    ],
)
def test_a_network_json_with_unusable_values_is_named(tmp_path, change, named):
    config = {"format_version": 1, "network": {"name": "test_resnet"}, "slice_size": 24,
              "preprocessing": {"pixdim": [4.0, 4.0, 4.0]}, **change}  # fmt: skip
    (tmp_path / "network.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(named)) as error:
        load_network_config(tmp_path / "model.pt")
    assert str(tmp_path / "network.json") in str(error.value)
