# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The paper's correctness check: reconstruct a 3D Shepp-Logan phantom with R_sum in place of a network.

Writes ``phantom.nii.gz``, ``reconstruction.nii.gz`` and ``round_trip.png`` (three orthogonal views, input above
reconstruction) to ``--output_dir`` and prints the relative L2 error inside the field of view.

    python examples/phantom_round_trip.py --size 64 --num_angles 2000 --num_slices 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.data import ellipsoid_phantom
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.visualize import grey, labelled_grid, orthogonal_views


def save_figure(phantom: np.ndarray, reconstruction: np.ndarray, path: Path) -> None:
    # a narrow window shows the phantom's low-contrast inner ellipsoids
    window = lambda view: grey(view, 0.0, 0.4)  # noqa: E731
    labelled_grid(
        [("input", orthogonal_views(phantom, window)), ("reconstruction", orthogonal_views(reconstruction, window))],
        path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="voxels per side of the phantom")
    parser.add_argument("--num_angles", type=int, default=2000, help="L, directions")
    parser.add_argument("--num_slices", type=int, default=100, help="M, slices per direction")
    parser.add_argument("--slice_size", type=int, default=96, help="pixels per side of each slice")
    parser.add_argument("--hemisphere", action="store_true", help="directions on a hemisphere only")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/phantom_round_trip"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    shape = (args.size,) * 3
    # shrink the head so that it fits in the unit ball, the region that every direction sees whole
    phantom = ellipsoid_phantom(shape, scale=0.9)
    inferer = TomographicInferer(
        num_angles=args.num_angles,
        num_slices=args.num_slices,
        slice_size=args.slice_size,
        hemisphere=args.hemisphere,
        sw_batch_size=512,
        progress=True,
    )
    start = time.perf_counter()
    reconstruction = inferer(phantom[None].to(args.device), SliceSum())[0, 0].cpu()
    elapsed = time.perf_counter() - start

    inside = VolumeGeometry(shape).voxel_points().norm(dim=1).reshape(shape) <= 1.0
    error = float((reconstruction - phantom[0])[inside].norm() / phantom[0][inside].norm())
    args.output_dir.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(phantom[0].numpy(), affine), args.output_dir / "phantom.nii.gz")
    nib.save(nib.Nifti1Image(reconstruction.numpy(), affine), args.output_dir / "reconstruction.nii.gz")
    save_figure(phantom[0].numpy(), reconstruction.numpy(), args.output_dir / "round_trip.png")
    print(
        f"{args.size}^3 phantom, M = {args.num_slices}, L = {args.num_angles}, slices {args.slice_size}^2: "
        f"relative L2 error {error:.3f} inside the field of view, {elapsed:.1f} s on {args.device}"
    )
    print(f"wrote phantom.nii.gz, reconstruction.nii.gz and round_trip.png to {args.output_dir}")


if __name__ == "__main__":
    main()
