# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Every mistake a user can make gets an error that names it: input -> exception type -> words of the message.

``BAD_INPUTS`` is the table; ``python tests/test_bad_inputs.py`` prints it as Markdown.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch import nn

from monai_tonno import ObliqueSlice, RandObliqueSlice, RandObliqueSliced, SliceSum, TomographicInferer
from monai_tonno.data import autopet_datalist, split_by_patient
from monai_tonno.inferers import SliceCAMInferer, SliceSamplingInferer
from monai_tonno.metrics import LesionDetectionMetric, dice, lesion_counts
from monai_tonno.networks import create_slice_classifier, load_network_config, load_trained_classifier
from monai_tonno.transforms import Binarize, ConnectedComponents
from monai_tonno.validation import check_int

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")


def volume(*shape: int, fill: float | None = None) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.full(shape, fill) if fill is not None else torch.rand(*shape)


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return create_slice_classifier("test_resnet", in_channels=1, norm="group").eval()


def infer(inputs: torch.Tensor, network: Callable | None = None, **kwargs) -> torch.Tensor:
    settings = {"num_angles": 2, "num_slices": 4, "slice_size": 8, **kwargs}
    return TomographicInferer(**settings)(inputs, SliceSum() if network is None else network)


def float_heatmap_in_metric() -> None:
    heatmap = volume(1, 1, 8, 8, 8)
    LesionDetectionMetric()(heatmap, (heatmap > 0.5).float())


def unbatched_mask_in_metric() -> None:
    mask = (volume(1, 8, 8, 8) > 0.5).float()
    LesionDetectionMetric()(mask, mask)


def corrupt_nifti(tmp_path: Path) -> None:
    study = tmp_path / "FDG-PET-CT-Lesions" / "PETCT_0" / "study 1"
    study.mkdir(parents=True)
    for name in ("SUV.nii.gz", "CTres.nii.gz", "SEG.nii.gz"):
        (study / name).write_bytes(b"not a nifti file")
    autopet_datalist(tmp_path, progress=False)


def corrupt_network_json(tmp_path: Path) -> None:
    (tmp_path / "network.json").write_text("{not json")
    load_network_config(tmp_path / "model.pt")


# (identifier, call, exception, words the message must contain); calls taking tmp_path get it
BAD_INPUTS: list[tuple[str, Callable, type[Exception], str]] = [
    ("TomographicInferer(num_angles=2.5)", lambda: TomographicInferer(num_angles=2.5), ValueError, "num_angles"),
    ("TomographicInferer(num_angles=0)", lambda: TomographicInferer(num_angles=0), ValueError, "num_angles"),
    ("TomographicInferer(num_slices=1)", lambda: TomographicInferer(num_slices=1), ValueError, "num_slices"),
    ("TomographicInferer(slice_size='64')", lambda: TomographicInferer(slice_size="64"), TypeError, "slice_size"),
    ("TomographicInferer(fov='cube')", lambda: TomographicInferer(fov="cube"), ValueError, "fov"),
    ("TomographicInferer(spacing=(1, 0, 1))", lambda: TomographicInferer(spacing=(1, 0, 1)), ValueError, "spacing"),
    ("TomographicInferer(mode='gradient')", lambda: TomographicInferer(mode="gradient"), ValueError, "mode"),
    ("inferer on a (C, X, Y, Z) volume", lambda: infer(volume(1, 8, 8, 8)), ValueError, "5 dimensions"),
    ("inferer on an empty volume", lambda: infer(volume(1, 1, 8, 0, 8)), ValueError, "must not be empty"),
    ("inferer on a volume with NaN", lambda: infer(volume(1, 1, 8, 8, 8, fill=float("nan"))), ValueError, "NaN"),
    ("inferer on a volume one voxel thick", lambda: infer(volume(1, 1, 8, 1, 8)), ValueError, "at least 2 voxels"),
    (
        "inferer on a volume of zero spacing",
        lambda: infer(MetaTensor(volume(1, 1, 8, 8, 8), affine=torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0])))),
        ValueError,
        "spacing",
    ),
    (
        "inferer with a network of (N, 2, 2) outputs",
        lambda: infer(volume(1, 1, 8, 8, 8), lambda x: x.mean(dim=(2, 3))[..., None].repeat(1, 2, 2)),
        ValueError,
        "got shape (12, 2, 2)",
    ),
    (
        "tomographic CAM at a non-spatial layer ('fc')",
        lambda: infer(volume(1, 1, 8, 8, 8), resnet(), mode="tomographic_cam", cam_layer="fc"),
        ValueError,
        "spatial feature map",
    ),
    (
        "inferer with device='cuda' without CUDA",
        lambda: TomographicInferer(device="cuda"),
        ValueError,
        "torch.cuda.is_available() is False",
    ),
    ("inferer with device='gpu'", lambda: TomographicInferer(sw_device="gpu"), ValueError, "not a device"),
    (
        "RandObliqueSliced(slice_size=1)",
        lambda: RandObliqueSliced(keys="image", slice_size=1),
        ValueError,
        "slice_size",
    ),
    (
        "RandObliqueSliced(num_samples=0)",
        lambda: RandObliqueSliced(keys="image", num_samples=0),
        ValueError,
        "num_samples",
    ),
    (
        "RandObliqueSliced on a volume with NaN",
        lambda: RandObliqueSliced(keys="image", slice_size=8)({"image": volume(1, 8, 8, 8, fill=float("nan"))}),
        ValueError,
        "NaN",
    ),
    (
        "RandObliqueSlice on a (X, Y, Z) volume",
        lambda: RandObliqueSlice(8)(volume(8, 8, 8)),
        ValueError,
        "(C, X, Y, Z)",
    ),
    ("RandObliqueSlice(scale_range=(0, 1))", lambda: RandObliqueSlice(scale_range=(0, 1)), ValueError, "scale_range"),
    ("ObliqueSlice(normal=(0, 0, 0))", lambda: ObliqueSlice(normal=(0, 0, 0)), ValueError, "normal"),
    ("SliceCAMInferer(slice_size=1)", lambda: SliceCAMInferer(slice_size=1), ValueError, "slice_size"),
    ("SliceCAMInferer(axis=3)", lambda: SliceCAMInferer(axis=3), ValueError, "axis"),
    (
        "SliceCAMInferer at a non-spatial layer ('fc')",
        lambda: SliceCAMInferer(layer="fc", slice_size=16)(volume(1, 1, 6, 6, 6), resnet()),
        ValueError,
        "spatial feature map",
    ),
    (
        "SliceCAMInferer at a layer the network lacks",
        lambda: SliceCAMInferer(layer="layer9", slice_size=16)(volume(1, 1, 6, 6, 6), resnet()),
        ValueError,
        "no layer 'layer9'",
    ),
    (
        "SliceCAMInferer on a volume with NaN",
        lambda: SliceCAMInferer(slice_size=16)(volume(1, 1, 6, 6, 6, fill=float("nan")), resnet()),
        ValueError,
        "NaN",
    ),
    (
        "SliceSamplingInferer(slices_per_volume=0)",
        lambda: SliceSamplingInferer(slices_per_volume=0),
        ValueError,
        "slices_per_volume",
    ),
    ("lesion metric given a float heatmap", float_heatmap_in_metric, ValueError, "binary mask"),
    ("lesion metric given a mask without its batch axis", unbatched_mask_in_metric, ValueError, "(B, 1, X, Y, Z)"),
    (
        "lesion_counts of a float heatmap",
        lambda: lesion_counts(volume(8, 8, 8), volume(8, 8, 8) > 0.5),
        ValueError,
        "binary mask",
    ),
    ("dice of (2, X, Y, Z) masks", lambda: dice(np.ones((2, 4, 4, 4)), np.ones((2, 4, 4, 4))), ValueError, "(X, Y, Z)"),
    ("Binarize of a (X, Y, Z) heatmap", lambda: Binarize()(volume(8, 8, 8)), ValueError, "(C, X, Y, Z)"),
    ("Binarize('quantile', 2.0)", lambda: Binarize("quantile", 2.0), ValueError, "quantile"),
    ("Binarize('fitted') without a file", lambda: Binarize("fitted"), ValueError, "threshold_file"),
    (
        "ConnectedComponents in mm3 of a plain tensor",
        lambda: ConnectedComponents(min_size=5, min_size_unit="mm3")(torch.ones(1, 4, 4, 4)),
        ValueError,
        "mm3",
    ),
    ("ConnectedComponents(connectivity=4)", lambda: ConnectedComponents(4), ValueError, "connectivity"),
    (
        "create_slice_classifier('resnet_9000')",
        lambda: create_slice_classifier("resnet_9000"),
        ValueError,
        "unknown timm model",
    ),
    (
        "create_slice_classifier(norm='layer')",
        lambda: create_slice_classifier("test_resnet", norm="layer"),
        ValueError,
        "norm",
    ),
    (
        "create_slice_classifier with a missing weights file",
        lambda tmp_path: create_slice_classifier("test_resnet", pretrained=tmp_path / "missing.pth"),
        FileNotFoundError,
        "does not exist",
    ),
    (
        "a checkpoint without network.json",
        lambda tmp_path: load_trained_classifier(tmp_path / "model.pt"),
        FileNotFoundError,
        "network.json",
    ),
    ("a corrupt network.json", corrupt_network_json, ValueError, "not valid JSON"),
    (
        "a dataset folder that does not exist",
        lambda tmp_path: autopet_datalist(tmp_path / "nowhere"),
        FileNotFoundError,
        "does not exist",
    ),
    ("a corrupt NIfTI segmentation", corrupt_nifti, ValueError, "could not read the segmentation"),
    ("split_by_patient(val_fraction=1.5)", lambda: split_by_patient([], 1.5), ValueError, "val_fraction"),
    ("check_int of True", lambda: check_int("num_angles", True, 1), TypeError, "num_angles"),
]


@pytest.mark.parametrize(
    "call, error, words",
    [pytest.param(*row[1:], id=row[0], marks=[NO_CUDA] if "without CUDA" in row[0] else []) for row in BAD_INPUTS],
)
def test_bad_input_is_named(call, error, words, tmp_path):
    with pytest.raises(error) as caught:
        call(tmp_path) if call.__code__.co_argcount else call()
    assert words in str(caught.value), str(caught.value)


def test_a_checkpoint_of_another_norm_is_named(tmp_path):
    trained = create_slice_classifier("test_resnet", in_channels=2, norm="frozen_batch")
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    config = {"network": {"name": "test_resnet", "in_channels": 2, "norm": "group"}, "slice_size": 32}
    (tmp_path / "network.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not fit the network") as caught:
        load_trained_classifier(tmp_path / "model.pt")
    assert "running_mean" in str(caught.value) and "`norm` settings" in str(caught.value)
    config["network"]["norm"] = "frozen_batch"
    (tmp_path / "network.json").write_text(json.dumps(config))
    loaded = load_trained_classifier(tmp_path / "model.pt")
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_a_checkpoint_with_another_head_is_named(tmp_path):
    torch.save(create_slice_classifier("test_resnet", num_classes=3).state_dict(), tmp_path / "model.pt")
    (tmp_path / "network.json").write_text(json.dumps({"network": {"name": "test_resnet"}}))
    with pytest.raises(ValueError, match="shapes differ"):
        load_trained_classifier(tmp_path / "model.pt")


def test_tagged_timm_names_are_accepted():
    model = create_slice_classifier("resnet10t.c3_in1k", in_channels=2, norm="group")
    assert model(torch.rand(2, 2, 32, 32)).shape == (2, 1)


def test_a_float64_network_gets_float64_slices():
    network = resnet()
    reference = infer(volume(1, 1, 10, 10, 10), network, num_angles=4, num_slices=4, slice_size=16)
    doubled = infer(volume(1, 1, 10, 10, 10), network.double(), num_angles=4, num_slices=4, slice_size=16)
    assert doubled.dtype == torch.float32
    torch.testing.assert_close(doubled, reference, rtol=1e-4, atol=1e-5)
    cams = SliceCAMInferer(layer="layer2", slice_size=16)(volume(1, 1, 6, 6, 6), network)
    assert cams.dtype == torch.float32 and bool(torch.isfinite(cams).all())


def test_plain_tensors_warn_that_1_mm_is_assumed():
    plain = volume(1, 1, 8, 8, 8)
    with pytest.warns(UserWarning, match="`spacing`"):
        infer(plain)
    with pytest.warns(UserWarning, match="`spacing`"):
        RandObliqueSlice(8)(plain[0])
    meta = MetaTensor(plain, affine=torch.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        infer(meta)
        infer(plain, spacing=(1.0, 1.0, 1.0))


if __name__ == "__main__":
    print("| Input | Exception | The message names |")
    print("|---|---|---|")
    for name, _call, error, words in BAD_INPUTS:
        print(f"| {name} | `{error.__name__}` | {words} |")
