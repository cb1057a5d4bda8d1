# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Teacher against student: ToNNO's masks (``inference.json``) and the distilled segmenter's (``segment.json``) on
studies that neither the classifier's training, its calibration nor the pseudo-labels saw.

By default the test studies are a fresh synthetic AutoPET folder of another seed than the embedded default's
(``--test_seed 1``), so every study is new to both models. Each bundle runs as README gives it, in its own
process, over the whole folder; its wall time and peak resident memory are those of that process (``os.wait4``).
A second run of the same command, which skips every study as complete, measures what the process costs without
inferring anything (start-up, imports, reading the model), so that ``seconds per study`` is the inference alone.
Both are scored as ``main_job.py`` scores the main job: lesion F1 and Dice over the studies with lesions, volume
balanced accuracy (a study is called positive when a component survives) and the components in the studies
without lesions. Example, after the main job and ``distill.json`` (students of several seeds in their own output
folders)::

    python benchmarks/distillation.py --teacher outputs/autopet/models/model.pt \\
        --students outputs/autopet/segmenter/model.pt outputs/distil_seed1/segmenter/model.pt \\
        --work_dir outputs/distillation_benchmark --json outputs/distillation_benchmark/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from main_job import score_study

from monai_tonno.data import autopet_or_synthetic

ROOT = Path(__file__).resolve().parents[1]


def run_measured(command: list[str], log: Path) -> dict:
    """Run ``command`` from the repository root; its wall time and its own peak RSS (MiB)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def bundle(config: str, overrides: dict) -> list[str]:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"bundles/autopet/{config}"]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    return command


def infer_and_score(name: str, config: str, overrides: dict, predictions: Path, dataset: Path, logs: Path) -> dict:
    log = Path(overrides["output_dir"]).name
    first = run_measured(bundle(config, overrides), logs / f"{log}.log")
    idle = run_measured(bundle(config, overrides), logs / f"{log}_rerun.log")  # every study skipped
    masks = sorted(predictions.rglob("SUV_mask.nii.gz"))
    rows = [score_study(m, dataset / m.parent.relative_to(predictions) / "SEG.nii.gz") for m in masks]
    positives = [r for r in rows if r["lesions"]]
    negatives = [r for r in rows if not r["lesions"]]
    sensitivity = np.mean([r["components"] > 0 for r in positives])
    specificity = np.mean([r["components"] == 0 for r in negatives])
    return {
        "method": name,
        "studies": len(rows),
        "f1": float(np.mean([r["f1"] for r in positives])),
        "dice": float(np.mean([r["dice"] for r in positives])),
        "balanced_accuracy": float((sensitivity + specificity) / 2),
        "false_components_in_positives": int(sum(r["false_components"] for r in positives)),
        "components_in_negatives": int(sum(r["components"] for r in negatives)),
        "negatives": len(negatives),
        "seconds": first["seconds"],
        "seconds_without_inference": idle["seconds"],
        "seconds_per_study": (first["seconds"] - idle["seconds"]) / max(len(rows), 1),
        "peak_rss_mib": first["peak_rss_mib"],
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, default=Path("outputs/autopet/models/model.pt"))
    parser.add_argument("--students", type=Path, nargs="+", default=[Path("outputs/autopet/segmenter/model.pt")])
    parser.add_argument("--dataset_dir", type=Path, default=None, help="test studies (default: a synthetic folder)")
    parser.add_argument("--test_patients", type=int, default=20)
    parser.add_argument("--test_seed", type=int, default=1, help="synthetic seed of the test folder (not 0)")
    parser.add_argument("--work_dir", type=Path, default=Path("outputs/distillation_benchmark"))
    parser.add_argument("--skip_teacher", action="store_true", help="score the students only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cache = Path("~/.cache/monai_tonno/synthetic_autopet").expanduser()
    dataset = args.dataset_dir or autopet_or_synthetic(None, cache, args.test_patients, 64, args.test_seed)
    common = {"dataset_dir": dataset.resolve(), "device": "cpu"}
    work_dir = args.work_dir.resolve()  # the bundles run from the repository root
    results = []
    if not args.skip_teacher:
        output = work_dir / "teacher"
        overrides = {**common, "output_dir": output, "ckpt_path": args.teacher.resolve()}
        results.append(infer_and_score("ToNNO", "inference.json", overrides, output / "predictions", dataset, work_dir))
    for index, student in enumerate(args.students):
        output = work_dir / f"student{index}"
        overrides = {**common, "output_dir": output, "ckpt_path": student.resolve()}
        name = f"student {index} ({student.parent})"
        results.append(infer_and_score(name, "segment.json", overrides, output / "segmentations", dataset, work_dir))
    print(f"{dataset}: {results[0]['studies']} studies, {results[0]['negatives']} without lesions")
    print("| method | F1 | Dice | BA | false comp. (pos.) | comp. in negatives | s/study | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['f1']:.3f} | {r['dice']:.3f} | {r['balanced_accuracy']:.2f} | "
              f"{r['false_components_in_positives']} | {r['components_in_negatives']} | "
              f"{r['seconds_per_study']:.2f} | {r['peak_rss_mib']:.0f} |")  # fmt: skip
    students = [r for r in results if r["method"] != "ToNNO"]
    if len(students) > 1:
        for key in ("f1", "dice", "balanced_accuracy"):
            values = [r[key] for r in students]
            print(f"students' {key}: mean {np.mean(values):.3f}, sd {np.std(values, ddof=1):.3f} over {len(values)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
