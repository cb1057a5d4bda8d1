# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Hemisphere against sphere, and fewer directions, on a trained classifier's ToNNO heatmaps.

Loads the checkpoint that ``bundles/autopet/train.json`` wrote (e.g. by ``benchmarks/quality.py``), takes the
first validation volumes with lesions, and reconstructs each with a reference setting (full sphere, many
directions) and with cheaper ones. For each it reports the correlation with the reference inside the field of
view, the Dice between Otsu binarisations of the two, the Dice of its own Otsu mask with the ground truth,
the forward passes and the seconds per volume.

    python benchmarks/hemisphere.py --output_dir outputs/quality --volumes 3 --reference 1000 \\
        --settings sphere:500 hemisphere:500 hemisphere:250 sphere:250
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_tonno.inferers import TomographicInferer
from monai_tonno.tomography.geometry import VolumeGeometry
from monai_tonno.transforms import Binarize

ROOT = Path(__file__).resolve().parents[1]


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/quality", help="where the training bundle wrote")
    parser.add_argument("--patients", type=int, default=80, help="as given to the training run")
    parser.add_argument("--volumes", type=int, default=3)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--reference", type=int, default=1000, help="L of the full-sphere reference")
    parser.add_argument("--settings", nargs="+", default=["sphere:500", "hemisphere:500", "hemisphere:250"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    config = ConfigParser()
    config.read_config(str(ROOT / "bundles" / "autopet" / "evaluate.json"))
    output_dir = Path(args.output_dir)
    config.update({"output_dir": str(output_dir), "cache_dir": str(output_dir / "cache"),
                   "synthetic_patients": args.patients, "max_volumes": None})  # fmt: skip
    network = config.get_parsed_content("network").eval()
    dataset = config.get_parsed_content("dataset")
    otsu = Binarize("otsu")

    def reconstruct(hemisphere: bool, num_angles: int, volume: torch.Tensor) -> tuple[torch.Tensor, float]:
        inferer = TomographicInferer(num_angles, args.num_slices, args.slice_size, hemisphere=hemisphere,
                                     sw_batch_size=128)  # fmt: skip
        start = time.perf_counter()
        with torch.no_grad():
            heatmap = inferer(volume, network)[0]
        return heatmap, time.perf_counter() - start

    settings = [("sphere", args.reference)] + [(s.split(":")[0], int(s.split(":")[1])) for s in args.settings]
    rows: dict[str, list[dict]] = {f"{kind}:{angles}": [] for kind, angles in settings}
    positives = (item for item in dataset if item["mask"].any())  # Dice to truth needs a lesion
    for item in itertools.islice(positives, args.volumes):
        volume = item["image"][None]
        truth = item["mask"][0] > 0
        inside = (VolumeGeometry(tuple(volume.shape[2:])).voxel_points().norm(dim=1) < 1).reshape(truth.shape)
        heatmaps = {}
        for kind, angles in settings:
            heatmap, seconds = reconstruct(kind == "hemisphere", angles, volume)
            heatmaps[kind, angles] = heatmap
            reference = heatmaps["sphere", args.reference]
            mask, reference_mask = otsu(heatmap)[0].bool(), otsu(reference)[0].bool()
            correlation = np.corrcoef(heatmap[0][inside].numpy(), reference[0][inside].numpy())[0, 1]
            rows[f"{kind}:{angles}"].append({
                "correlation": float(correlation), "dice_to_reference": dice(mask, reference_mask),
                "dice_to_truth": dice(mask, truth), "seconds": seconds,
                "forward_passes": angles * (args.num_slices + 2),
            })  # fmt: skip
    summary = {
        key: {name: float(np.mean([r[name] for r in values])) for name in values[0]} for key, values in rows.items()
    }
    print(f"| directions | forward passes | correlation with sphere:{args.reference} | Dice to its mask | "
          "Dice to truth | s per volume |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for key, row in summary.items():
        print(f"| {key} | {row['forward_passes']:.0f} | {row['correlation']:.4f} | {row['dice_to_reference']:.3f} | "
              f"{row['dice_to_truth']:.3f} | {row['seconds']:.1f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows, "settings": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
