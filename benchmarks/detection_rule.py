# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Table 2 under two lesion detection rules: does a method find lesions, or cover the organ that holds them?

Under the overlap rule (a component that touches a lesion is a true positive and detects it) one component over
a whole organ detects every lesion inside. The MSSEG-2016 rule (``monai_tonno.metrics.msseg_counts_from_labels``)
does not count a component that lies mostly outside every lesion. This script runs every method of
``bundles/<bundle>/evaluate.json`` once on its evaluation studies (the bundle's own items, network, inferer and
body restriction) and scores the heatmaps with thresholds and layers fitted on the even volumes by each
``--fit_scores`` in turn, on the odd ones, so that each method may also choose its threshold for the stricter rule.
The masks inference writes (``ToNNO (inference masks)``: hysteresis from the detection threshold
calibrated at the end of training) are scored as they are, with no threshold fitted on the evaluation's masks.
It writes one row per method and fit score: F1 (per-volume mean, overlap rule), F1 pooled, F1 MSSEG (pooled),
Dice or MaxIoU, balanced accuracy, and the mean number of components per scored volume with their volume against
the truth's (how much of the organ a mask covers).

    python benchmarks/detection_rule.py --bundle mosmed --output_dir outputs/mosmed80 --json outputs/rule_mosmed.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from scipy import ndimage

from monai_tonno.engines.evaluation import add_inference_masks, collect_heatmaps, score_methods
from monai_tonno.metrics.lesion import STRUCTURE_26

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def mask_statistics(maps: list[np.ndarray], masks: list[np.ndarray], threshold: float, min_size: int) -> dict:
    """Components per scored (odd) volume and predicted voxels per truth voxel, at ``threshold``."""
    components, ratios = [], []
    for heatmap, truth in list(zip(maps, masks, strict=True))[1::2]:
        labels, count = ndimage.label(heatmap > threshold, STRUCTURE_26)
        sizes = ndimage.sum(np.ones_like(labels), labels, range(1, count + 1)) if count else np.zeros(0)
        kept = np.isin(labels, 1 + np.flatnonzero(sizes >= min_size))
        components.append(int((sizes >= min_size).sum()))
        ratios.append(kept.sum() / max(int((truth > 0).sum()), 1))
    return {"components_per_volume": float(np.mean(components)), "predicted_per_truth_voxel": float(np.mean(ratios))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="autopet", choices=["autopet", "mosmed", "duke"])
    parser.add_argument("--output_dir", required=True, help="the training bundle's output_dir (models/ inside)")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--fit_scores", nargs="+", default=["f1", "f1_msseg"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = ConfigParser()
    config.read_config(BUNDLES / args.bundle / "evaluate.json")
    config["output_dir"] = args.output_dir
    if args.dataset_dir:
        config["dataset_dir"] = args.dataset_dir
    config.parse()
    get = config.get_parsed_content
    torch.manual_seed(0)
    body = get("body_channel") if get("restrict_to_body") else None
    collected = collect_heatmaps(get("dataset"), get("network"), get("inferer"), get("layers"),
                                 get("slicewise_axis"), True, body, get("body_threshold"))  # fmt: skip
    min_size, overlap = get("min_component_voxels"), get("overlap")
    ckpt = get("ckpt_path")
    fixed = add_inference_masks(collected, Path(ckpt).parent / "threshold.json", ckpt, min_size)
    overlap_column = "max_iou" if overlap == "max_iou" else "dice"
    rows = []
    for fit_score in args.fit_scores:
        for row in score_methods(collected, fit_score, min_size, overlap, fixed):
            if not row["best_layer"]:
                continue
            maps = collected.heatmaps[row["family"], row["layer"]]
            rows.append({"fit_score": fit_score, "family": row["family"], "layer": row["layer"],
                         **{k: row[k] for k in ("f1", "f1_pooled", "f1_msseg", overlap_column, "balanced_accuracy")},
                         **mask_statistics(maps, collected.masks, row["threshold"], min_size)})  # fmt: skip
    print(f"{args.bundle}: {len(collected.names)} volumes, scored on the odd {len(collected.names) // 2}")
    print(f"| fit by | method | F1 | F1 pooled | F1 MSSEG | {overlap_column} | BA | components | predicted/truth |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = f"{r['family']} ({r['layer']})" if r["layer"] else r["family"]
        print(f"| {r['fit_score']} | {name} | {r['f1']:.2f} | {r['f1_pooled']:.2f} | {r['f1_msseg']:.2f} | "
              f"{r[overlap_column]:.2f} | {r['balanced_accuracy']:.2f} | {r['components_per_volume']:.1f} | "
              f"{r['predicted_per_truth_voxel']:.2f} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"bundle": args.bundle, "volumes": collected.names, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
