# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The bundles run end to end with tiny overrides: training writes a checkpoint that inference loads."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "network_name": "test_resnet",
    "slice_size": 24,
    "slices_per_volume": 4,
    "batch_volumes": 2,
    "val_slices_per_volume": 6,
    "max_iterations": 3,
    "val_every_iterations": 2,
    "device": "cpu",
}


def workflow(bundle: str, config: str, run_id: str, **overrides) -> ConfigWorkflow:
    folder = ROOT / "bundles" / bundle
    flow = ConfigWorkflow(
        config_file=str(folder / config),
        meta_file=str(folder / "metadata.json"),
        logging_file=str(folder / "logging.conf"),
        workflow_type="train" if config == "train.json" else "infer",
        run_id=run_id,
        **overrides,
    )
    flow.initialize()
    assert flow.check_properties() in (None, [])
    return flow


@pytest.fixture(scope="module")
def autopet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autopet")
    common = {
        "output_dir": str(tmp / "out"),
        "cache_dir": str(tmp / "cache"),
        "synthetic_patients": 4,
        "synthetic_size": 20,
    }
    train = workflow("autopet", "train.json", "training", **common, **TINY)
    train.run()
    train.finalize()
    return tmp, common


def test_autopet_training_writes_checkpoints(autopet_run):
    tmp, _ = autopet_run
    models = tmp / "out" / "models"
    assert (models / "model.pt").is_file() and (models / "checkpoint_final.pt").is_file()
    state = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert any(key.startswith("conv1") for key in state)
    assert any((tmp / "out" / "logs").iterdir())  # TensorBoard events


def test_autopet_training_resumes_from_the_last_checkpoint(autopet_run):
    tmp, common = autopet_run
    resumed = workflow("autopet", "train.json", "training", **common, **{**TINY, "max_iterations": 4})
    resumed.run()
    trainer = resumed.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2 and trainer.state.iteration == 4  # started at epoch 2 of the first run
    resumed.finalize()


def test_autopet_inference_writes_heatmaps_and_masks_with_the_input_affine(autopet_run):
    tmp, common = autopet_run
    infer = workflow(
        "autopet",
        "inference.json",
        "inference",
        **common,
        network_name="test_resnet",
        slice_size=24,
        num_angles=6,
        num_slices=6,
        infer_split="all",
        max_volumes=2,
        device="cpu",
    )
    infer.run()
    infer.finalize()
    heatmaps = sorted((tmp / "out" / "predictions").rglob("*_heatmap.nii.gz"))
    masks = sorted((tmp / "out" / "predictions").rglob("*_mask.nii.gz"))
    assert len(heatmaps) == 2 and len(masks) == 2
    for heatmap, mask in zip(heatmaps, masks, strict=True):
        source = (
            Path(common["cache_dir"])
            / "synthetic_autopet"
            / heatmap.relative_to(tmp / "out" / "predictions").parent
            / "SUV.nii.gz"
        )
        expected = nib.load(str(source))
        for written in (heatmap, mask):
            image = nib.load(str(written))
            assert image.shape[:3] == expected.shape
            np.testing.assert_allclose(image.affine, expected.affine, atol=1e-4)
        assert np.isfinite(nib.load(str(heatmap)).get_fdata()).all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def causes(error: BaseException) -> str:
    """The messages of an error and of the errors that caused it (MONAI wraps errors of config expressions)."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__
    return "\n".join(messages)


def test_inference_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(Exception) as caught:
        workflow(
            "autopet",
            "inference.json",
            "inference",
            output_dir=str(tmp_path),
            cache_dir=str(tmp_path / "c"),
            synthetic_patients=2,
            synthetic_size=16,
        )
    assert "FileNotFoundError" in causes(caught.value) and "expected the trained model" in causes(caught.value)


def test_bundle_with_a_missing_dataset_dir_says_so(tmp_path):
    flow = ConfigWorkflow(
        config_file=str(ROOT / "bundles" / "autopet" / "train.json"),
        workflow_type="train",
        dataset_dir=str(tmp_path / "nowhere"),
        output_dir=str(tmp_path),
    )
    with pytest.raises(Exception) as caught:
        flow.initialize()
        flow.parser.get_parsed_content("datalist")
    assert "nowhere' does not exist" in causes(caught.value)


def make_mosmed(root: Path) -> None:
    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    for category, names in {"CT-0": ["study_0001", "study_0002"], "CT-1": ["study_0255", "study_0256"]}.items():
        (root / "studies" / category).mkdir(parents=True)
        for name in names:
            volume = rng.normal(-700, 200, (20, 20, 8)).astype(np.int16)
            nib.save(nib.Nifti1Image(volume, affine), root / "studies" / category / f"{name}.nii.gz")
    (root / "masks").mkdir()
    nib.save(nib.Nifti1Image(np.ones((20, 20, 8), np.uint8), affine), root / "masks" / "study_0255_mask.nii.gz")


def test_mosmed_bundle_trains_and_infers(tmp_path):
    make_mosmed(tmp_path / "mosmed")
    common = {"dataset_dir": str(tmp_path / "mosmed"), "output_dir": str(tmp_path / "out"), "pixdim": [3.0, 3.0, 3.0]}
    train = workflow("mosmed", "train.json", "training", **common, **{**TINY, "num_workers": 0, "batch_volumes": 2})
    train.run()
    train.finalize()
    validation = {item["patient"] for item in train.parser.get_parsed_content("split")[1]}
    assert "study_0255" in validation  # the studies with masks are kept for validation, as in the paper
    infer = workflow(
        "mosmed",
        "inference.json",
        "inference",
        **common,
        network_name="test_resnet",
        slice_size=24,
        num_angles=4,
        num_slices=4,
        device="cpu",
        num_workers=0,
    )
    infer.run()
    infer.finalize()
    heatmaps = sorted((tmp_path / "out" / "predictions").rglob("*_heatmap.nii.gz"))
    assert heatmaps and all(nib.load(str(h)).shape[:3] == (20, 20, 8) for h in heatmaps)
    source = nib.load(str(tmp_path / "mosmed" / "studies" / "CT-1" / "study_0255.nii.gz"))
    written = next(h for h in heatmaps if "study_0255" in h.name)
    np.testing.assert_allclose(nib.load(str(written)).affine, source.affine, atol=1e-4)


def test_metadata_verifies_offline():
    from monai.bundle import verify_metadata

    for bundle in ("autopet", "mosmed"):
        verify_metadata(
            meta_file=str(ROOT / "bundles" / bundle / "metadata.json"),
            filepath=str(ROOT / "bundles" / "schema" / "metadata_schema.json"),
        )


def test_autopet_evaluation_writes_the_report(autopet_run):
    tmp, common = autopet_run
    evaluation = ConfigWorkflow(
        config_file=str(ROOT / "bundles" / "autopet" / "evaluate.json"),
        workflow_type="infer",
        run_id="evaluation",
        **common,
        network_name="test_resnet",
        slice_size=24,
        num_angles=4,
        num_slices=4,
        eval_split="all",
        device="cpu",
    )
    evaluation.initialize()
    evaluation.run()
    folder = tmp / "out" / "evaluation"
    table = (folder / "table.md").read_text()
    for family in ("GradCAM", "LayerCAM", "ToNNO", "Averaged LayerCAM", "Tomographic LayerCAM"):
        assert f"| {family}" in table
    rows = (folder / "methods.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 4 * 4  # header, ToNNO, four CAM families at four layers
    assert (folder / "threshold.json").is_file()


def test_autopet_inference_shards_the_dataset_over_torchrun_processes(autopet_run):
    """Two gloo processes under torchrun each infer their partition; together they write every volume once."""
    tmp, common = autopet_run
    output_dir = tmp / "sharded"
    folder = ROOT / "bundles" / "autopet"
    configs = f"['{folder / 'inference.json'}','{folder / 'multi_gpu_inference.json'}']"
    overrides = {**common, "output_dir": str(output_dir), "ckpt_path": str(tmp / "out" / "models" / "model.pt"),
                 "network_name": "test_resnet", "slice_size": 24, "num_angles": 6, "num_slices": 6,
                 "infer_split": "all", "max_volumes": 3}  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    command = launcher + [
        "-m",
        "monai.bundle",
        "run",
        "inference",
        "--config_file",
        configs,
        "--meta_file",
        str(folder / "metadata.json"),
        "--logging_file",
        str(folder / "logging.conf"),
    ]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    predictions = output_dir / "predictions"
    heatmaps = [path.relative_to(predictions) for path in predictions.rglob("*_heatmap.nii.gz")]
    assert len(heatmaps) == 3 and len({path.parent for path in heatmaps}) == 3
    shares = sorted(line for line in finished.stdout.splitlines() if line.startswith("rank "))
    assert shares == ["rank 0 of 2 infers 2 volumes", "rank 1 of 2 infers 1 volumes"]
