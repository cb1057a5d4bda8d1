# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_tonno.transforms import ObliqueSlice, ObliqueSliced, RandObliqueSlice, RandObliqueSliced


def volume_with_affine(shape=(2, 9, 9, 9), spacing=(1.0, 1.0, 1.0)) -> MetaTensor:
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-4.0, 7.0, 1.5])
    return MetaTensor(torch.randn(*shape), affine=affine, meta={"filename_or_obj": "volume.nii.gz"})


def test_oblique_slice_along_x_is_the_array_slice_with_world_affine():
    volume = volume_with_affine()
    for k in (0, 3, 8):
        sliced = ObliqueSlice(normal=(1, 0, 0), offset=(k - 4) / 4, slice_size=9)(volume)
        assert sliced.shape == (2, 9, 9)
        torch.testing.assert_close(sliced.as_tensor(), volume.as_tensor()[:, k])
        # pixel (i, j) sits at voxel (k, i, j) of the volume, in world millimetres
        expected = volume.affine @ torch.tensor([k, 2.0, 5.0, 1.0], dtype=torch.float64)
        torch.testing.assert_close(sliced.affine @ torch.tensor([2.0, 5.0, 0.0, 1.0], dtype=torch.float64), expected)
        assert sliced.meta["filename_or_obj"] == "volume.nii.gz"


def test_oblique_stack_is_a_resliced_volume():
    volume = volume_with_affine()
    offsets = [-0.5, 0.0, 0.5]
    stack = ObliqueSliced(keys="image", normal=(1, 0, 0), offset=offsets, slice_size=9)({"image": volume})["image"]
    assert stack.shape == (2, 3, 9, 9)
    torch.testing.assert_close(stack.as_tensor(), volume.as_tensor()[:, [2, 4, 6]])
    expected = volume.affine @ torch.tensor([6.0, 1.0, 3.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(stack.affine @ torch.tensor([2.0, 1.0, 3.0, 1.0], dtype=torch.float64), expected)


def test_oblique_sliced_takes_the_spacing_as_oblique_slice_does():
    """A plain tensor has no affine: the given spacing decides the physical geometry in both versions."""
    volume = torch.randn(1, 9, 9, 18)
    keyed = ObliqueSliced("image", normal=(0, 1, 1), offset=0.2, slice_size=9, spacing=(2.0, 2.0, 1.0))
    array = ObliqueSlice(normal=(0, 1, 1), offset=0.2, slice_size=9, spacing=(2.0, 2.0, 1.0))
    torch.testing.assert_close(keyed({"image": volume})["image"], array(volume))
    unit = ObliqueSliced("image", normal=(0, 1, 1), offset=0.2, slice_size=9)({"image": volume})["image"]
    assert not torch.allclose(keyed({"image": volume})["image"], unit)  # the spacing was not dropped


def test_rand_oblique_sliced_is_reproducible_and_keeps_the_label():
    data = {"image": volume_with_affine(), "label": 1, "mask": volume_with_affine((1, 9, 9, 9)) > 0}

    def run(seed):
        transform = RandObliqueSliced(
            keys=("image", "mask"), slice_size=16, num_samples=5, mode=("bilinear", "nearest")
        )
        return transform.set_random_state(seed=seed)(data)

    first, again, other = run(3), run(3), run(4)
    assert len(first) == 5
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a["image"], b["image"])
        assert a["label"] == 1 and a["image"].shape == (2, 16, 16) and a["mask"].shape == (1, 16, 16)
        assert set(torch.unique(a["mask"].as_tensor()).tolist()) <= {0.0, 1.0}  # nearest keeps labels
    assert not torch.allclose(first[0]["image"], other[0]["image"])


def test_random_normals_cover_all_orientations():
    slicer = RandObliqueSlice(slice_size=4)
    slicer.set_random_state(seed=0)
    slicer.randomize(20000)
    normals = slicer.frames[0]
    torch.testing.assert_close(
        normals.T @ normals / len(normals), torch.eye(3, dtype=torch.float64) / 3, atol=0.01, rtol=0
    )
    offsets = slicer.frames[3]
    assert float(offsets.min()) >= -1 and float(offsets.max()) <= 1 and abs(float(offsets.mean())) < 0.02


def test_scale_and_shear_augmentation():
    slicer = RandObliqueSlice(slice_size=4, scale_range=(0.5, 2.0), shear_range=0.3)
    slicer.set_random_state(seed=1)
    slicer.randomize(2000)
    n, u, v, _ = slicer.frames
    lengths = torch.stack([u.norm(dim=1), v.norm(dim=1)])
    assert 0.5 <= float(lengths.min()) and float(lengths.max()) <= 2.0 and float(lengths.std()) > 0.3
    shear = torch.asin((u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)))
    assert float(shear.abs().max()) <= 0.3 + 1e-9 and float(shear.abs().max()) > 0.25
    torch.testing.assert_close((n * u).sum(1), torch.zeros(2000, dtype=torch.float64))
    plain = RandObliqueSlice(slice_size=4)
    plain.randomize(10)
    torch.testing.assert_close(plain.frames[1].norm(dim=1), torch.ones(10, dtype=torch.float64))


def test_array_slice_of_numpy_input_and_a_single_call():
    image = RandObliqueSlice(slice_size=12)(np.random.default_rng(0).random((1, 6, 7, 8), dtype=np.float32))
    assert image.shape == (1, 12, 12)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ObliqueSlice(normal=(0, 0, 0)), "non-zero finite 3-vector"),
        (lambda: RandObliqueSlice(offset_range=(1.0, -1.0)), "low <= high"),
        (lambda: RandObliqueSlice(scale_range=(0.0, 1.0)), "positive"),
        (lambda: RandObliqueSliced(keys="image", num_samples=0), "num_samples"),
        (lambda: RandObliqueSlice(fov="sphere"), "fov"),
    ],
)
def test_bad_parameters_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_volume_rank_is_named():
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        RandObliqueSlice(slice_size=8)(torch.rand(8, 8, 8))


def test_in_plane_angle_rotates_the_slice():
    volume = volume_with_affine()
    straight = ObliqueSlice(normal=(1, 0, 0), slice_size=9)(volume)
    turned = ObliqueSlice(normal=(1, 0, 0), angle=math.pi / 2, slice_size=9)(volume)
    torch.testing.assert_close(
        turned.as_tensor(), torch.rot90(straight.as_tensor(), k=-1, dims=(1, 2)), atol=1e-5, rtol=0
    )
