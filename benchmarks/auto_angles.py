# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Fixed numbers of directions against ``num_angles="auto"`` (``UntilConverged``) on a trained classifier: lesion
F1, Dice and volume balanced accuracy against forward passes per volume.

The volumes and the network are those of ``bundles/<bundle>/evaluate.json`` (its validation split; the embedded
default unless ``--dataset_dir``). Each volume's ToNNO heatmap (filtered backprojection, M = ``--num_slices``,
hemisphere) is computed once per level of ``--start`` doubled up to ``--max_angles``, with the inferer itself;
the fixed rows read one level, the "auto" rows apply ``UntilConverged``'s rule (the first level whose change from
the one before is at most the tolerance) to the same heatmaps, so they cost what the inferer would spend. Heatmaps
are restricted to the body (the bundle's ``body_channel`` and ``body_threshold``); the mask threshold is fitted
for lesion F1 on the even volumes and scored on the odd ones (components of at least 8 voxels), as
``iterative_trained.py`` does. A second table gives the change between consecutive levels, over the volume (what
the rule measures) and inside the body.

    python benchmarks/auto_angles.py --output_dir outputs/autopet --json outputs/auto_angles.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from tqdm.auto import tqdm

from monai_tonno import TomographicInferer
from monai_tonno.engines import fit_threshold
from monai_tonno.engines.evaluation import _scores
from monai_tonno.inferers import UntilConverged
from monai_tonno.transforms import Binarize, load_threshold
from monai_tonno.transforms.body import body_mask

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def level_heatmaps(args: argparse.Namespace, levels: list[int]) -> list[dict]:
    """Every volume's heatmap at every level, with its body mask and truth."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / args.bundle / "evaluate.json"))
    overrides = {"output_dir": args.output_dir}
    if args.dataset_dir:
        overrides["dataset_dir"] = args.dataset_dir
    parser.update(overrides)
    dataset = parser.get_parsed_content("dataset")
    network = parser.get_parsed_content("network").eval().to(memory_format=torch.channels_last)
    slice_size = parser.get_parsed_content("slice_size")
    body_channel = parser.get_parsed_content("body_channel")
    body_threshold = parser.get_parsed_content("body_threshold")
    threshold_file = Path(parser.get_parsed_content("ckpt_path")).parent / "threshold.json"  # training writes it there
    args.detection_threshold = load_threshold(threshold_file) if threshold_file.is_file() else None
    records = []
    for index in tqdm(range(min(args.num_volumes, len(dataset))), desc="volumes"):
        item = dataset[index]
        image = item["image"]
        body = torch.as_tensor(body_mask(image.as_tensor(), body_channel, body_threshold)).bool()
        body = body.reshape(image.shape[1:])
        heatmaps = {}
        for level in levels:
            inferer = TomographicInferer(level, args.num_slices, slice_size, sw_batch_size=args.batch_size)
            with torch.no_grad():
                heatmaps[level] = inferer(image[None], network)[0, 0].as_tensor().numpy()
        truth = item["mask"].as_tensor().reshape(image.shape[1:]).bool().numpy()
        records.append({"heatmaps": heatmaps, "body": body.numpy(), "mask": truth})
    return records


def change(coarse: np.ndarray, fine: np.ndarray) -> float:
    return UntilConverged.change({0: torch.from_numpy(coarse)}, {0: torch.from_numpy(fine)})


def jaccard_distance(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_xor(a, b).sum() / union) if union else 0.0


def scored(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    threshold, _ = fit_threshold(maps[0::2], masks[0::2], score="f1", min_size=8)
    scores = _scores(maps[1::2], masks[1::2], threshold, 8)
    return {key: float(scores[key]) for key in ("f1", "dice", "balanced_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="the training bundle's output_dir (models/ inside)")
    parser.add_argument("--bundle", default="autopet", choices=["autopet", "mosmed", "duke"])
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--num_volumes", type=int, default=20)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--start", type=int, default=16)
    parser.add_argument("--max_angles", type=int, default=512)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    levels = UntilConverged(args.start, args.max_angles).levels()
    records = level_heatmaps(args, levels)
    masks = [record["mask"] for record in records]
    passes_per_direction = args.num_slices + 2
    rows = []
    for level in levels:
        rows.append({"method": f"fixed L = {level}", "forward_passes": level * passes_per_direction,
                     "directions": [level] * len(records),
                     **scored([r["heatmaps"][level] * r["body"] for r in records], masks)})  # fmt: skip
    for tolerance in args.tolerances:
        rule = UntilConverged(args.start, args.max_angles, tolerance)
        chosen, spent = [], []
        for record in records:
            maps = record["heatmaps"]
            stop = next(
                (fine for coarse, fine in zip(levels, levels[1:], strict=False)
                 if rule.converged({0: torch.from_numpy(maps[coarse])}, {0: torch.from_numpy(maps[fine])})),
                levels[-1],
            )  # fmt: skip
            chosen.append(stop)
            spent.append(sum(level for level in levels if level <= stop) * passes_per_direction)
        rows.append({"method": f"auto, tolerance {tolerance}", "forward_passes": float(np.mean(spent)),
                     "directions": chosen,
                     **scored([r["heatmaps"][level] * r["body"] for r, level in zip(records, chosen, strict=True)],
                              masks)})  # fmt: skip
    # the masks inference writes, inside the body: hysteresis seeded at the calibrated detection threshold, or
    # Otsu's threshold per study when training calibrated none
    if args.detection_threshold is None:
        binarize = Binarize(strategy="otsu")
    else:
        binarize = Binarize(strategy="hysteresis", value=args.detection_threshold)
    for record in records:
        record["masks"] = {level: binarize(torch.from_numpy(record["heatmaps"][level] * record["body"])[None])[0]
                           .numpy().astype(bool) for level in levels}  # fmt: skip
    changes = []
    for coarse, fine in zip(levels, levels[1:], strict=False):
        whole = [change(r["heatmaps"][coarse], r["heatmaps"][fine]) for r in records]
        body = [change(r["heatmaps"][coarse] * r["body"], r["heatmaps"][fine] * r["body"]) for r in records]
        masks_moved = [jaccard_distance(r["masks"][coarse], r["masks"][fine]) for r in records]
        changes.append({"levels": [coarse, fine], "volume": [min(whole), max(whole)], "body": [min(body), max(body)],
                        "mask_jaccard": masks_moved})  # fmt: skip
    print("| levels | heatmap change over the volume (the rule's), min - max | inside the body, min - max | "
          "the written masks' Jaccard distance, per study |")  # fmt: skip
    print("|---|---|---|---|")
    for row in changes:
        moved = " ".join(f"{j:.2f}" for j in row["mask_jaccard"])
        print(f"| {row['levels'][0]} -> {row['levels'][1]} | {row['volume'][0]:.3f} - {row['volume'][1]:.3f} | "
              f"{row['body'][0]:.3f} - {row['body'][1]:.3f} | {moved} |")  # fmt: skip
    for tolerance in args.tolerances:
        stops = []
        for index in range(len(records)):
            moved = [row["mask_jaccard"][index] for row in changes]
            stops.append(next((levels[k + 1] for k, j in enumerate(moved) if j <= tolerance), levels[-1]))
        spent = [sum(level for level in levels if level <= stop) * passes_per_direction for stop in stops]
        rows.append({"method": f"stop on the masks, Jaccard distance <= {tolerance}", "directions": stops,
                     "forward_passes": float(np.mean(spent)),
                     **scored([r["heatmaps"][level] * r["body"] for r, level in zip(records, stops, strict=True)],
                              masks)})  # fmt: skip
    print(f"{len(records)} volumes ({len(records[1::2])} scored), M = {args.num_slices}")
    print("| method | forward passes per volume | directions per volume | lesion F1 | Dice | balanced accuracy |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        spread = sorted(set(row["directions"]))
        print(f"| {row['method']} | {row['forward_passes']:,.0f} | {', '.join(map(str, spread))} | {row['f1']:.3f} | "
              f"{row['dice']:.3f} | {row['balanced_accuracy']:.2f} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "changes": changes}, indent=1)
        )


if __name__ == "__main__":
    main()
