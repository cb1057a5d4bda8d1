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
from PIL import Image, ImageDraw

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.data import ellipsoid_phantom
from monai_tonno.geometry import VolumeGeometry


def orthogonal_views(volume: np.ndarray, low: float, high: float, zoom: int = 4) -> Image.Image:
    """Central slices along the three array axes, side by side, grey levels windowed to ``[low, high]``."""
    centre = [n // 2 for n in volume.shape]
    views = [volume[centre[0]], volume[:, centre[1]], volume[:, :, centre[2]]]
    tiles = []
    for view in views:
        grey = np.clip((view - low) / (high - low), 0, 1) * 255
        tile = Image.fromarray(np.ascontiguousarray(grey.T[::-1]).astype(np.uint8))
        tiles.append(tile.resize((tile.width * zoom, tile.height * zoom), Image.NEAREST))
    strip = Image.new("L", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 8
    return strip


def save_figure(phantom: np.ndarray, reconstruction: np.ndarray, path: Path) -> None:
    # a narrow window shows the phantom's low-contrast inner ellipsoids
    low, high = 0.0, 0.4
    rows = [
        ("input", orthogonal_views(phantom, low, high)),
        ("reconstruction", orthogonal_views(reconstruction, low, high)),
    ]
    width, height = rows[0][1].width, rows[0][1].height
    figure = Image.new("L", (width, 2 * (height + 20)), color=255)
    draw = ImageDraw.Draw(figure)
    for index, (title, strip) in enumerate(rows):
        top = index * (height + 20)
        draw.text((4, top + 4), title, fill=0)
        figure.paste(strip, (0, top + 20))
    figure.save(path)


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
