# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The bundle commands when the world misbehaves: a training killed part-way, an unreadable study among many, an
interrupted inference, a folder of one study, a threshold of another model. Each runs as README gives it, in a
fresh process, on a folder in the real layout."""

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from test_bundle_consistency import resolved_config
from test_bundles import TINY_INFERENCE, TINY_TRAINING, make_autopet, run_bundle

ROOT = Path(__file__).resolve().parents[2]
TRAINING = {**TINY_TRAINING, "max_iterations": 8, "val_every_iterations": 2}


def _kill_overlay(folder: Path, iteration: int) -> str:
    """A second config file that makes training exit as a kill would (no handler, no final save) at ``iteration``."""
    overlay = resolved_config("autopet", "train")["training"]
    kill = (
        "$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once=@kill_at_iteration), "
        "lambda engine: os._exit(137))"
    )
    path = folder / "kill.json"
    path.write_text(json.dumps({"kill_at_iteration": iteration, "training": ["$import ignite", kill, *overlay]}))
    return os.path.relpath(path, ROOT / "bundles" / "autopet")  # bundle_command names files from the bundle


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted tiny training on a real-layout folder, for the comparisons and the inference tests."""
    tmp = tmp_path_factory.mktemp("reliability with spaces")
    dataset = make_autopet(tmp / "my data")
    common = {"dataset_dir": str(dataset), "output_dir": str(tmp / "whole run")}
    run_bundle("autopet", ["train.json"], "training", {**common, **TRAINING})
    return tmp, common


def _weights(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state.get("network", state))


def test_a_killed_training_resumes_to_the_uninterrupted_model(trained, tmp_path):
    """Killed mid-epoch (after the checkpoint of epoch 2), the rerun of the same command ends with the same best
    model and the same final weights, bit for bit, and the same calibrated threshold."""
    tmp, common = trained
    killed = {**common, "output_dir": str(tmp_path / "killed run")}
    finished = run_bundle(
        "autopet", ["train.json", _kill_overlay(tmp_path, 5)], "training", {**killed, **TRAINING}, ok=False
    )
    assert finished.returncode == 137
    models = tmp_path / "killed run" / "models"
    assert sorted(p.name for p in models.glob("*.pt")) == ["checkpoint_epoch=2.pt", "model.pt"]
    resumed = run_bundle("autopet", ["train.json"], "training", {**killed, **TRAINING})
    assert "Restored all variables from" in resumed.stdout + resumed.stderr
    whole = Path(common["output_dir"]) / "models"
    for name in ("model.pt", "checkpoint_final.pt"):
        expected, found = _weights(whole / name), _weights(models / name)
        assert all(torch.equal(expected[key], found[key]) for key in expected), name
    assert sorted(p.name for p in models.glob("*.pt")) == sorted(p.name for p in whole.glob("*.pt"))
    thresholds = [json.loads((folder / "threshold.json").read_text()) if (folder / "threshold.json").is_file()
                  else None for folder in (whole, models)]  # fmt: skip
    if thresholds[0] is not None:
        assert thresholds[0]["threshold"] == thresholds[1]["threshold"]
    else:
        assert thresholds[1] is None


def _outputs(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.nii.gz"))}


def test_inference_and_evaluation_finish_every_readable_study_name_the_others_and_resume(trained, tmp_path):
    tmp, common = trained
    dataset = tmp_path / "user data"
    shutil.copytree(common["dataset_dir"], dataset)
    broken = sorted((dataset / "FDG-PET-CT-Lesions").glob("*/*"))[3]
    good = (broken / "SUV.nii.gz").read_bytes()
    (broken / "SUV.nii.gz").write_bytes(good[: len(good) // 3])  # truncated, as by a copy that was cut short
    run = {**common, **TINY_INFERENCE, "dataset_dir": str(dataset), "output_dir": str(tmp_path / "out")}
    shutil.copytree(Path(common["output_dir"]) / "models", tmp_path / "out" / "models")
    predictions = tmp_path / "out" / "predictions"

    first = run_bundle("autopet", ["inference.json"], "inference", run, ok=False)
    assert first.returncode != 0
    output = first.stdout + first.stderr
    assert "1 of 6 studies failed" in output and broken.name in output and "SUV.nii.gz" in output
    written = _outputs(predictions)
    assert len(written) == 10 and not any(broken.name in name for name in written)  # the five others, complete
    assert not list(predictions.rglob(".*partial*"))

    evaluation = run_bundle("autopet", ["evaluate.json"], "run", {**run, "eval_split": "all", "num_angles": 4,
                                                                  "num_slices": 4}, ok=False)  # fmt: skip
    assert evaluation.returncode != 0 and "1 of 6 studies failed" in evaluation.stdout + evaluation.stderr
    assert "| ToNNO" in (tmp_path / "out" / "evaluation" / "table.md").read_text()  # of the five readable ones

    again = run_bundle("autopet", ["inference.json"], "inference", run, ok=False)
    assert "skipped 5 whose outputs were complete, 1 failed" in again.stdout + again.stderr
    assert _outputs(predictions) == written  # nothing redone

    (broken / "SUV.nii.gz").write_bytes(good)
    fixed = run_bundle("autopet", ["inference.json"], "inference", run)
    assert "inferred 1 studies, skipped 5" in fixed.stdout + fixed.stderr
    assert len(_outputs(predictions)) == 12

    (predictions / next(iter(written))).unlink()  # an output lost since: its study is redone
    lost = run_bundle("autopet", ["inference.json"], "inference", run)
    assert "inferred 1 studies, skipped 5" in lost.stdout + lost.stderr

    other = run_bundle("autopet", ["inference.json"], "inference", {**run, "num_angles": 8})
    assert "inferred 6 studies, skipped 0" in other.stdout + other.stderr  # new settings redo every study


def test_inference_on_a_folder_of_one_study(trained, tmp_path):
    tmp, common = trained
    dataset = tmp_path / "one study"
    study = sorted((Path(common["dataset_dir"]) / "FDG-PET-CT-Lesions").glob("*/*"))[0]
    shutil.copytree(study, dataset / "FDG-PET-CT-Lesions" / study.parent.name / study.name)
    run = {**common, **TINY_INFERENCE, "dataset_dir": str(dataset), "output_dir": str(tmp_path / "out")}
    shutil.copytree(Path(common["output_dir"]) / "models", tmp_path / "out" / "models")
    finished = run_bundle("autopet", ["inference.json"], "inference", run)
    assert len(list((tmp_path / "out" / "predictions").rglob("*_mask.nii.gz"))) == 1
    # two calibration studies (one of each label) can never be told apart better than chance (p = 1/2): no
    # threshold was written, and inference says what its masks are worth
    assert not (tmp_path / "out" / "models" / "threshold.json").exists()
    assert "no calibrated mask threshold" in finished.stdout + finished.stderr


def test_a_threshold_copied_from_another_model_is_refused(trained, tmp_path):
    """A model folder assembled from two runs: the threshold was calibrated on the other model's heatmaps."""
    tmp, common = trained
    models = tmp_path / "models"
    shutil.copytree(Path(common["output_dir"]) / "models", models)
    (models / "threshold.json").write_text(json.dumps({"threshold": 0.5, "score": "x", "value": 1.0,
                                                       "model_sha256": "0" * 64}))  # fmt: skip
    run = {**common, **TINY_INFERENCE, "ckpt_path": str(models / "model.pt"), "output_dir": str(tmp_path / "out")}
    finished = run_bundle("autopet", ["inference.json"], "inference", run, ok=False)
    assert finished.returncode != 0
    assert "was calibrated for another model" in finished.stderr and str(models / "threshold.json") in finished.stderr


def test_training_on_a_folder_of_one_label_is_refused_before_it_starts(tmp_path):
    dataset = make_autopet(tmp_path / "negatives only")
    for seg in dataset.rglob("SEG.nii.gz"):
        image = nib.load(str(seg))
        nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), seg)
    run = {"dataset_dir": str(dataset), "output_dir": str(tmp_path / "out"), **TRAINING}
    finished = run_bundle("autopet", ["train.json"], "training", run, ok=False)
    assert finished.returncode != 0
    assert "training split has 0 volumes with lesions and 4 without" in finished.stderr
    assert not (tmp_path / "out" / "models" / "model.pt").exists()
