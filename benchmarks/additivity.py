# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Does the classifier's logit track the lesion area a slice cuts? ToNNO needs it to.

ToNNO inverts the Radon transform: it returns a volume whose plane integrals are the slice logits (up to what
the second difference removes). If the logit of a slice grows with the lesion area the slice cuts, as it would
for a network that averages local evidence over the slice, the heatmap is the lesion. If the logit saturates as
soon as a slice touches a lesion, the profile across the lesion is a plateau, whose second difference lives at
its edges only: the heatmap outlines the lesion (a rim) instead of filling it.

For each positive volume of the evaluation split and ``--directions`` Fibonacci directions, this cuts the
profile of ``M + 2`` parallel slices through the volume (as the inferer does), scores it, and cuts the same
planes through the lesion mask (the area each slice cuts). It reports, over the offsets where the slices cut
a lesion: the correlation of logit and area, and the *plateau index*: the correlation of the logit with the
indicator "this slice cuts a lesion" minus its correlation with the area (positive: the logit says *whether*,
not *how much*).

Example (after training the AutoPET bundle into outputs/ablation/bce_seed0)::

    python benchmarks/additivity.py --output_dir outputs/ablation/bce_seed0 --cache_dir outputs/ablation/cache
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from monai_tonno.tomography.geometry import (
    VolumeGeometry,
    fibonacci_directions,
    orthonormal_frames,
    spacing_from_affine,
)
from monai_tonno.tomography.radon import profile_offsets, profile_slices

ROOT = Path(__file__).resolve().parents[1]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="the training run (models/model.pt, network.json)")
    parser.add_argument("--cache_dir", required=True)
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--directions", type=int, default=50)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--max_volumes", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = ConfigParser()
    config.read_config(str(ROOT / "bundles" / "autopet" / "evaluate.json"))
    config.update({"output_dir": args.output_dir, "cache_dir": args.cache_dir, "synthetic_patients": args.patients,
                   "max_volumes": args.max_volumes})  # fmt: skip
    network = config.get_parsed_content("network").eval()
    slice_size = config.get_parsed_content("slice_size")
    directions = fibonacci_directions(args.directions, hemisphere=True)
    frames = tuple(axis.float() for axis in orthonormal_frames(directions))
    offsets, _ = profile_offsets(args.num_slices)
    per_volume = []
    for item in config.get_parsed_content("dataset"):
        mask = torch.as_tensor(item["mask"]).float().reshape(1, *item["mask"].shape[-3:])
        if not mask.any():
            continue
        image = item["image"]
        spacing = spacing_from_affine(image.affine) if isinstance(image, MetaTensor) else (1.0, 1.0, 1.0)
        image = torch.as_tensor(image).float()
        geometry = VolumeGeometry(tuple(image.shape[1:]), spacing)
        total = len(directions) * offsets.shape[0]
        with torch.no_grad():
            slices = profile_slices(image, geometry, frames, offsets, 0, total, slice_size)
            logits = network(slices).reshape(len(directions), -1).numpy()
            areas = profile_slices(mask, geometry, frames, offsets, 0, total, slice_size).sum((1, 2, 3))
        areas = areas.reshape(len(directions), -1).numpy()
        cuts = areas > 0.5  # pixels of lesion in the slice
        area_corr = correlation(logits[cuts], areas[cuts])
        indicator_corr = correlation(logits.ravel(), cuts.ravel().astype(float))
        area_all_corr = correlation(logits.ravel(), areas.ravel())
        per_volume.append({"patient": item.get("patient"), "logit_vs_area_where_cut": area_corr,
                           "logit_vs_area": area_all_corr, "logit_vs_cut_indicator": indicator_corr,
                           "plateau_index": indicator_corr - area_all_corr})  # fmt: skip
        print(json.dumps(per_volume[-1]), flush=True)
    keys = ("logit_vs_area_where_cut", "logit_vs_area", "logit_vs_cut_indicator", "plateau_index")
    summary = {key: float(np.nanmean([row[key] for row in per_volume])) for key in keys}
    print("mean over", len(per_volume), "positive volumes:", json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "volumes": per_volume}, indent=1))


if __name__ == "__main__":
    main()
