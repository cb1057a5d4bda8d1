# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The pieces of distillation: the volume-label term, the pseudo-label records, the segmenter's files."""

import pytest
import torch

from monai_tonno.engines import pseudo_labelled
from monai_tonno.networks import create_segmenter, load_segmenter, save_segmenter_config
from monai_tonno.transforms import EmptyNegatived


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
    torch.save(create_segmenter("unet", 2, channels=(4, 16)).state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="do not fit the segmenter"):
        load_segmenter(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="roi_size"):
        save_segmenter_config(tmp_path, {**config, "roi_size": [8, 8]})
    with pytest.raises(ValueError, match="name must be one of"):
        create_segmenter("vnet")
