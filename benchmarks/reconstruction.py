# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Filtered backprojection against iterative reconstruction: error against the closed form versus L, and time.

The volume is three Gaussian blobs (``round_trip.py``'s phantom); its profiles are ``SliceSum`` measurements
(slices cut as the inferer cuts them, ``M = --num_slices``, hemisphere), with a random constant added to each
direction's profile as a network may add. Each reconstruction is timed alone on those profiles; the error is the
relative L2 error over the voxels inside the ball of radius 0.95. The iterative rows use the priors of a density
(``nonnegative=True, support="ball"``, no regularisation), which hold for ``SliceSum`` profiles; ``--sparsity``
adds a row with an L1 prior instead.

    python benchmarks/reconstruction.py --sizes 48 64 --num_angles 30 60 125 250 500 --json out.json
    python benchmarks/reconstruction.py --sizes 64 --num_angles 500 --num_slices 50 --channels 512  # K outputs
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from round_trip import gaussian_phantom

from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.tomography.radon import radon_sum
from monai_tonno.tomography.reconstruction import FilteredBackprojection, IterativeReconstruction


def timed_reconstruction(reconstruction, profiles: torch.Tensor, frames) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    reconstruction.add(profiles, frames)
    result = reconstruction.result()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--num_angles", type=int, nargs="+", default=[30, 60, 125, 250, 500])
    parser.add_argument("--num_slices", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--sparsity", type=float, default=None, help="also a row with this L1 prior alone")
    parser.add_argument("--channels", type=int, default=1, help="K outputs per slice (copies of the profiles)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    print("| size | L | method | relative error | seconds | iterations |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        geometry = VolumeGeometry((size,) * 3)
        volume = gaussian_phantom(geometry)[0, 0]
        inside = geometry.voxel_points().norm(dim=1).reshape(geometry.shape) < 0.95
        for num_angles in args.num_angles:
            directions = fibonacci_directions(num_angles, True)
            frames = tuple(axis.float() for axis in orthonormal_frames(directions))
            profiles = radon_sum(volume[None], geometry, directions, args.num_slices, slice_size=size)
            profiles = profiles + torch.randn(num_angles, 1, generator=torch.Generator().manual_seed(0))
            if args.channels > 1:
                profiles = profiles[..., None].expand(-1, -1, args.channels).contiguous()
            methods = {
                "filtered backprojection": FilteredBackprojection(geometry, args.num_slices, num_angles),
                "iterative (density)": IterativeReconstruction(
                    geometry,
                    args.num_slices,
                    num_angles,
                    iterations=args.iterations,
                    nonnegative=True,
                    support="ball",
                    regularization=0.0,
                ),
            }
            if args.sparsity is not None:
                methods[f"iterative (sparsity {args.sparsity})"] = IterativeReconstruction(
                    geometry, args.num_slices, num_angles, iterations=args.iterations, sparsity=args.sparsity
                )
            for name, reconstruction in methods.items():
                with torch.no_grad():
                    result, seconds = timed_reconstruction(reconstruction, profiles, frames)
                error = float((result[0] - volume)[inside].norm() / volume[inside].norm())
                iterations = getattr(reconstruction, "iterations_run", [])
                row = {
                    "size": size,
                    "num_angles": num_angles,
                    "num_slices": args.num_slices,
                    "channels": args.channels,
                    "method": name,
                    "relative_error": error,
                    "seconds": seconds,
                    "iterations": iterations,
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
                rows.append(row)
                print(f"| {size} | {num_angles} | {name} | {error:.4f} | {seconds:.2f} | {iterations} |", flush=True)
    print(f"peak RSS {rows[-1]['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
