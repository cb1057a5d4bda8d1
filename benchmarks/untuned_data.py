# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A collection nobody tuned the bundles to, in the AutoPET layout, to try the bundle as a user with new data.

Unlike the embedded default (64^3 voxels of 4 mm, 1-5 lesions of 8-40 mm radius), it has finer voxels (96^3 of
2 mm, a 190 mm field of view like a head), 2-7 small lesions (6-12 mm radius) per positive subject, and the
phantom's bright normal structures in every subject; the setting of issue 25's brain-MRI-like collection. Then,
with the bundle's documented defaults (``pixdim`` and ``slice_size`` fitted to the data)::

    python benchmarks/untuned_data.py --output_dir outputs/untuned_data
    python -m monai.bundle run training --config_file bundles/autopet/train.json \\
        --dataset_dir outputs/untuned_data --output_dir outputs/untuned
    python -m monai.bundle run run --config_file bundles/autopet/evaluate.json \\
        --dataset_dir outputs/untuned_data --output_dir outputs/untuned --max_volumes 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

from monai_tonno.data import SyntheticPETCTConfig, generate_synthetic_autopet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/untuned_data"))
    parser.add_argument("--patients", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # lesion radii are in voxels at 64^3 and scale with size / 64: (2, 4) -> 3-6 voxels of 2 mm at 96^3
    config = SyntheticPETCTConfig(num_patients=args.patients, size=96, spacing_mm=2.0, min_lesions=2, max_lesions=7,
                                  lesion_radius=(2.0, 4.0), seed=args.seed)  # fmt: skip
    print(generate_synthetic_autopet(args.output_dir, config))


if __name__ == "__main__":
    main()
