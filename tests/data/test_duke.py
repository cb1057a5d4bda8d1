# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""SimpleITKReader against nibabel, the Duke box conventions, the left/right split and the Duke datalist."""

import csv
import logging

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from monai.data.utils import orientation_ras_lps
from monai.transforms import Compose, LoadImage, LoadImaged, Orientationd, Spacingd
from scipy.spatial.transform import Rotation

from monai_tonno.data import (
    BoxMaskd,
    BreastSided,
    DCEChannelsd,
    SimpleITKReader,
    SyntheticBreastConfig,
    alternate_patients,
    box_voxels,
    duke_datalist,
    find_midline,
    generate_synthetic_duke,
    parse_phases,
    read_boxes,
    write_dicom_series,
)

OBLIQUE = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()
FLIPPED = np.diag([-1.0, 1.0, -1.0])  # x towards the right, z downwards: a right-handed flip of two axes


def nifti_twin(array: np.ndarray, path, spacing, origin, direction) -> None:
    """The same volume as nibabel writes it: the LPS geometry turned into a RAS affine."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) @ np.diag(spacing)
    affine[:3, 3] = origin
    nib.save(nib.Nifti1Image(array.astype(np.int16), orientation_ras_lps(affine)), str(path))


def world(image: MetaTensor) -> np.ndarray:
    """World coordinates (mm) of every voxel, (X, Y, Z, 3)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape[1:]], indexing="ij"), -1)
    affine = np.asarray(image.affine, dtype=np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("direction", [OBLIQUE, FLIPPED], ids=["oblique", "flipped"])
def test_reader_matches_nibabel_in_array_and_world_coordinates(tmp_path, direction):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 1000, (11, 9, 7)).astype(np.float32)  # columns, rows, slices all different
    spacing, origin = (0.8, 0.9, 2.5), (10.0, -20.0, 30.0)
    write_dicom_series(array, tmp_path / "series", spacing, origin, direction, description="ax dyn pre",
                       reverse_instance_numbers=True, file_names="shuffled")  # fmt: skip
    nifti_twin(array, tmp_path / "twin.nii.gz", spacing, origin, direction)
    from_dicom = LoadImage(reader=SimpleITKReader(), ensure_channel_first=True)(tmp_path / "series")
    from_nifti = LoadImage(ensure_channel_first=True)(tmp_path / "twin.nii.gz")  # MONAI's own NIfTI path
    assert from_dicom.shape == from_nifti.shape == (1, 11, 9, 7)
    np.testing.assert_array_equal(np.asarray(from_dicom), np.asarray(from_nifti))
    np.testing.assert_allclose(world(from_dicom), world(from_nifti), atol=1e-4)  # positions written to 6 decimals
    assert from_dicom.meta["series_description"] == "ax dyn pre"
    # the same NIfTI through SimpleITK: MONAI's reader and this one agree on a single file too
    single = LoadImage(reader=SimpleITKReader(), ensure_channel_first=True)(tmp_path / "twin.nii.gz")
    np.testing.assert_array_equal(np.asarray(single), np.asarray(from_nifti))
    np.testing.assert_allclose(np.asarray(single.affine), np.asarray(from_nifti.affine), atol=1e-5)


def test_slices_follow_positions_not_file_names(tmp_path):
    array = np.zeros((4, 4, 6), np.float32)
    array[..., :] = np.arange(6) * 10.0  # each slice's value is its position index
    write_dicom_series(array, tmp_path / "s", (1.0, 1.0, 2.0), file_names="shuffled", seed=3)
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    by_name = [int(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "s" / n))).ravel()[0]) for n in names]
    assert by_name != [0, 10, 20, 30, 40, 50]  # the file names do not follow the positions
    image = LoadImage(reader=SimpleITKReader())(tmp_path / "s")
    np.testing.assert_array_equal(np.asarray(image)[0, 0], np.arange(6) * 10.0)


def test_a_series_is_chosen_by_description_or_uid_and_bad_folders_are_named(tmp_path):
    study = tmp_path / "study with spaces"
    write_dicom_series(np.ones((4, 4, 3)), study / "3.000000-ax dyn pre-1", (1, 1, 1), description="ax dyn pre")
    write_dicom_series(2 * np.ones((4, 4, 3)), study / "4.000000-ax dyn 1st pass-2", (1, 1, 1),
                       description="ax dyn 1st pass", seed=1)  # fmt: skip
    image = LoadImage(reader=SimpleITKReader(series_description="1st"))(study)
    assert float(image.mean()) == 2.0
    # the reader itself, since LoadImage falls back to MONAI's other readers (ITK, pydicom) when they are installed
    with pytest.raises(ValueError, match="2 DICOM series .* fit the request.*ax dyn pre"):
        SimpleITKReader().read(study)
    with pytest.raises(ValueError, match="no DICOM series with description ~ 'sagittal'.*holds: 'ax dyn"):
        SimpleITKReader(series_description="sagittal").read(study)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM series in"):
        SimpleITKReader().read(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SimpleITKReader().read(tmp_path / "nowhere.nii.gz")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="could not read"):
        SimpleITKReader().read(tmp_path / "corrupt.nii.gz")


def test_mixed_slice_sizes_are_refused(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(np.ones((4, 4, 2)), folder, (1, 1, 1), series_uid="1.2.3.4", study_uid="1.2.3")
    write_dicom_series(np.ones((5, 4, 1)), tmp_path / "other", (1, 1, 1), origin=(0, 0, 5), series_uid="1.2.3.4",
                       study_uid="1.2.3")  # fmt: skip
    (tmp_path / "other" / "1-001.dcm").rename(folder / "1-009.dcm")
    with pytest.raises(ValueError, match="mixes slice sizes"):
        SimpleITKReader().read(folder)


@pytest.mark.parametrize("reverse", [False, True], ids=["instances with positions", "instances against positions"])
def test_box_lands_on_the_voxels_it_names(tmp_path, reverse):
    """Duke boxes: rows are DICOM rows, columns DICOM columns, slices InstanceNumbers; 1-based, inclusive."""
    shape = (12, 9, 7)  # 12 columns, 9 rows, 7 slices
    write_dicom_series(np.zeros(shape), tmp_path / "s", (1.0, 1.5, 3.0), reverse_instance_numbers=reverse)
    box = [2, 4, 6, 10, 3, 4]  # rows 2-4, columns 6-10, slices 3-4
    item = LoadImaged("image", reader=SimpleITKReader(), ensure_channel_first=True)({"image": tmp_path / "s"})
    mask = BoxMaskd("image", label_key=None)({**item, "box": box})["mask"][0].numpy()
    # the truth from the files themselves: slice files by InstanceNumber, their pixel arrays as (row, column)
    expected = np.zeros(shape, bool)
    for path in (tmp_path / "s").iterdir():
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        instance = int(reader.GetMetaData("0020|0013"))
        z = int(round(float(reader.GetMetaData("0020|0032").split("\\")[2]) / 3.0))
        if 3 <= instance <= 4:
            expected[5:10, 1:4, z] = True  # (column, row) of the array: columns 6-10, rows 2-4
    assert mask.sum() == 5 * 3 * 2
    np.testing.assert_array_equal(mask > 0, expected)
    assert box_voxels(box, shape)[2].tolist() == [2, 3]  # without instance numbers: array order
    with pytest.raises(ValueError, match="does not fit"):
        box_voxels([1, 10, 1, 2, 1, 1], shape)  # 10 rows > 9


def two_breasts(midline_lps: float) -> tuple[np.ndarray, np.ndarray]:
    """A body (LPS grid, x to the left, y to the back) whose breasts straddle ``midline_lps``; the affine is RAS."""
    shape, spacing = (60, 40, 10), 2.0
    x = (np.arange(shape[0]) - 30) * spacing
    y = (np.arange(shape[1]) - 20) * spacing
    xx, yy = np.meshgrid(x, y, indexing="ij")
    body = ((xx - midline_lps) / 50) ** 2 + ((yy - 20) / 20) ** 2 <= 1
    for side in (-1, 1):
        body |= ((xx - midline_lps - side * 25) / 18) ** 2 + ((yy - 0) / 22) ** 2 <= 1
    volume = np.repeat((100.0 * body)[..., None], shape[2], axis=2)
    affine = np.diag([spacing, spacing, 3.0, 1.0])
    affine[:3, 3] = [-30 * spacing, -20 * spacing, 0.0]
    return volume, orientation_ras_lps(affine)


@pytest.mark.parametrize("midline_lps", [-14.0, 0.0, 9.0])
def test_midline_is_found_from_the_image_not_the_array_centre(midline_lps):
    volume, affine = two_breasts(midline_lps)
    assert find_midline(volume, affine) == pytest.approx(-midline_lps, abs=2.0)  # RAS x = -LPS x; one voxel


def test_the_split_keeps_the_box_in_its_half_with_its_world_coordinates():
    volume, affine = two_breasts(9.0)
    image = MetaTensor(torch.as_tensor(volume)[None].float(), affine=torch.as_tensor(affine))
    box = torch.zeros_like(image)
    box[0, 8:14, 25:30, 3:6] = 1  # low x index: LPS x < 0, the patient's right breast (RAS x > midline)
    midline = find_midline(volume, affine)
    before = world(image)[np.asarray(box[0]) > 0]
    transform = BreastSided(["image", "mask"])
    right = transform({"image": image, "mask": box, "side": "right", "midline": midline})
    left = transform({"image": image.clone(), "mask": box.clone(), "side": "left", "midline": midline})
    assert right["mask"].sum() == box.sum() and left["mask"].sum() == 0
    np.testing.assert_allclose(world(right["mask"])[np.asarray(right["mask"][0]) > 0], before)
    assert right["image"].shape[1] + left["image"].shape[1] == image.shape[1]
    assert (world(right["image"])[..., 0] > midline).all() and (world(left["image"])[..., 0] < midline).all()
    restored = transform.inverse(right)  # Invertd's path: back into the whole volume
    assert restored["mask"].shape == box.shape
    np.testing.assert_array_equal(np.asarray(restored["mask"]), np.asarray(box))
    with pytest.raises(ValueError, match="side must be one of"):
        transform({"image": image, "mask": box, "side": "middle", "midline": midline})


def test_dce_channels_are_phases_and_differences_in_pre_contrast_units():
    image = MetaTensor(torch.stack([torch.full((4, 4, 4), 100.0), torch.full((4, 4, 4), 250.0)]))
    out = DCEChannelsd("image", ["pre", "post1-pre", "post1"])({"image": image, "series_phases": ["pre", "post1"]})
    np.testing.assert_allclose(out["image"][:, 0, 0, 0].numpy(), [1.0, 1.5, 2.5])
    assert isinstance(out["image"], MetaTensor)
    assert parse_phases(["post1-pre", "post2"]) == (["post1", "pre", "post2"], [("post1", "pre"), ("post2", None)])
    with pytest.raises(ValueError, match="unknown phase 'post9'"):
        parse_phases(["post9"])
    with pytest.raises(ValueError, match="need series"):
        DCEChannelsd("image", ["post2"])({"image": image, "series_phases": ["pre", "post1"]})


def write_boxes_csv(path, rows, title_rows=0):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for _ in range(title_rows):
            writer.writerow(["Duke breast MRI annotation boxes"])
        writer.writerow(["Patient ID", "Start Row", "End Row", "Start Column", "End Column", "Start Slice",
                         "End Slice"])  # fmt: skip
        writer.writerows(rows)


def test_boxes_are_read_from_xlsx_and_csv(tmp_path):
    root = generate_synthetic_duke(tmp_path / "x", SyntheticBreastConfig(num_patients=2, shape=(24, 24, 8)))
    boxes = read_boxes(root / "Annotation_Boxes.xlsx")
    assert sorted(boxes) == ["Breast_MRI_001", "Breast_MRI_002"] and all(len(b) == 6 for b in boxes.values())
    write_boxes_csv(tmp_path / "boxes.csv", [["Breast_MRI_009", 1, 2, 3, 4, 5, 6]], title_rows=1)
    assert read_boxes(tmp_path / "boxes.csv") == {"Breast_MRI_009": [1, 2, 3, 4, 5, 6]}
    write_boxes_csv(tmp_path / "bad.csv", [["Breast_MRI_009", 3, 2, 3, 4, 5, 6]])
    with pytest.raises(ValueError, match="not 1-based start <= end"):
        read_boxes(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="Annotation_Boxes"):
        read_boxes(tmp_path / "missing.xlsx")


def test_duke_datalist_on_a_real_layout_folder(tmp_path, caplog):
    """Spaces in names, a patient without a first post-contrast series, one without a box: both skipped, named."""
    config = SyntheticBreastConfig(num_patients=4, shape=(32, 32, 10), spacing_mm=(6.0, 6.0, 10.0), seed=2)
    root = generate_synthetic_duke(tmp_path / "my duke data", config)
    for series in (root / "Duke-Breast-Cancer-MRI" / "Breast_MRI_003").glob("*/*1st pass*"):
        for file in series.iterdir():
            file.unlink()
        series.rmdir()
    boxes = read_boxes(root / "Annotation_Boxes.xlsx")
    write_boxes_csv(root / "boxes.csv", [[p, *b] for p, b in boxes.items() if p != "Breast_MRI_004"])
    with caplog.at_level(logging.WARNING):
        items = duke_datalist(root, boxes_file=root / "boxes.csv", cache_file=tmp_path / "c.json", progress=False)
    assert "Breast_MRI_003 (no post1 series)" in caplog.text and "Breast_MRI_004 (no box)" in caplog.text
    assert [i["breast"] for i in items] == [f"Breast_MRI_00{p}_{s}" for p in (1, 2) for s in ("left", "right")]
    assert [sum(i["label"] for i in items if i["patient"] == p) for p in ("Breast_MRI_001", "Breast_MRI_002")] == [1, 1]
    cached = duke_datalist(root, boxes_file=root / "boxes.csv", cache_file=tmp_path / "c.json", progress=False)
    assert cached == items
    # the positive breast holds the whole box after the preprocessing of the bundles; the negative one none
    preprocessing = Compose([
        LoadImaged("image", reader=SimpleITKReader(), ensure_channel_first=True, image_only=True), BoxMaskd("image"),
        DCEChannelsd("image"), Orientationd(["image", "mask"], "RAS"), BreastSided(["image", "mask"]),
        Spacingd(["image", "mask"], (6.0, 6.0, 10.0), mode=["bilinear", "nearest"]),
    ])  # fmt: skip
    for item in items:
        out = preprocessing(item)
        x, y, z = (
            int(s.stop - s.start) if isinstance(s, slice) else len(s)
            for s in box_voxels(item["box"], (32,) * 2 + (10,))
        )
        assert float(out["mask"].sum()) == (x * y * z if item["label"] else 0)
    assert [i["patient"] for i in alternate_patients(items)[0::2]] == ["Breast_MRI_001"] * 2
    with pytest.raises(FileNotFoundError, match="Annotation_Boxes"):
        duke_datalist(tmp_path / "my duke data" / "Duke-Breast-Cancer-MRI" / "Breast_MRI_001", progress=False)
