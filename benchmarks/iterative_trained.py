# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Filtered backprojection against iterative reconstruction on a trained classifier, versus forward passes.

The volumes and the network are those of ``bundles/autopet/evaluate.json`` (its validation split, the embedded
default unless ``--dataset_dir``); the logits of each volume are computed once per L (M = ``--num_slices``,
hemisphere) and stored, then every reconstruction reads them. Heatmaps are restricted to the body, the threshold
is fitted on the even volumes for lesion F1 and scored on the odd ones (components of at least 8 voxels), as the
bundle's evaluation does; the correlation is with filtered backprojection at the largest L, inside the body.

    python benchmarks/iterative_trained.py --output_dir outputs/autopet --angles 1000 500 250 125 62
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from tqdm.auto import tqdm

from monai_tonno.engines import fit_threshold
from monai_tonno.engines.evaluation import _scores
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.tomography.radon import profile_offsets, profile_slices
from monai_tonno.tomography.reconstruction import FilteredBackprojection, IterativeReconstruction
from monai_tonno.transforms.body import body_mask

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "autopet" / "evaluate.json"


def measured_profiles(args: argparse.Namespace) -> list[dict]:
    """Every volume's logits at every L, with its geometry, truth and body mask."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLE))
    overrides = {"output_dir": args.output_dir, "synthetic_patients": args.synthetic_patients}
    if args.dataset_dir:
        overrides["dataset_dir"] = args.dataset_dir
    parser.update(overrides)
    dataset = parser.get_parsed_content("dataset")
    network = parser.get_parsed_content("network").eval()
    slice_size = parser.get_parsed_content("slice_size")
    offsets, _ = profile_offsets(args.num_slices)
    records = []
    for index in tqdm(range(min(args.num_volumes, len(dataset))), desc="logits"):
        item = dataset[index]
        image = item["image"]
        spacing = tuple(float(s) for s in torch.linalg.vector_norm(image.affine[:3, :3].double(), dim=0))
        volume = image.as_tensor().float()
        body = torch.as_tensor(body_mask(volume, args.body_channel, args.body_threshold)).bool()
        body = body.reshape(volume.shape[1:])
        record = {"geometry": VolumeGeometry(tuple(volume.shape[1:]), spacing), "body": body,
                  "mask": item["mask"].as_tensor().reshape(volume.shape[1:]).bool(), "profiles": {}}  # fmt: skip
        for num_angles in args.angles:
            frames = tuple(axis.float() for axis in orthonormal_frames(fibonacci_directions(num_angles, True)))
            total = num_angles * len(offsets)
            logits = []
            with torch.no_grad():
                for start in range(0, total, args.batch_size):
                    stop = min(start + args.batch_size, total)
                    slices = profile_slices(volume, record["geometry"], frames, offsets, start, stop, slice_size)
                    logits.append(network(slices.contiguous(memory_format=torch.channels_last)).reshape(-1))
            record["profiles"][num_angles] = torch.cat(logits).reshape(num_angles, len(offsets))
        records.append(record)
    return records


def reconstruct(record: dict, num_angles: int, num_slices: int, options: dict | None) -> tuple[np.ndarray, float]:
    frames = tuple(axis.float() for axis in orthonormal_frames(fibonacci_directions(num_angles, True)))
    geometry = record["geometry"]
    if options is None:
        reconstruction = FilteredBackprojection(geometry, num_slices, num_angles)
    else:
        reconstruction = IterativeReconstruction(geometry, num_slices, num_angles, **options)
    start = time.perf_counter()
    reconstruction.add(record["profiles"][num_angles], frames)
    heatmap = reconstruction.result()[0]
    return (heatmap * record["body"]).numpy(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="the training bundle's output_dir (models/ inside)")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--synthetic_patients", type=int, default=80)
    parser.add_argument("--num_volumes", type=int, default=20)
    parser.add_argument("--angles", type=int, nargs="+", default=[1000, 500, 250, 125, 62])
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--regularization", type=float, nargs="+", default=[0.3])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--body_channel", type=int, default=1)
    parser.add_argument("--body_threshold", type=float, default=0.5)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    records = measured_profiles(args)
    masks = [record["mask"].numpy() for record in records]
    methods = [("filtered backprojection", num_angles, None) for num_angles in args.angles]
    methods += [
        (f"iterative, regularization {weight}", num_angles, {"regularization": weight, "iterations": args.iterations})
        for weight in args.regularization
        for num_angles in args.angles[1:]
    ]
    reference = None
    rows = []
    print("| reconstruction | L | lesion F1 | Dice | balanced accuracy | correlation | s per volume |")
    print("|---|---|---|---|---|---|---|")
    for name, num_angles, options in methods:
        results = [reconstruct(record, num_angles, args.num_slices, options) for record in records]
        maps = [heatmap for heatmap, _ in results]
        reference = maps if reference is None else reference
        correlation = np.mean([
            np.corrcoef(a[r["body"].numpy()], b[r["body"].numpy()])[0, 1]
            for a, b, r in zip(maps, reference, records, strict=True)
        ])  # fmt: skip
        threshold, _ = fit_threshold(maps[0::2], masks[0::2], score="f1", min_size=8)
        scores = _scores(maps[1::2], masks[1::2], threshold, 8)
        row = {"method": name, "num_angles": num_angles, "correlation": float(correlation),
               "seconds_per_volume": float(np.mean([s for _, s in results])),
               **{key: float(scores[key]) for key in ("f1", "dice", "balanced_accuracy")}}  # fmt: skip
        rows.append(row)
        print(f"| {name} | {num_angles} | {row['f1']:.3f} | {row['dice']:.3f} | {row['balanced_accuracy']:.2f} | "
              f"{row['correlation']:.3f} | {row['seconds_per_volume']:.2f} |", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
