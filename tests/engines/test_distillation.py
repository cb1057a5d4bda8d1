# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The pieces of distillation: the volume-label term, the pseudo-label records, the segmenter's files."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.losses import DiceCELoss
from monai.transforms import Compose, Randomizable
from scipy import ndimage

from monai_tonno.engines import DiceCEIgnoreLoss, pseudo_labelled, student_methods
from monai_tonno.networks import create_segmenter, load_segmenter, load_segmenter_config, save_segmenter_config
from monai_tonno.transforms import IGNORE_VALUE, EmptyNegatived, IgnoreBandd, otsu_threshold

ROOT = Path(__file__).resolve().parents[2]


def test_a_negative_study_is_emptied_and_a_positive_one_kept():
    mask = torch.ones(1, 4, 4, 4)
    assert not EmptyNegatived("mask")({"mask": mask, "label": 0})["mask"].any()
    assert torch.equal(EmptyNegatived("mask")({"mask": mask, "label": 1})["mask"], mask)
    with pytest.raises(KeyError, match="volume label"):
        EmptyNegatived("mask")({"mask": mask})
    with pytest.raises(ValueError, match="must be 0 or 1, got 0.5"):
        EmptyNegatived("mask")({"mask": mask, "label": 0.5})


def test_studies_without_a_pseudo_label_of_this_teacher_are_named(tmp_path):
    items = [{"image": "a.nii.gz", "label": 1, "patient": "p1", "study": "s1"}]
    with pytest.raises(ValueError, match="1 of 1 studies have no pseudo-label.*p1/s1"):
        pseudo_labelled(items, tmp_path, settings={"num_angles": 4})


def test_a_segmenter_loads_from_its_folder_and_refuses_weights_of_another(tmp_path):
    network = create_segmenter("unet", 2, channels=(4, 8))
    config = {"network": {"name": "unet", "in_channels": 2, "channels": [4, 8]}, "roi_size": [8, 8, 8],
              "preprocessing": {"pixdim": [4.0, 4.0, 4.0]}}  # fmt: skip
    save_segmenter_config(tmp_path, config)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    loaded = load_segmenter(tmp_path / "model.pt")
    volume = torch.randn(1, 2, 8, 8, 8)
    network.eval()
    torch.testing.assert_close(loaded(volume), network(volume))
    with pytest.raises(FileNotFoundError, match="no trained segmenter at .*elsewhere.*run the distillation"):
        load_segmenter(tmp_path / "elsewhere" / "model.pt", load_segmenter_config(tmp_path))
    torch.save(create_segmenter("unet", 2, channels=(4, 16)).state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="do not fit the segmenter"):
        load_segmenter(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="roi_size"):
        save_segmenter_config(tmp_path, {**config, "roi_size": [8, 8]})
    with pytest.raises(ValueError, match="name must be one of"):
        create_segmenter("vnet")


def test_the_student_joins_the_evaluation_only_on_the_preprocessing_it_was_trained_on(tmp_path):
    """student_methods gives the segmenter's sigmoid over a whole volume (windows blended back to one value per
    voxel) and refuses volumes preprocessed otherwise than its training's."""
    network = create_segmenter("unet", 2, channels=(4, 8))
    preprocessing = {"pixdim": [4.0, 4.0, 4.0], "intensity_offset": [0.0, 0.0], "intensity_scale": [1.0, 1.0]}
    config = {"network": {"name": "unet", "in_channels": 2, "channels": [4, 8]}, "roi_size": [8, 8, 8],
              "preprocessing": preprocessing}  # fmt: skip
    save_segmenter_config(tmp_path, config)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    (name, method), *others = student_methods(tmp_path / "model.pt", preprocessing).items()
    assert name == "ToNNO -> UNet" and not others
    volume = torch.randn(1, 2, 8, 8, 8)  # one window: the blend of one window is the window itself
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(method(volume), torch.sigmoid(network(volume)))
    larger = method(torch.randn(1, 2, 13, 10, 9))
    assert larger.shape == (1, 1, 13, 10, 9) and 0 <= larger.min() and larger.max() <= 1
    with pytest.raises(ValueError, match="trained on preprocessing"):
        student_methods(tmp_path / "model.pt", {**preprocessing, "pixdim": [2.0, 2.0, 2.0]})


def test_an_extra_method_is_fitted_and_scored_beside_the_papers(tmp_path):
    """evaluate_methods' extra_methods: a method whose heatmap peaks inside each lesion and is zero elsewhere finds
    every lesion and no false one under its own name, after the paper's families; one whose heatmap is not one
    value per voxel is named."""
    from monai_tonno.engines import evaluate_methods, write_report
    from monai_tonno.inferers import TomographicInferer
    from monai_tonno.networks import create_slice_classifier

    masks = [torch.zeros(12, 12, 12) for _ in range(4)]
    for index, mask in enumerate(masks):
        if index < 3:
            mask[2 + index : 6 + index, 3:7, 4:8] = 1
    items = [{"image": torch.stack([m, torch.rand_like(m)]), "mask": m} for m in masks]
    network = create_slice_classifier("test_resnet", in_chans=2)
    inferer = TomographicInferer(num_angles=3, num_slices=3, slice_size=12)

    def oracle(volume):  # the truth (channel 0), brightest at each lesion's centre: any cut leaves one blob inside
        truth = volume[0, 0].numpy()
        return torch.as_tensor(ndimage.gaussian_filter(truth, 1.0) * truth)[None, None]

    truth = {"oracle": oracle}
    rows = evaluate_methods(items, network, inferer, ["layer1"], min_size=2, progress=False, extra_methods=truth)
    oracle = next(row for row in rows if row["family"] == "oracle")
    assert oracle["f1"] == 1.0 and oracle["balanced_accuracy"] == 1.0 and oracle["dice"] > 0
    table = write_report(rows, tmp_path).splitlines()
    assert table[-3].startswith("| oracle |") and table[-4].startswith("| Tomographic LayerCAM")
    with pytest.raises(ValueError, match="one value per voxel"):
        evaluate_methods(items, network, inferer, ["layer1"], progress=False,
                         extra_methods={"flat": lambda volume: volume[:, :1, 0]})  # fmt: skip


def _two_blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """A heatmap with a strong blob (the teacher's mask), a faint one above Otsu's threshold but without a seed,
    and weak positive noise elsewhere; and the binary mask of the strong blob."""
    heatmap = torch.full((1, 12, 12, 12), 0.1)
    heatmap[0, 1:4, 1:4, 1:4] = 10.0
    heatmap[0, 7:10, 7:10, 7:10] = 6.0
    mask = (heatmap > 8).float()
    return heatmap, mask


def test_the_ignore_band_is_what_lies_above_otsu_outside_the_mask_of_a_positive_study():
    heatmap, mask = _two_blobs()
    otsu = otsu_threshold(heatmap[heatmap > 0])
    assert 0.1 < otsu < 6.0  # the faint blob is above Otsu's cut, the noise below it
    out = IgnoreBandd("label")({"label": mask, "heatmap": heatmap, "volume_label": 1})["label"]
    assert torch.equal(out[mask > 0], torch.ones(27))
    assert torch.equal(out[0, 7:10, 7:10, 7:10], torch.full((3, 3, 3), IGNORE_VALUE))
    assert int((out == IGNORE_VALUE).sum()) == 27 and int((out == 0).sum()) == 12**3 - 54
    negative = IgnoreBandd("label")({"label": mask * 0, "heatmap": heatmap, "volume_label": 0})["label"]
    assert not negative.any()  # the volume label is certain: nothing of a negative study is ignored
    with pytest.raises(ValueError, match="binary mask"):
        IgnoreBandd("label")({"label": mask * 2, "heatmap": heatmap, "volume_label": 1})
    with pytest.raises(ValueError, match="shape"):
        IgnoreBandd("label")({"label": mask[:, :6], "heatmap": heatmap, "volume_label": 1})
    with pytest.raises(KeyError, match="heatmap"):
        IgnoreBandd("label")({"label": mask, "volume_label": 1})


def test_the_ignoring_loss_is_dice_ce_on_the_kept_voxels_and_blind_to_the_others():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 1, 6, 6, 6) > 0.7).double()
    loss = DiceCEIgnoreLoss()
    reference = DiceCELoss(sigmoid=True, batch=True)
    torch.testing.assert_close(loss(logits, target), reference(logits, target), rtol=1e-12, atol=1e-12)
    ignored = torch.rand(2, 1, 6, 6, 6) > 0.6
    marked = target.masked_fill(ignored, IGNORE_VALUE)
    kept = ~ignored
    # the reference on the kept voxels alone, gathered into one flat "volume" (batch Dice sums over everything)
    flat = (logits[kept].reshape(1, 1, -1), target[kept].reshape(1, 1, -1))
    torch.testing.assert_close(loss(logits, marked), reference(*flat), rtol=1e-12, atol=1e-12)
    loss(logits, marked).backward()
    assert not logits.grad[ignored].any() and logits.grad[kept].abs().sum() > 0
    moved = logits.detach().masked_fill(ignored, 50.0)
    torch.testing.assert_close(loss(moved, marked), loss(logits.detach(), marked), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bundle", ["autopet", "mosmed"])
@pytest.mark.parametrize("ignore_band", [False, True])
def test_distill_json_trains_on_binary_labels_and_ignores_its_band_on_request(bundle, ignore_band, tmp_path):
    """The pseudo-label files hold component labels 1..K; the student's targets are 0/1 (and the ignore value in
    the band when --ignore_band is set), after distill.json's own transforms up to the random crops."""
    heatmap, mask = _two_blobs()
    files = {"image": tmp_path / "image.nii.gz", "label": tmp_path / "label.nii.gz", "heatmap": tmp_path / "hm.nii.gz"}
    for key, array in (("image", heatmap), ("label", mask * 3), ("heatmap", heatmap)):  # component 3 of a mask
        nib.save(nib.Nifti1Image(array[0].numpy(), np.eye(4)), files[key])
    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / bundle / "distill.json"))
    parser.update({"pixdim": [1.0, 1.0, 1.0], "roi_size": [8, 8, 8], "ignore_band": ignore_band})
    if bundle == "autopet":
        parser.update({"intensity_offset": [0.0], "intensity_scale": [1.0]})
    else:
        parser.update({"hu_window": [0, 10]})
    transforms = parser.get_parsed_content("train#preprocessing").transforms
    deterministic = Compose(transforms[: next(i for i, t in enumerate(transforms) if isinstance(t, Randomizable))])
    item = {key: str(path) for key, path in files.items()} | {"volume_label": 1}
    label = deterministic(item)["label"]
    assert "heatmap" not in deterministic(item)
    values = set(torch.unique(label).tolist())
    assert values == ({IGNORE_VALUE, 0.0, 1.0} if ignore_band else {0.0, 1.0})
    assert int((label == 1).sum()) == 27 and int((label == IGNORE_VALUE).sum()) == (27 if ignore_band else 0)
