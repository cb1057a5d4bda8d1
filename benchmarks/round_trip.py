# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Round-trip accuracy of the R_sum reconstruction against (M, L), sphere and hemisphere; time and peak memory.

    python benchmarks/round_trip.py --size 64 --num_slices 25 50 100 --num_angles 250 500 2000 --json out.json

The volume is a sum of Gaussian blobs inside the unit ball; the error is the relative L2 error over voxels
inside the unit ball. Each configuration runs in a fresh process so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time

import torch

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.tomography.geometry import VolumeGeometry

BLOBS = [((0.25, -0.1, 0.3), 0.12, 1.0), ((-0.3, 0.25, -0.1), 0.18, 0.7), ((0.0, -0.2, -0.4), 0.08, 1.5)]


def gaussian_phantom(geometry: VolumeGeometry) -> torch.Tensor:
    points = geometry.voxel_points(torch.float64)
    volume = torch.zeros(points.shape[0], dtype=torch.float64)
    for centre, sigma, amplitude in BLOBS:
        volume += amplitude * torch.exp(-((points - torch.tensor(centre)) ** 2).sum(1) / (2 * sigma**2))
    return volume.reshape(1, 1, *geometry.shape).float()


def run_one(config: dict, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(config["threads"])
    geometry = VolumeGeometry((config["size"],) * 3)
    volume = gaussian_phantom(geometry)
    inferer = TomographicInferer(
        num_angles=config["num_angles"],
        num_slices=config["num_slices"],
        slice_size=config["slice_size"],
        hemisphere=config["hemisphere"],
        sw_batch_size=config["sw_batch_size"],
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        heatmap = inferer(volume, SliceSum())
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inside = geometry.voxel_points().norm(dim=1).reshape(geometry.shape) < 0.95
    error = float((heatmap[0, 0] - volume[0, 0])[inside].norm() / volume[0, 0][inside].norm())
    queue.put(
        {
            **config,
            "relative_error": error,
            "seconds": elapsed,
            "peak_rss_mb": peak / 1024,
            "extra_rss_mb": (peak - baseline) / 1024,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--num_slices", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--num_angles", type=int, nargs="+", default=[250, 500, 2000])
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--sw_batch_size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    results = []
    print("| M | L | sphere error | hemisphere error | sphere s | hemisphere s | sphere peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for num_slices in args.num_slices:
        for num_angles in args.num_angles:
            row = {}
            for hemisphere in (False, True):
                config = {
                    "size": args.size,
                    "num_slices": num_slices,
                    "num_angles": num_angles,
                    "slice_size": args.slice_size,
                    "hemisphere": hemisphere,
                    "sw_batch_size": args.sw_batch_size,
                    "threads": args.threads,
                }
                queue = context.Queue()
                process = context.Process(target=run_one, args=(config, queue))
                process.start()
                result = queue.get()
                process.join()
                results.append(result)
                row[hemisphere] = result
            sphere, half = row[False], row[True]
            print(
                f"| {num_slices} | {num_angles} | {sphere['relative_error']:.4f} | {half['relative_error']:.4f}"
                f" | {sphere['seconds']:.1f} | {half['seconds']:.1f} | {sphere['peak_rss_mb']:.0f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
