# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""End-to-end quality on the synthetic PET/CT default: train a ResNet-10-T on CPU, then the Table-2 protocol.

Trains with ``bundles/autopet/train.json`` and evaluates with ``bundles/autopet/evaluate.json`` (slice-wise
GradCAM and LayerCAM, ToNNO, Averaged and Tomographic LayerCAM at layers 1-4; thresholds and layers fitted on
alternate validation volumes), prints the table and writes it with every row as JSON.

    python benchmarks/quality.py --patients 80 --max_iterations 1000 --num_angles 100 --num_slices 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[1]


def run(config: str, run_id: str, overrides: dict) -> ConfigWorkflow:
    workflow = ConfigWorkflow(
        config_file=str(ROOT / "bundles" / "autopet" / config),
        logging_file=str(ROOT / "bundles" / "autopet" / "logging.conf"),
        meta_file=str(ROOT / "bundles" / "autopet" / "metadata.json"),
        workflow_type="train" if config == "train.json" else "infer",
        run_id=run_id,
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=80, help="synthetic patients (a quarter for validation)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--max_iterations", type=int, default=1000)
    parser.add_argument("--val_every_iterations", type=int, default=250)
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--num_angles", type=int, default=100)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--max_volumes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/quality"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    common = {
        "output_dir": str(args.output_dir),
        "cache_dir": str(args.output_dir / "cache"),
        "synthetic_patients": args.patients,
        "synthetic_size": args.size,
        "synthetic_seed": args.seed,
        "slice_size": args.slice_size,
    }
    start = time.perf_counter()
    trained = run("train.json", "training", {**common, "max_iterations": args.max_iterations,
                                             "val_every_iterations": args.val_every_iterations})  # fmt: skip
    train_seconds = time.perf_counter() - start
    metrics = trained.parser.get_parsed_content("validate#evaluator").state.metrics
    start = time.perf_counter()
    run("evaluate.json", "evaluation", {**common, "num_angles": args.num_angles, "num_slices": args.num_slices,
                                        "max_volumes": args.max_volumes})  # fmt: skip
    evaluate_seconds = time.perf_counter() - start
    folder = args.output_dir / "evaluation"
    summary = {
        "train_seconds": train_seconds,
        "evaluate_seconds": evaluate_seconds,
        "final_validation": metrics,
        "table": json.loads((folder / "table.json").read_text()),
        "settings": vars(args) | {"output_dir": str(args.output_dir)},
    }
    print((folder / "table.md").read_text())
    print(f"training {train_seconds:.0f} s (final validation {metrics}), evaluation {evaluate_seconds:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
