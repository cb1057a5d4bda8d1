# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Score the masks that the main job (README's first command) wrote against the truth it never saw.

The AutoPET inference bundle writes ``<prediction_dir>/FDG-PET-CT-Lesions/<patient>/<study>/SUV_mask.nii.gz``;
the truth is ``SEG.nii.gz`` in the same study folder of the dataset. Per study: lesions, predicted components,
lesion F1 and Dice; then the mean F1 and Dice over the studies with lesions and the false components in the
studies without. Example, after the two commands of README (the embedded default's dataset lies in the cache)::

    python benchmarks/main_job.py --predictions outputs/autopet/predictions \\
        --dataset_dir ~/.cache/monai_tonno/synthetic_autopet/patients40_size64_seed0

With ``--bundle duke`` the masks are the Duke bundle's ``<patient>_<side>_mask.nii.gz`` and the truth is the
patient's annotation box, drawn on the series as read (``BoxMaskd``), in the breast that holds it; Dice is then
replaced by MaxIoU (the paper's box score)::

    python benchmarks/main_job.py --bundle duke --predictions outputs/duke/predictions \\
        --dataset_dir ~/.cache/monai_tonno/synthetic_duke/patients40_seed0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_tonno.metrics import dice, lesion_counts, max_iou, precision_recall_f1


def score_study(mask_file: Path, truth_file: Path) -> dict:
    prediction = np.asarray(nib.load(str(mask_file)).dataobj) > 0
    truth = np.asarray(nib.load(str(truth_file)).dataobj) > 0
    prediction = prediction.reshape(truth.shape)  # a written channel axis of one
    counts = lesion_counts(prediction, truth)
    _, _, f1 = precision_recall_f1(counts)
    return {"study": str(mask_file.parent), "lesions": counts.ground_truth, "components": counts.predicted,
            "false_components": counts.predicted - counts.true_positive, "f1": f1,
            "dice": dice(prediction, truth)}  # fmt: skip


def duke_truths(predictions: Path, dataset_dir: Path) -> list[tuple[Path, np.ndarray]]:
    """Each written breast mask with its truth: the box in the breast that holds it, empty in the other."""
    from monai.transforms import LoadImaged

    from monai_tonno.data import BoxMaskd, SimpleITKReader, duke_datalist

    masks = sorted(predictions.glob("*_mask.nii.gz"))
    if not masks:
        raise SystemExit(f"no <patient>_<side>_mask.nii.gz in {predictions}; run the Duke inference bundle first.")
    items = {f"{item['patient']}_{item['side']}": item for item in duke_datalist(dataset_dir, progress=False)}
    load = LoadImaged("image", reader=SimpleITKReader(), ensure_channel_first=True, image_only=True)
    draw = BoxMaskd("image", box_key="box", output_key="mask")
    pairs = []
    for mask_file in masks:
        breast = mask_file.name.removesuffix("_mask.nii.gz")
        if breast not in items:
            raise SystemExit(f"{breast} is not a breast of {dataset_dir}: is it the dataset that was inferred?")
        pairs.append((mask_file, np.asarray(draw(load(items[breast]))["mask"])[0] > 0))
    return pairs


def score_breast(mask_file: Path, truth: np.ndarray) -> dict:
    prediction = (np.asarray(nib.load(str(mask_file)).dataobj) > 0).reshape(truth.shape)
    counts = lesion_counts(prediction, truth)
    _, _, f1 = precision_recall_f1(counts)
    return {"study": mask_file.name, "lesions": counts.ground_truth, "components": counts.predicted,
            "false_components": counts.predicted - counts.true_positive, "f1": f1,
            "max_iou": max_iou(prediction, truth) if truth.any() else float("nan")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", choices=["autopet", "duke"], default="autopet")
    parser.add_argument("--predictions", type=Path, required=True, help="the inference bundle's prediction_dir")
    parser.add_argument("--dataset_dir", type=Path, required=True,
                        help="the folder that holds FDG-PET-CT-Lesions (or Duke-Breast-Cancer-MRI)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the rows and the summary here")
    args = parser.parse_args()
    rows = []
    if args.bundle == "duke":
        rows = [score_breast(mask_file, truth) for mask_file, truth in duke_truths(args.predictions, args.dataset_dir)]
    else:
        masks = sorted(args.predictions.rglob("SUV_mask.nii.gz"))
        if not masks:
            raise SystemExit(f"no SUV_mask.nii.gz under {args.predictions}; run the inference bundle first.")
        for mask_file in masks:
            truth_file = args.dataset_dir / mask_file.parent.relative_to(args.predictions) / "SEG.nii.gz"
            if not truth_file.is_file():
                raise SystemExit(f"{truth_file} does not exist: is {args.dataset_dir} the dataset that was inferred?")
            rows.append(score_study(mask_file, truth_file))
    overlap = "max_iou" if args.bundle == "duke" else "dice"
    for row in rows:
        print(f"{row['study']}: {row['lesions']} lesions, {row['components']} components "
              f"({row['false_components']} false), F1 {row['f1']:.2f}, {overlap} {row[overlap]:.2f}")  # fmt: skip
    positives = [r for r in rows if r["lesions"]]
    negatives = [r for r in rows if not r["lesions"]]
    summary = {
        "studies": len(rows),
        "positive_f1": float(np.mean([r["f1"] for r in positives])) if positives else float("nan"),
        f"positive_{overlap}": float(np.mean([r[overlap] for r in positives])) if positives else float("nan"),
        "false_components_in_positives": sum(r["false_components"] for r in positives),
        "negatives_with_components": sum(r["components"] > 0 for r in negatives),
        "negatives": len(negatives),
        "false_components_in_negatives": sum(r["components"] for r in negatives),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
