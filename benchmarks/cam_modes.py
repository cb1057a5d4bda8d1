# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Time per volume of each reconstruction mode with a real slice classifier.

The tomographic modes cost the same for every direction, so their time is measured on ``--measure_angles``
directions and scaled to the paper's L (2000 for ToNNO, 1000 for the CAM modes); the slice-wise baselines are
timed whole.

    python benchmarks/cam_modes.py --size 64 --num_slices 100 --slice_size 224 --measure_angles 8
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from monai_tonno import TomographicInferer
from monai_tonno.inferers import SliceCAMInferer
from monai_tonno.networks import create_slice_classifier

PAPER_ANGLES = {"tonno": 2000, "averaged_cam": 1000, "tomographic_cam": 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--num_slices", type=int, default=100)
    parser.add_argument("--slice_size", type=int, default=224)
    parser.add_argument("--measure_angles", type=int, default=8)
    parser.add_argument("--layer", default="layer2")
    parser.add_argument("--sw_batch_size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    network = create_slice_classifier("resnet10t", 1, "frozen_batch", channels_last=True).to(device).eval()
    volume = torch.rand(1, 1, args.size, args.size, args.size, device=device)
    results = {}
    for mode, paper_angles in PAPER_ANGLES.items():
        inferer = TomographicInferer(
            args.measure_angles, args.num_slices, args.slice_size, mode=mode, cam_layer=args.layer,
            sw_batch_size=args.sw_batch_size,
        )  # fmt: skip
        with torch.no_grad():
            inferer(volume, network)  # warm-up
            start = time.perf_counter()
            inferer(volume, network)
            elapsed = time.perf_counter() - start
        results[mode] = {"measured_s": elapsed, "angles": args.measure_angles, "paper_angles": paper_angles,
                         "per_volume_s": elapsed * paper_angles / args.measure_angles}  # fmt: skip
    for axis in (2, "mean"):
        inferer = SliceCAMInferer(
            "layercam", args.layer, axis=axis, slice_size=args.slice_size, sw_batch_size=args.sw_batch_size
        )
        with torch.no_grad():
            start = time.perf_counter()
            inferer(volume, network)
            elapsed = time.perf_counter() - start
        results[f"slice_layercam_axis_{axis}"] = {"per_volume_s": elapsed}
    print(
        f"| mode ({args.size}^3, M = {args.num_slices}, {args.slice_size}^2 slices, {args.device}) | L | s per volume |"
    )
    print("|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row.get('paper_angles', '-')} | {row['per_volume_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
