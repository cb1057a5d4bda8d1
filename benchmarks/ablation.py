# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""What limits ToNNO on the embedded default: training recipes x seeds x evaluation protocols, one table.

Each recipe is trained with the AutoPET bundle on the synthetic default (``train.json`` with the recipe's
overrides, in this process), every method's heatmaps of the validation volumes are computed once
(``collect_heatmaps``), and each evaluation protocol scores them (thresholds and layers fitted on alternate
volumes, as ``evaluate.json`` does). A row holds, for one recipe, seed and protocol: the classifier's final
validation slice AUC and volume balanced accuracy, the readiness recorded in its ``model.pt`` (the ROC AUC of
ToNNO's detection peaks over the validation studies at 32 directions and its chance p-value), the iterations it
trained (fewer than the budget when it stopped early), and the Table-2 numbers of ToNNO, Tomographic LayerCAM and
slice-wise LayerCAM.

Example (the issue's recipes, three seeds; about 12 minutes per recipe and seed on 2 CPU cores)::

    python benchmarks/ablation.py --recipes bce mil --seeds 0 1 2 --json outputs/ablation/ablation.json

or on another folder in the AutoPET layout (``--dataset_dir``, e.g. the one ``untuned_data.py`` writes).

A recipe is ``name`` from ``RECIPES`` or ``name:key=value,key=value`` with train.json overrides.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_tonno.engines import MethodHeatmaps, collect_heatmaps, fit_detection_threshold, read_readiness, score_methods
from monai_tonno.engines.evaluation import _scores
from monai_tonno.transforms import Binarize, body_mask

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "autopet"

RECIPES: dict[str, dict] = {
    "bce": {"slice_loss": "bce"},
    "mil": {"slice_loss": "mil"},
    "mil_top50": {"slice_loss": "mil", "mil_top_fraction": 0.5},
    "bce_lr3e-3": {"slice_loss": "bce", "learning_rate": 3e-3},
    "bce_8x8": {"slice_loss": "bce", "batch_volumes": 8, "slices_per_volume": 8},
    "no_aug": {"scale_range": [1.0, 1.0], "shear_range": 0.0},
    "ema": {"ema_momentum": 0.01},
    "balanced": {"balanced_sampling": True},
}
PROTOCOLS = {"as is": (False, 8), "body": (True, 8), "body, min 27 voxels": (True, 27)}
FAMILIES = ("ToNNO", "Tomographic LayerCAM", "LayerCAM")


def parse_recipe(text: str) -> tuple[str, dict]:
    name, _, overrides = text.partition(":")
    recipe = dict(RECIPES.get(name, {}))
    for pair in filter(None, re.split(r",(?![^\[]*\])", overrides)):  # commas inside [...] stay
        key, _, value = pair.partition("=")
        try:
            recipe[key] = json.loads(value)  # numbers, true / false, lists
        except json.JSONDecodeError:
            recipe[key] = value
    if not recipe and name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; known: {sorted(RECIPES)} or name:key=value,...")
    return name, recipe


def train(common: dict, recipe: dict, seed: int) -> dict:
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE / "train.json"),
        logging_file=str(BUNDLE / "logging.conf"),
        meta_file=str(BUNDLE / "metadata.json"),
        workflow_type="train",
        run_id="training",
        **{**common, "calibrate_threshold": False, **recipe, "seed": seed, "resume": False},
    )
    workflow.initialize()
    workflow.run()
    metrics = dict(workflow.parser.get_parsed_content("validate#evaluator").state.metrics)
    metrics["iterations"] = int(workflow.parser.get_parsed_content("train#trainer").state.iteration)
    metrics["readiness"] = read_readiness(Path(common["output_dir"]) / "models" / "model.pt")
    workflow.finalize()
    return metrics


def heatmaps(common: dict, num_angles: int, num_slices: int, max_volumes: int) -> MethodHeatmaps:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "evaluate.json"))
    parser.update({**common, "num_angles": num_angles, "num_slices": num_slices, "max_volumes": max_volumes})
    with torch.no_grad():
        return collect_heatmaps(
            parser.get_parsed_content("dataset"),
            parser.get_parsed_content("network"),
            parser.get_parsed_content("inferer"),
            parser.get_parsed_content("layers"),
            progress=True,
        )


def restricted(collected: MethodHeatmaps, channel: int = 1) -> MethodHeatmaps:
    bodies = [body_mask(image, channel) for image in collected.images]
    maps = {key: [m * b for m, b in zip(values, bodies, strict=True)] for key, values in collected.heatmaps.items()}
    return MethodHeatmaps(maps, collected.masks, collected.images, collected.names)


def label_calibrated(collected: MethodHeatmaps, methods: dict, min_size: float, mode: str = "threshold") -> dict:
    """Each family's row with its threshold fitted on the even volumes' labels alone (no mask), scored on the odd:
    the threshold itself (``mode="threshold"``) or, as inference does, as the detection threshold of the
    ``hysteresis`` binarisation (Otsu's extent for the components that reach it)."""
    labels = [int(mask.any()) for mask in collected.masks]
    result = {}
    for family in FAMILIES:
        maps = collected.heatmaps[family, methods[family]["layer"]]
        threshold, _ = fit_detection_threshold(maps[0::2], labels[0::2], min_size)
        held = maps[1::2]
        if mode == "hysteresis":
            binarize = Binarize("hysteresis", value=threshold, seed_min_size=min_size)
            held = [np.asarray(binarize(torch.as_tensor(h)[None]))[0].astype(np.float32) for h in held]
        scores = _scores(held, collected.masks[1::2], 0.5 if mode == "hysteresis" else threshold, min_size)
        result[family] = {"layer": methods[family]["layer"], "threshold": threshold, **scores}
    return result


def summary_rows(rows: list[dict]) -> dict:
    best = {row["family"]: row for row in rows if row["best_layer"]}
    return {
        family: {
            k: best[family].get(k)
            for k in ("layer", "f1", "dice", "balanced_accuracy", "precision", "recall", "f1_pooled", "dice_positive")
        }
        for family in FAMILIES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["bce", "mil"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--size", type=int, default=64, help="voxels per side of the synthetic volumes")
    parser.add_argument(
        "--dataset_dir",
        type=Path,
        default=None,
        help="a folder in the AutoPET layout instead of the synthetic default (e.g. untuned_data.py's)",
    )
    parser.add_argument("--max_iterations", type=int, default=1000)
    parser.add_argument("--val_every_iterations", type=int, default=250)
    parser.add_argument("--num_angles", type=int, default=100)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--max_volumes", type=int, default=20)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/ablation"))
    parser.add_argument("--json", type=Path, default=None, help="results, appended to when the file exists")
    parser.add_argument("--reuse", action="store_true", help="evaluate the models already trained in output_dir")
    parser.add_argument("--tag", default="", help="added to the protocol names (e.g. the L and M of this run)")
    args = parser.parse_args()
    results = json.loads(args.json.read_text()) if args.json and args.json.is_file() else []
    for text in args.recipes:
        name, recipe = parse_recipe(text)
        for seed in args.seeds:
            run_dir = args.output_dir / f"{name}_seed{seed}"
            common = {"output_dir": str(run_dir), "cache_dir": str(args.output_dir / "cache"),
                      "synthetic_patients": args.patients, "synthetic_size": args.size,
                      "max_iterations": args.max_iterations,
                      "val_every_iterations": args.val_every_iterations}  # fmt: skip
            if args.dataset_dir is not None:
                common["dataset_dir"] = str(args.dataset_dir.resolve())
            start = time.perf_counter()
            trained = run_dir / "validation.json"
            if args.reuse and trained.is_file():
                validation = json.loads(trained.read_text())
            else:
                validation = train(common, recipe, seed)
                trained.write_text(json.dumps(validation, default=float))
            train_seconds = time.perf_counter() - start
            start = time.perf_counter()
            eval_common = {k: v for k, v in common.items() if k not in ("max_iterations", "val_every_iterations")}
            collected = heatmaps(eval_common, args.num_angles, args.num_slices, args.max_volumes)
            heatmap_seconds = time.perf_counter() - start
            variants = {"as is": collected, "body": restricted(collected)}
            for protocol, (body, min_size) in PROTOCOLS.items():
                rows = score_methods(variants["body" if body else "as is"], "f1", min_size)
                methods = summary_rows(rows)
                results.append({"recipe": name, "overrides": recipe, "seed": seed, "protocol": f"{protocol}{args.tag}",
                                "validation": validation, "train_seconds": train_seconds,
                                "heatmap_seconds": heatmap_seconds, "methods": methods})  # fmt: skip
                print_row(results[-1])
                if protocol == "body":  # the same layers, thresholds from volume labels as training calibrates them
                    for mode in ("threshold", "hysteresis"):
                        rows_by_labels = label_calibrated(variants["body"], methods, min_size, mode)
                        calibrated = {**results[-1], "protocol": f"body, volume-label {mode}{args.tag}",
                                      "methods": rows_by_labels}  # fmt: skip
                        results.append(calibrated)
                        print_row(calibrated)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1, default=float))
    print_table(results)


def print_row(result: dict) -> None:
    methods = result["methods"]
    cells = " ".join(f"{f}: F1 {methods[f]['f1']:.2f} Dice {methods[f]['dice']:.2f}" for f in FAMILIES)
    print(f"{result['recipe']} seed {result['seed']} [{result['protocol']}] {cells}", flush=True)


def print_table(results: list[dict]) -> None:
    """Mean (and spread over seeds) per recipe and protocol, as Markdown."""
    print("| recipe | protocol | seeds | slice AUC | volume BA | readiness AUC | readiness p | iterations | ToNNO F1 "
          "| ToNNO Dice | ToNNO BA | Tomo LayerCAM F1 | LayerCAM F1 | LayerCAM Dice |")  # fmt: skip
    print("|---" * 14 + "|")
    keys = sorted({(r["recipe"], r["protocol"]) for r in results})
    for recipe, protocol in keys:
        group = [r for r in results if r["recipe"] == recipe and r["protocol"] == protocol]

        def cell(values: list[float]) -> str:
            return f"{np.mean(values):.2f}" + (f" ± {np.std(values):.2f}" if len(values) > 1 else "")

        auc = cell([r["validation"].get("val_slice_auc", float("nan")) for r in group])
        ba = cell([r["validation"].get("val_volume_balanced_accuracy", float("nan")) for r in group])
        ready = [r["validation"].get("readiness") or {} for r in group]
        ready_auc = cell([x.get("score", float("nan")) for x in ready])
        ready_p = cell([x.get("p_value", float("nan")) for x in ready])
        iterations = cell([r["validation"].get("iterations", float("nan")) for r in group])
        m = [r["methods"] for r in group]
        print(f"| {recipe} | {protocol} | {len(group)} | {auc} | {ba} | {ready_auc} | {ready_p} | {iterations} "
              f"| {cell([x['ToNNO']['f1'] for x in m])} "
              f"| {cell([x['ToNNO']['dice'] for x in m])} | {cell([x['ToNNO']['balanced_accuracy'] for x in m])} "
              f"| {cell([x['Tomographic LayerCAM']['f1'] for x in m])} | {cell([x['LayerCAM']['f1'] for x in m])} "
              f"| {cell([x['LayerCAM']['dice'] for x in m])} |")  # fmt: skip


if __name__ == "__main__":
    main()
