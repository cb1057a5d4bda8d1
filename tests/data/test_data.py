# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import logging

import nibabel as nib
import numpy as np
import pytest

from monai_tonno.data import (
    SyntheticPETCTConfig,
    autopet_datalist,
    generate_synthetic_autopet,
    mosmed_datalist,
    split_by_patient,
)

SMALL = SyntheticPETCTConfig(num_patients=6, size=24, seed=3)


def read(path):
    return np.asarray(nib.load(str(path)).dataobj)


def test_synthetic_dataset_is_deterministic_and_in_autopet_layout(tmp_path):
    first = generate_synthetic_autopet(tmp_path / "a", SMALL, progress=False)
    second = generate_synthetic_autopet(tmp_path / "b", SMALL, progress=False)
    studies = sorted((first / "FDG-PET-CT-Lesions").glob("*/*"))
    assert len(studies) == 6
    for study in studies:
        twin = second / study.relative_to(first)
        for name in ("SUV.nii.gz", "CTres.nii.gz", "SEG.nii.gz"):
            np.testing.assert_array_equal(read(study / name), read(twin / name))
    other = generate_synthetic_autopet(
        tmp_path / "c", SyntheticPETCTConfig(num_patients=6, size=24, seed=4), progress=False
    )
    assert not np.array_equal(
        read(studies[0] / "SUV.nii.gz"), read(other / studies[0].relative_to(first) / "SUV.nii.gz")
    )


def test_synthetic_positives_have_lesions_and_negatives_none(tmp_path):
    root = generate_synthetic_autopet(tmp_path, SMALL, progress=False)
    items = autopet_datalist(root, progress=False)
    labels = [item["label"] for item in items]
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]
    for item in items:
        mask = read(item["mask"])
        suv = read(item["image"][0])
        assert suv.shape == (24, 24, 24) and read(item["image"][1]).min() < -500  # air in CT
        assert (mask.sum() > 0) == bool(item["label"])
        if item["label"]:
            assert suv[mask > 0].mean() > np.median(suv[suv > 0.3])  # lesions are hot


def make_autopet_tree(root, studies):
    for patient, study, files, lesion in studies:
        folder = root / "FDG-PET-CT-Lesions" / patient / study
        folder.mkdir(parents=True)
        for name in files:
            data = np.zeros((4, 4, 4), dtype=np.uint8)
            if name == "SEG.nii.gz" and lesion:
                data[1, 1, 1] = 1
            nib.save(nib.Nifti1Image(data, np.eye(4)), folder / name)


def test_autopet_reader_labels_and_warns_about_missing_files(tmp_path, caplog):
    full = ("SUV.nii.gz", "CTres.nii.gz", "SEG.nii.gz")
    make_autopet_tree(
        tmp_path,
        [
            ("PETCT_a", "s1", full, True),
            ("PETCT_a", "s2", full, False),
            ("PETCT_b", "s1", full, False),
            ("PETCT_c", "s1", ("SUV.nii.gz", "SEG.nii.gz"), True),
        ],
    )
    cache = tmp_path / "labels.json"
    with caplog.at_level(logging.WARNING):
        items = autopet_datalist(tmp_path, label_cache=cache, progress=False)
    assert [(i["patient"], i["study"], i["label"]) for i in items] == [
        ("PETCT_a", "s1", 1),
        ("PETCT_a", "s2", 0),
        ("PETCT_b", "s1", 0),
    ]
    assert "PETCT_c/s1 (missing CTres.nii.gz)" in caplog.text
    assert cache.is_file() and autopet_datalist(tmp_path, label_cache=cache, progress=False) == items


def test_mosmed_reader(tmp_path):
    for category, names in {
        "CT-0": ["study_0001"],
        "CT-1": ["study_0255", "study_0256"],
        "CT-3": ["study_0900"],
    }.items():
        (tmp_path / "studies" / category).mkdir(parents=True)
        for name in names:
            nib.save(
                nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)),
                tmp_path / "studies" / category / f"{name}.nii.gz",
            )
    (tmp_path / "masks").mkdir()
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "masks" / "study_0255_mask.nii.gz")
    items = mosmed_datalist(tmp_path)
    assert [(i["patient"], i["label"]) for i in items] == [
        ("study_0001", 0),
        ("study_0255", 1),
        ("study_0256", 1),
        ("study_0900", 1),
    ]
    assert items[1]["mask"].endswith("study_0255_mask.nii.gz") and items[2]["mask"] is None


def test_unknown_layouts_fail_clearly(tmp_path):
    (tmp_path / "random_folder").mkdir()
    with pytest.raises(ValueError, match="does not look like AutoPET-II"):
        autopet_datalist(tmp_path, progress=False)
    with pytest.raises(ValueError, match="does not look like MosMedData"):
        mosmed_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        autopet_datalist(tmp_path / "nowhere", progress=False)


def test_split_is_by_patient_and_seeded():
    items = [{"patient": f"p{i // 2}", "label": (i // 2) % 2} for i in range(40)]
    train, val = split_by_patient(items, 0.25, seed=1)
    assert not {i["patient"] for i in train} & {i["patient"] for i in val}
    assert len(train) + len(val) == 40 and {i["label"] for i in val} == {0, 1}
    assert split_by_patient(items, 0.25, seed=1) == (train, val)
    assert split_by_patient(items, 0.25, seed=2) != (train, val)
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_patient(items, 1.5)


def test_calibration_and_held_out_halves_keep_the_label_balance():
    from monai_tonno.data import alternate_by_label, select_items

    validation = [{"patient": f"p{i}", "label": int(i >= 4)} for i in range(8)]  # negatives first, as ordered
    calibration = select_items(validation, ([], validation), "calibration")
    held_out = select_items(validation, ([], validation), "held_out", limit=3)
    assert [i["patient"] for i in calibration] == ["p0", "p2", "p4", "p6"]
    assert [i["patient"] for i in held_out] == ["p1", "p3", "p5"]
    assert sum(i["label"] for i in calibration) == 2
    assert alternate_by_label([]) == ([], [])


def test_synthetic_cache_is_keyed_by_its_parameters(tmp_path):
    """Asking for more patients after fewer neither reuses nor mixes the first dataset's files."""
    from monai_tonno.data import autopet_or_synthetic

    first = autopet_or_synthetic("", tmp_path, num_patients=2, size=16)
    second = autopet_or_synthetic("", tmp_path, num_patients=3, size=16)
    assert first != second
    assert len(autopet_datalist(first, progress=False)) == 2
    assert len(autopet_datalist(second, progress=False)) == 3
    assert autopet_or_synthetic("", tmp_path, num_patients=2, size=16) == first


def test_synthetic_chest_ct_is_in_mosmed_layout_with_each_grades_involvement(tmp_path):
    """Grades CT-0 .. CT-4 by the share of lung involved (MosMedData's definition); masks for a share of CT-1."""
    from monai_tonno.data import SyntheticChestCTConfig, generate_synthetic_mosmed, synthetic_chest_case
    from monai_tonno.data.synthetic_chest import _INVOLVEMENT

    config = SyntheticChestCTConfig(num_patients=12, size=24, seed=1)
    root = generate_synthetic_mosmed(tmp_path / "mosmed data", config, progress=False)
    items = mosmed_datalist(root)
    assert len(items) == 12 and sum(item["label"] for item in items) == 6
    ct1 = [item for item in items if item["category"] == "CT-1"]
    assert sum(item["mask"] is not None for item in items) == round(0.3 * len(ct1))
    assert all(item["category"] == "CT-1" for item in items if item["mask"] is not None)
    image = nib.load(str(items[0]["image"]))
    assert image.shape == (24, 24, 15)
    np.testing.assert_allclose(image.header.get_zooms(), (358 / 24, 358 / 24, 320 / 15), rtol=1e-5)  # anisotropic
    rng = np.random.default_rng(0)
    healthy, none = synthetic_chest_case(rng, SyntheticChestCTConfig(size=32), "CT-0")
    assert none.sum() == 0
    parenchyma = healthy[lungs_of(healthy)].mean()
    for grade, (low, high) in _INVOLVEMENT.items():
        hu, mask = synthetic_chest_case(rng, SyntheticChestCTConfig(size=32), grade)
        involvement = mask.sum() / (lungs_of(hu) | (mask > 0)).sum()
        # the opacities grow until they reach the drawn share; the last one may overshoot by its own volume
        assert low <= involvement <= high + 0.08, (grade, involvement)
        # ground glass adds 280-450 HU before a blur of one voxel, which thins its edges: on average at least
        # 100 HU above healthy lung
        assert hu[mask > 0].mean() > parenchyma + 100, grade


def lungs_of(hu: np.ndarray) -> np.ndarray:
    """Air inside the body: the body (above -500 HU) with its holes filled in each axial slice, where dark."""
    from scipy import ndimage

    body = np.stack([ndimage.binary_fill_holes(hu[..., k] > -500) for k in range(hu.shape[2])], axis=-1)
    return body & (hu < -600)


def test_a_chest_ct_dataset_generated_again_keeps_no_study_of_the_old_one(tmp_path):
    """Another seed moves studies between grade folders; none of the old configuration's files may remain."""
    from monai_tonno.data import SyntheticChestCTConfig, generate_synthetic_mosmed

    root = tmp_path / "mosmed"
    generate_synthetic_mosmed(root, SyntheticChestCTConfig(num_patients=8, size=16, seed=1), progress=False)
    generate_synthetic_mosmed(root, SyntheticChestCTConfig(num_patients=8, size=16, seed=2), progress=False)
    items = mosmed_datalist(root)
    assert len(items) == 8 and len({item["patient"] for item in items}) == 8
