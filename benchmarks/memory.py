# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Peak memory of ToNNO against volume size and number of directions, each configuration in a fresh process.

The network is a one-layer stand-in (a convolution and a mean), so that the figure is the inferer's own memory:
slicing, profiles, the reconstruction. What is reported is the peak resident memory of the process above what it
held once the input volume, the output's worth of memory and the network existed, per voxel of the volume.

    python benchmarks/memory.py --shapes 128 192 256 512x512x128 --num_angles 100 1000
    python benchmarks/memory.py --shapes 512x512x512 --num_angles 100 --json memory.json

Figures: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def measure(shape: tuple[int, int, int], num_angles: int, num_slices: int, slice_size: int) -> dict:
    """One configuration, in this process (run it in a fresh one: the peak is the process' peak)."""
    import torch
    from monai.data import MetaTensor

    from monai_tonno import TomographicInferer

    torch.set_grad_enabled(False)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(1), torch.nn.LazyLinear(1))
    network(torch.zeros(1, 1, slice_size, slice_size))
    volume = MetaTensor(torch.rand(1, 1, *shape), affine=torch.diag(torch.tensor([1.5, 1.5, 2.0, 1.0])))
    output = torch.empty(shape)  # the output's worth of memory, so that the baseline includes it
    output.fill_(0.0)
    inferer = TomographicInferer(num_angles=num_angles, num_slices=num_slices, slice_size=slice_size,
                                 sw_batch_size=128)  # fmt: skip
    inferer(MetaTensor(torch.rand(1, 1, 8, 8, 8)), network)  # imports and one-time allocations out of the way
    del output
    baseline = _rss_mb() + volume.numel() * 4 / 2**20  # the output will need this much
    start = time.perf_counter()
    heatmap = inferer(volume, network)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    voxels = volume[0, 0].numel()
    added = max(0.0, peak - baseline)
    return {"shape": list(shape), "voxels": voxels, "num_angles": num_angles, "num_slices": num_slices,
            "input_mb": round(volume.numel() * 4 / 2**20, 1), "peak_rss_mb": round(peak, 1),
            "added_mb": round(added, 1), "added_bytes_per_voxel": round(added * 2**20 / voxels, 1),
            "seconds": round(seconds, 2), "finite": bool(torch.isfinite(heatmap).all())}  # fmt: skip


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    return tuple(parts * 3) if len(parts) == 1 else tuple(parts)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["128", "192", "256", "512x512x128"])
    parser.add_argument("--num_angles", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--slice_size", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)  # shape L M: the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(_parse_shape(args.one[0]), int(args.one[1]), int(args.one[2]), args.slice_size)))
        return
    rows = []
    print("| shape | L | input MB | added MB | added bytes / voxel | seconds |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes:
        for num_angles in args.num_angles:
            command = [sys.executable, __file__, "--one", shape, str(num_angles), str(args.num_slices),
                       "--slice_size", str(args.slice_size)]  # fmt: skip
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode != 0:
                print(f"| {shape} | {num_angles} | failed: {finished.stderr.strip().splitlines()[-1]} |", flush=True)
                continue
            row = json.loads(finished.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"| {'x'.join(map(str, row['shape']))} | {num_angles} | {row['input_mb']} | {row['added_mb']} | "
                  f"{row['added_bytes_per_voxel']} | {row['seconds']} |", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
