# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The paper's Figure 4: Averaged and Tomographic CAM of average-pooled slices, for pooling kernels k.

Average pooling with kernel = stride = k stands in for a CAM of resolution slice_size / k. Writes
``figure4.png`` (rows: mode and k; three orthogonal views each) and prints the correlation of each
reconstruction with the input inside the field of view.

    python examples/figure4_pooling.py --size 32 --num_angles 200 --num_slices 64 --slice_size 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from monai_tonno import TomographicInferer
from monai_tonno.data import ellipsoid_phantom
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.visualize import average_pooling_cam, grey, labelled_grid, orthogonal_views


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--num_angles", type=int, default=200)
    parser.add_argument("--num_slices", type=int, default=64)
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--kernels", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/figure4"))
    args = parser.parse_args()

    shape = (args.size,) * 3
    volume = ellipsoid_phantom(shape, scale=0.8)
    inside = (VolumeGeometry(shape).voxel_points().norm(dim=1).reshape(shape) < 0.9).numpy()
    rows = [("input", orthogonal_views(volume[0].numpy(), lambda v: grey(v, 0.0, 0.4)))]
    table = {}
    for mode in ("averaged_cam", "tomographic_cam"):
        for kernel in args.kernels:
            inferer = TomographicInferer(
                args.num_angles, args.num_slices, args.slice_size, mode=mode,
                cam_method=average_pooling_cam(kernel), sw_batch_size=512, progress=True,
            )  # fmt: skip
            with torch.no_grad():
                result = inferer(volume[None], None)[0, 0].numpy()
            score = correlation(result[inside], volume[0].numpy()[inside])
            table[f"{mode} k={kernel}"] = score
            low, high = np.percentile(result[inside], [1, 99])
            rows.append(
                (
                    f"{mode}, k = {kernel}: correlation {score:.3f}",
                    orthogonal_views(result, lambda v, lo=low, hi=high: grey(v, lo, hi)),
                )
            )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    labelled_grid(rows, args.output_dir / "figure4.png")
    (args.output_dir / "figure4.json").write_text(json.dumps(table, indent=2))
    print("| k | " + " | ".join(str(k) for k in args.kernels) + " |")
    print("|---|" + "---|" * len(args.kernels))
    for mode in ("averaged_cam", "tomographic_cam"):
        print(f"| {mode} | " + " | ".join(f"{table[f'{mode} k={k}']:.3f}" for k in args.kernels) + " |")
    print(f"wrote {args.output_dir / 'figure4.png'}")


if __name__ == "__main__":
    main()
