# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Every bundle config runs as README gives it: ``python -m monai.bundle run ...`` in a fresh process.

A fresh process matters: a config that forgets an import only fails there (the test process has imported the
whole package). The folders are made in the real dataset layouts, with spaces in their names.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage

from monai_tonno.data import SimpleITKReader, SyntheticBreastConfig, generate_synthetic_duke, synthetic_petct_case
from monai_tonno.data.synthetic_petct import SyntheticPETCTConfig
from monai_tonno.engines import read_readiness
from monai_tonno.networks import load_segmenter, load_segmenter_config
from monai_tonno.transforms import Binarize, ConnectedComponents, save_threshold

ROOT = Path(__file__).resolve().parents[2]

TINY_TRAINING = {
    "network_name": "test_resnet",
    "slice_size": 24,
    "slices_per_volume": 4,
    "batch_volumes": 2,
    "val_slices_per_volume": 6,
    "max_iterations": 4,
    "val_every_iterations": 2,
    "calibration_num_angles": 6,
    "calibration_num_slices": 6,
    "readiness_num_angles": 6,
    "readiness_num_slices": 6,
    "device": "cpu",
    "num_workers": 0,
}
TINY_INFERENCE = {"num_angles": 6, "num_slices": 6, "device": "cpu", "num_workers": 0}


def assert_calibration_ran(finished: subprocess.CompletedProcess, models: Path) -> None:
    """Training ended with the calibration: a threshold file, or (a 4-step network rarely separates the volumes)
    the warning that inference keeps Otsu's threshold."""
    output = finished.stdout + finished.stderr
    if (models / "threshold.json").is_file():
        assert "mask threshold " in output and "volume balanced accuracy" in output
    else:
        assert "no mask threshold calibrated" in output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundle_command(bundle: str, configs: list[str], run_id: str, overrides: dict, processes: int = 1) -> list[str]:
    """``python -m monai.bundle run <run_id> --config_file ... --key value ...``, under torchrun for processes > 1."""
    files = [f"bundles/{bundle}/{name}" for name in configs]
    config_file = files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={processes}", f"--master_port={free_port()}"]
    command = launcher + ["-m", "monai.bundle", "run", run_id, "--config_file", config_file]
    for key, value in overrides.items():
        command += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    return command


def run_bundle(bundle: str, configs: list[str], run_id: str, overrides: dict, processes: int = 1, ok: bool = True):
    environment = {**os.environ, "OMP_NUM_THREADS": "1" if processes > 1 else "2", "PYTHONWARNINGS": "ignore"}
    finished = subprocess.run(
        bundle_command(bundle, configs, run_id, overrides, processes),
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
        env=environment,
    )
    if ok:
        assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
    return finished


def make_autopet(root: Path, patients: int = 6) -> Path:
    """A tiny AutoPET-II folder in the real layout: anisotropic voxels, an offset origin, spaces in folder names."""
    config = SyntheticPETCTConfig(size=20)
    rng = np.random.default_rng(1)
    affine = np.array([[4.0, 0, 0, -300.0], [0, 4.0, 0, -250.0], [0, 0, 5.0, -900.0], [0, 0, 0, 1]])
    for index in range(patients):
        suv, hu, mask = synthetic_petct_case(rng, config, positive=index % 2 == 0)
        study = (
            root
            / "FDG-PET-CT-Lesions"
            / f"PETCT_{index:03x}a1"
            / f"0{index}-02-2003-NA-PET-CT Ganzkoerper  primaer mit KM-1044{index}"
        )
        study.mkdir(parents=True)
        for name, array in (("SUV", suv), ("CTres", hu), ("SEG", mask)):
            nib.save(nib.Nifti1Image(array[:, :, 2:18], affine), study / f"{name}.nii.gz")
    return root


@pytest.fixture(scope="module")
def frozen_bn_autopet(tmp_path_factory):
    """Training with --norm frozen_batch on a real-layout folder, run once for the tests that need a model."""
    tmp = tmp_path_factory.mktemp("autopet with spaces")
    dataset = make_autopet(tmp / "my data")
    common = {"dataset_dir": str(dataset), "output_dir": str(tmp / "run output")}
    run_bundle("autopet", ["train.json"], "training", {**common, **TINY_TRAINING, "norm": "frozen_batch"})
    return tmp, common


def test_training_writes_checkpoints_and_the_network_configuration(frozen_bn_autopet):
    tmp, common = frozen_bn_autopet
    models = Path(common["output_dir"]) / "models"
    assert (models / "model.pt").is_file() and (models / "checkpoint_final.pt").is_file()
    checkpoint = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert any(key.endswith("running_mean") for key in checkpoint["model"])  # frozen batch norm keeps its statistics
    config = json.loads((models / "network.json").read_text())
    assert json.loads(checkpoint["network_config"]["json"]) == {
        k: v for k, v in config.items() if k != "format_version"
    }
    assert config["network"] == {"name": "test_resnet", "in_channels": 2, "norm": "frozen_batch"}
    # pixdim "auto": 4 x 4 x 5 mm voxels, (4 * 4 * 5)^(1/3) = 4.31 -> 4.4 mm isotropic (the budget allows finer)
    assert config["slice_size"] == 24 and config["preprocessing"]["pixdim"] == [4.4, 4.4, 4.4]
    assert any((Path(common["output_dir"]) / "logs").iterdir())  # TensorBoard events
    # 1 + 1 validation studies: the best separation has chance 1/2, so the model can never be ready at 0.05
    readiness = read_readiness(models / "model.pt")
    assert readiness["ready"] is False and readiness["volumes"] == 2 and readiness["p_value"] >= 0.5
    assert readiness["measure"] == "val_volume_auc" and readiness["iteration"] in (2, 4)


def test_inference_on_a_user_folder_needs_no_architecture_flags(frozen_bn_autopet):
    """Trained with --norm frozen_batch, inferred with only --dataset_dir: every study gets its own folder."""
    tmp, common = frozen_bn_autopet
    finished = run_bundle("autopet", ["inference.json"], "inference", {**common, **TINY_INFERENCE})
    assert "is NOT READY" in finished.stdout + finished.stderr  # the model of two validation studies (see above)
    predictions = Path(common["output_dir"]) / "predictions"
    studies = sorted((Path(common["dataset_dir"]) / "FDG-PET-CT-Lesions").glob("*/*"))
    assert len(studies) == 6
    for study in studies:  # all six studies, not a validation share of four
        folder = predictions / "FDG-PET-CT-Lesions" / study.parent.name / study.name
        expected = nib.load(str(study / "SUV.nii.gz"))
        for name in ("SUV_heatmap.nii.gz", "SUV_mask.nii.gz"):
            written = nib.load(str(folder / name))
            assert written.shape[:3] == expected.shape == (20, 20, 16)
            np.testing.assert_allclose(written.affine, expected.affine, atol=1e-4)
        assert np.isfinite(nib.load(str(folder / "SUV_heatmap.nii.gz")).get_fdata()).all()


def test_evaluation_runs_in_a_fresh_process(frozen_bn_autopet):
    tmp, common = frozen_bn_autopet
    overrides = {**common, **TINY_INFERENCE, "num_angles": 4, "num_slices": 4, "eval_split": "all"}
    finished = run_bundle("autopet", ["evaluate.json"], "run", overrides)
    assert "is NOT READY" in finished.stdout + finished.stderr
    folder = Path(common["output_dir"]) / "evaluation"
    table = (folder / "table.md").read_text()
    assert table in finished.stdout  # the report is printed
    assert table.startswith("Model model.pt: NOT READY (val_volume_auc")  # the table says what it describes
    for family in ("GradCAM", "LayerCAM", "ToNNO", "Averaged LayerCAM", "Tomographic LayerCAM"):
        assert f"| {family}" in table
    rows = (folder / "methods.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 4 * 4  # header, ToNNO, four CAM families at four layers
    assert (folder / "threshold.json").is_file()
    assert len(list((folder / "figures").glob("*.png"))) == 3  # one per evaluated volume (alternate halves of 6)


def tiny_distillation(common: dict, output: Path, **settings) -> dict:
    """A copy of the fixture's teacher under ``output`` with a threshold file, and distill.json's overrides for a
    student of a few iterations on 8^3 crops."""
    shutil.copytree(Path(common["output_dir"]) / "models", output / "models")
    models = output / "models"
    save_threshold(models / "threshold.json", 0.0, "balanced_accuracy", 1.0, model_file=models / "model.pt")
    return {
        "dataset_dir": common["dataset_dir"], "output_dir": str(output), **TINY_INFERENCE, "num_angles": 4,
        "num_slices": 4, "max_iterations": 2, "roi_size": [8, 8, 8], "segmenter_channels": [4, 8], "batch_volumes": 1,
        "crops_per_volume": 1, **settings,
    }  # fmt: skip


def test_distillation_pseudo_labels_once_and_trains_a_segmenter(frozen_bn_autopet, tmp_path):
    """distill.json in a fresh process: pseudo-labels of the training studies on the input's grid, a negative
    study's label empty, a rerun reusing them, a new threshold redoing them, and a segmenter that loads."""
    tmp, common = frozen_bn_autopet
    output = tmp_path / "distil run"
    overrides = tiny_distillation(common, output, crops_per_volume=2)  # the ignore band runs in MosMed and Duke
    models = output / "models"
    finished = run_bundle("autopet", ["distill.json"], "training", overrides)
    assert "inferred 4 studies, skipped 0" in finished.stdout + finished.stderr  # the 4 training studies
    labels = sorted((output / "pseudo_labels").rglob("SUV_mask.nii.gz"))
    assert len(labels) == 4
    for label in labels:
        study = Path(common["dataset_dir"]) / label.relative_to(output / "pseudo_labels").parent
        expected = nib.load(str(study / "SUV.nii.gz"))
        written = nib.load(str(label))
        assert written.shape[:3] == expected.shape
        np.testing.assert_allclose(written.affine, expected.affine, atol=1e-4)
        if not nib.load(str(study / "SEG.nii.gz")).get_fdata().any():  # a negative study: nothing, whatever ToNNO saw
            assert not written.get_fdata().any()
    config = load_segmenter_config(output / "segmenter" / "model.pt")
    assert config["roi_size"] == [8, 8, 8] and config["network"]["channels"] == [4, 8] and not config["ignore_band"]
    segmenter = load_segmenter(output / "segmenter" / "model.pt")
    assert segmenter(torch.zeros(1, 2, 8, 8, 8)).shape == (1, 1, 8, 8, 8)

    again = run_bundle("autopet", ["distill.json"], "training", {**overrides, "resume": False})
    assert "inferred 0 studies, skipped 4" in again.stdout + again.stderr
    save_threshold(models / "threshold.json", 0.5, "balanced_accuracy", 1.0, model_file=models / "model.pt")
    redone = run_bundle("autopet", ["distill.json"], "training", {**overrides, "resume": False})
    assert "inferred 4 studies, skipped 0" in redone.stdout + redone.stderr
    refused = run_bundle("autopet", ["distill.json"], "training", {**overrides, "max_iterations": 3}, ok=False)
    assert refused.returncode != 0 and "cannot resume the segmenter" in refused.stderr


def test_segment_json_writes_the_students_masks_on_each_studys_grid_and_exports(frozen_bn_autopet, tmp_path):
    """segment.json in a fresh process over a real-layout folder: one sliding-window pass per study, a probability
    and a mask on the input's grid and affine, a rerun that skips every study, ckpt_export's TorchScript giving
    the segmenter's own output, and the student as a row of evaluate.json's table."""
    tmp, common = frozen_bn_autopet
    output = tmp_path / "segment run"
    run_bundle("autopet", ["distill.json"], "training", tiny_distillation(common, output, max_iterations=1))
    overrides = {"dataset_dir": common["dataset_dir"], "output_dir": str(output), "device": "cpu"}
    finished = run_bundle("autopet", ["segment.json"], "run", overrides)
    assert "inferred 6 studies, skipped 0" in finished.stdout + finished.stderr  # --dataset_dir: every study
    masks = sorted((output / "segmentations").rglob("SUV_mask.nii.gz"))
    assert len(masks) == 6
    for mask_file in masks:
        study = Path(common["dataset_dir"]) / mask_file.relative_to(output / "segmentations").parent
        expected = nib.load(str(study / "SUV.nii.gz"))
        probability = nib.load(str(mask_file.with_name("SUV_probability.nii.gz")))
        mask = nib.load(str(mask_file))
        for written in (probability, mask):
            assert written.shape[:3] == expected.shape
            np.testing.assert_allclose(written.affine, expected.affine, atol=1e-4)
        values = probability.get_fdata()
        assert values.min() >= 0.0 and values.max() <= 1.0  # a sigmoid, zero outside the body
        assert np.all(values[mask.get_fdata() > 0] > 0.5)  # components of the probability's cut at 0.5
    again = run_bundle("autopet", ["segment.json"], "run", overrides)
    assert "inferred 0 studies, skipped 6" in again.stdout + again.stderr

    exported = output / "segmenter" / "model.ts"
    command = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported),
               "--ckpt_file", str(output / "segmenter" / "model.pt"), "--meta_file", "bundles/autopet/metadata.json",
               "--config_file", "bundles/autopet/segment.json", "--output_dir", str(output)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    scripted = torch.jit.load(str(exported))
    segmenter = load_segmenter(output / "segmenter" / "model.pt")
    volume = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(scripted(volume), segmenter(volume))

    evaluation = {**overrides, **TINY_INFERENCE, "num_angles": 4, "num_slices": 4, "eval_split": "all"}
    run_bundle("autopet", ["evaluate.json"], "run", evaluation)
    table = (output / "evaluation" / "table.md").read_text()
    assert "| ToNNO -> UNet |" in table and "| ToNNO |" in table


def test_a_checkpoint_that_does_not_fit_its_configuration_is_named(frozen_bn_autopet, tmp_path):
    tmp, common = frozen_bn_autopet
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes((Path(common["output_dir"]) / "models" / "model.pt").read_bytes())
    config = json.loads((Path(common["output_dir"]) / "models" / "network.json").read_text())
    config["network"]["norm"] = "group"
    (models / "network.json").write_text(json.dumps(config))
    overrides = {**common, **TINY_INFERENCE, "ckpt_path": str(models / "model.pt"), "output_dir": str(tmp_path)}
    finished = run_bundle("autopet", ["inference.json"], "inference", overrides, ok=False)
    assert finished.returncode != 0
    assert "is not the one it was trained with" in finished.stderr and "'norm': 'frozen_batch'" in finished.stderr


def test_a_network_json_of_another_run_is_refused_even_for_the_same_architecture(frozen_bn_autopet, tmp_path):
    """model.pt records its configuration: a network.json with another voxel size would preprocess every scan the
    wrong way without any error from the weights."""
    tmp, common = frozen_bn_autopet
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes((Path(common["output_dir"]) / "models" / "model.pt").read_bytes())
    config = json.loads((Path(common["output_dir"]) / "models" / "network.json").read_text())
    config["preprocessing"]["pixdim"] = [2.0, 2.0, 2.0]
    (models / "network.json").write_text(json.dumps(config))
    overrides = {**common, **TINY_INFERENCE, "ckpt_path": str(models / "model.pt"), "output_dir": str(tmp_path)}
    finished = run_bundle("autopet", ["inference.json"], "inference", overrides, ok=False)
    assert finished.returncode != 0
    assert "preprocessing: trained with" in finished.stderr and "[2.0, 2.0, 2.0]" in finished.stderr


def test_resume_continues_the_same_run_and_refuses_another(frozen_bn_autopet):
    tmp, common = frozen_bn_autopet
    same = {**common, **TINY_TRAINING, "norm": "frozen_batch"}
    finished = run_bundle("autopet", ["train.json"], "training", same)
    assert "SupervisedTrainer - INFO - Epoch[" not in finished.stdout  # resumed at its end: no epoch is redone
    final = torch.load(Path(common["output_dir"]) / "models" / "checkpoint_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == 4
    for change, words in (({"norm": "group"}, "'norm': 'frozen_batch'"), ({"max_iterations": 6}, "planned for 4")):
        finished = run_bundle("autopet", ["train.json"], "training", {**same, **change}, ok=False)
        assert finished.returncode != 0 and "cannot resume" in finished.stderr and words in finished.stderr


def test_dataset_sharded_inference_under_torchrun(frozen_bn_autopet):
    """Two gloo processes each infer their partition; together they write every volume once."""
    tmp, common = frozen_bn_autopet
    overrides = {**common, **TINY_INFERENCE, "output_dir": str(tmp / "sharded"),
                 "ckpt_path": str(Path(common["output_dir"]) / "models" / "model.pt"), "max_volumes": 3}  # fmt: skip
    finished = run_bundle("autopet", ["inference.json", "multi_gpu_inference.json"], "inference", overrides, 2)
    predictions = tmp / "sharded" / "predictions"
    heatmaps = [path.relative_to(predictions) for path in predictions.rglob("*_heatmap.nii.gz")]
    assert len(heatmaps) == 3 and len({path.parent for path in heatmaps}) == 3
    # the two ranks share one pipe, so their lines may interleave; read the announcements, not the lines
    shares = sorted(re.findall(r"rank (\d) of 2 infers (\d) volumes", finished.stdout))
    assert shares == [("0", "2"), ("1", "1")]


def test_multi_process_training_under_torchrun(frozen_bn_autopet, tmp_path):
    tmp, common = frozen_bn_autopet
    overrides = {**common, **TINY_TRAINING, "output_dir": str(tmp_path / "ddp"), "ema_momentum": 0.5,
                 "balanced_sampling": True}  # fmt: skip
    run_bundle("autopet", ["train.json", "multi_gpu_train.json"], "training", overrides, 2)
    final = torch.load(tmp_path / "ddp" / "models" / "checkpoint_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == 4
    assert final["ema_network"].keys() == final["network"].keys()
    assert (tmp_path / "ddp" / "models" / "network.json").is_file()


def test_distillation_under_torchrun_shards_the_pseudo_labels_and_saves_one_student(frozen_bn_autopet, tmp_path):
    """multi_gpu_distill.json: each rank pseudo-labels its share of the training studies, both train one DDP
    student, and rank 0 alone writes its network.json, model.pt (unwrapped: no "module." names) and threshold."""
    tmp, common = frozen_bn_autopet
    output = tmp_path / "ddp distil"
    overrides = tiny_distillation(common, output)
    finished = run_bundle("autopet", ["distill.json", "multi_gpu_distill.json"], "training", overrides, 2)
    log = finished.stdout + finished.stderr
    assert "inferred 2 studies, skipped 0" in log  # rank 0's half of the 4 training studies (rank 1 logs warnings)
    assert len(list((output / "pseudo_labels").rglob("SUV_mask.nii.gz"))) == 4
    state = torch.load(output / "segmenter" / "model.pt", weights_only=True)
    assert not any(name.startswith("module.") for name in state)
    checkpoint = torch.load(next((output / "segmenter" / "checkpoints").glob("*.pt")), weights_only=False)
    assert checkpoint["trainer"]["iteration"] == 2
    load_segmenter(output / "segmenter" / "model.pt")


def test_embedded_default_trains_and_infers_on_synthetic_data(tmp_path):
    """No --dataset_dir: the synthetic dataset is generated under cache_dir, keyed by its parameters."""
    common = {"output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "synthetic_patients": 16,
              "synthetic_size": 20}  # fmt: skip
    trained = run_bundle("autopet", ["train.json"], "training", {**common, **TINY_TRAINING})
    assert_calibration_ran(trained, tmp_path / "out" / "models")
    run_bundle("autopet", ["inference.json"], "inference", {**common, **TINY_INFERENCE})
    synthetic = tmp_path / "cache" / "synthetic_autopet" / "patients16_size20_seed0"
    assert len(list(synthetic.glob("FDG-PET-CT-Lesions/*/*"))) == 16
    # validation: 2 patients with lesions and 2 without; one of each calibrates, the other two are inferred
    heatmaps = sorted((tmp_path / "out" / "predictions").rglob("*_heatmap.nii.gz"))
    assert len(heatmaps) == 2
    # with a calibrated threshold, inference binarises by hysteresis on it
    first = np.asarray(nib.load(str(heatmaps[0])).dataobj).squeeze()
    threshold = float(np.quantile(first[first > 0], 0.9))
    models = tmp_path / "out" / "models"
    save_threshold(models / "threshold.json", threshold, "volume_balanced_accuracy", 1.0, models / "model.pt")
    run_bundle("autopet", ["inference.json"], "inference",
               {**common, **TINY_INFERENCE, "prediction_dir": str(tmp_path / "fitted")})  # fmt: skip
    hysteresis = Binarize("hysteresis", value=threshold, seed_min_size=8)
    components = ConnectedComponents(26, min_size=8)
    for heatmap_file in sorted((tmp_path / "fitted").rglob("*_heatmap.nii.gz")):
        heatmap = np.asarray(nib.load(str(heatmap_file)).dataobj).squeeze()
        mask = np.asarray(nib.load(str(heatmap_file).replace("_heatmap", "_mask")).dataobj).squeeze()
        expected = np.asarray(components(hysteresis(torch.as_tensor(heatmap)[None])))[0]
        np.testing.assert_array_equal(mask > 0, expected > 0)


def test_weight_averaging_and_balanced_sampling_reach_the_saved_model(tmp_path):
    """With --ema_momentum the averaged weights are validated and saved as model.pt, and inference uses them."""
    common = {"output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "synthetic_patients": 4,
              "synthetic_size": 20}  # fmt: skip
    training = {**common, **TINY_TRAINING, "val_every_iterations": 4, "ema_momentum": 0.5, "balanced_sampling": True}
    run_bundle("autopet", ["train.json"], "training", training)
    models = tmp_path / "out" / "models"
    final = torch.load(models / "checkpoint_final.pt", weights_only=True)
    saved = torch.load(models / "model.pt", weights_only=True)["model"]
    assert final["trainer"]["iteration"] == 4
    assert all(torch.equal(saved[key], final["ema_network"][key]) for key in saved)  # one validation, at the end
    assert any(not torch.equal(final["network"][key], final["ema_network"][key]) for key in saved)
    run_bundle("autopet", ["inference.json"], "inference", {**common, **TINY_INFERENCE, "infer_split": "validation"})
    assert len(list((tmp_path / "out" / "predictions").rglob("*_heatmap.nii.gz"))) == 1


def test_inference_without_a_checkpoint_says_so(tmp_path):
    overrides = {"output_dir": str(tmp_path), "cache_dir": str(tmp_path / "c"), "synthetic_patients": 2,
                 "synthetic_size": 16}  # fmt: skip
    finished = run_bundle("autopet", ["inference.json"], "inference", overrides, ok=False)
    assert finished.returncode != 0 and "expected the trained model" in finished.stderr


def test_bundle_with_a_missing_dataset_dir_says_so(tmp_path):
    overrides = {"dataset_dir": str(tmp_path / "nowhere"), "output_dir": str(tmp_path), **TINY_TRAINING}
    finished = run_bundle("autopet", ["train.json"], "training", overrides, ok=False)
    assert finished.returncode != 0 and "nowhere' does not exist" in finished.stderr


def test_cuda_device_without_cuda_is_named(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error is for machines without it")
    overrides = {"output_dir": str(tmp_path), "cache_dir": str(tmp_path / "c"), "synthetic_patients": 6,
                 "synthetic_size": 16, **TINY_TRAINING, "device": "cuda"}  # fmt: skip
    finished = run_bundle("autopet", ["train.json"], "training", overrides, ok=False)
    assert finished.returncode != 0 and "torch.cuda.is_available() is False" in finished.stderr


def distil_and_segment(bundle: str, common: dict, studies: int) -> list[Path]:
    """distill.json (with the ignore band) then segment.json in fresh processes after the teacher's inference: the
    student's probability and mask of every study on the grid and affine of ToNNO's heatmap of it, then the
    student as a row of evaluate.json's table. Returns the probability files."""
    output = Path(common["output_dir"])
    models = output / "models"
    save_threshold(models / "threshold.json", 0.0, "balanced_accuracy", 1.0, model_file=models / "model.pt")
    distil = {**common, **TINY_INFERENCE, "num_angles": 4, "num_slices": 4, "max_iterations": 1, "roi_size": [8, 8, 8],
              "segmenter_channels": [4, 8], "batch_volumes": 1, "crops_per_volume": 1, "ignore_band": True}  # fmt: skip
    run_bundle(bundle, ["distill.json"], "training", distil)
    finished = run_bundle(bundle, ["segment.json"], "run", {**common, "device": "cpu"})
    assert f"inferred {studies} studies, skipped 0" in finished.stdout + finished.stderr
    probabilities = sorted((output / "segmentations").rglob("*_probability.nii.gz"))
    assert len(probabilities) == studies
    for probability_file in probabilities:
        relative = str(probability_file.relative_to(output / "segmentations"))
        teacher = nib.load(str(output / "predictions" / relative.replace("_probability.", "_heatmap.")))
        mask = nib.load(str(probability_file).replace("_probability.", "_mask."))
        probability = nib.load(str(probability_file))
        for written in (probability, mask):
            assert written.shape[:3] == teacher.shape[:3]
            np.testing.assert_allclose(written.affine, teacher.affine, atol=1e-4)
        values = probability.get_fdata()
        assert values.min() >= 0.0 and values.max() <= 1.0 and np.all(values[mask.get_fdata() > 0] > 0.5)
    run_bundle(bundle, ["evaluate.json"], "evaluation", {**common, **TINY_INFERENCE, "layers": ["layer1"]})
    assert "| ToNNO -> UNet |" in (output / "evaluation" / "table.md").read_text()
    return probabilities


def make_mosmed(root: Path) -> None:
    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    names = {"CT-0": ["study_0001", "study_0002"], "CT-1": ["study_0255", "study_0256", "study_0257"]}
    for category, studies in names.items():
        (root / "studies" / category).mkdir(parents=True)
        for name in studies:
            volume = rng.normal(-700, 200, (20, 20, 8)).astype(np.int16)
            nib.save(nib.Nifti1Image(volume, affine), root / "studies" / category / f"{name}.nii.gz")
    (root / "masks").mkdir()
    for name in ("study_0255", "study_0256"):
        mask = np.zeros((20, 20, 8), np.uint8)
        mask[5:12, 6:14, 2:6] = 1
        nib.save(nib.Nifti1Image(mask, affine), root / "masks" / f"{name}_mask.nii.gz")


def test_mosmed_bundle_every_config(tmp_path):
    make_mosmed(tmp_path / "mosmed data")
    common = {"dataset_dir": str(tmp_path / "mosmed data"), "output_dir": str(tmp_path / "out")}
    trained = run_bundle("mosmed", ["train.json"], "training", {**common, **TINY_TRAINING, "pixdim": [3.0, 3.0, 3.0]})
    assert_calibration_ran(trained, tmp_path / "out" / "models")  # on CT-0 and CT-1 studies
    config = json.loads((tmp_path / "out" / "models" / "network.json").read_text())
    assert config["preprocessing"]["pixdim"] == [3.0, 3.0, 3.0] and config["network"]["in_channels"] == 1
    auto = {**common, **TINY_INFERENCE, "num_angles": "$monai_tonno.inferers.UntilConverged(4, 16, 0.5)"}
    inferred = run_bundle("mosmed", ["inference.json"], "inference", auto)
    logged = inferred.stdout + inferred.stderr
    assert logged.count("settled at L =") + logged.count("did not settle by L = 16") == 5, logged[-3000:]
    heatmaps = sorted((tmp_path / "out" / "predictions").rglob("*_heatmap.nii.gz"))
    assert len(heatmaps) == 5 and all(nib.load(str(h)).shape[:3] == (20, 20, 8) for h in heatmaps)
    source = nib.load(str(tmp_path / "mosmed data" / "studies" / "CT-1" / "study_0255.nii.gz"))
    written = next(h for h in heatmaps if "study_0255" in h.name)
    np.testing.assert_allclose(nib.load(str(written)).affine, source.affine, atol=1e-4)
    evaluation = {**common, **TINY_INFERENCE, "num_angles": 4, "num_slices": 4, "reconstruction": "iterative",
                  "iterations": 3}  # fmt: skip
    run_bundle("mosmed", ["evaluate.json"], "evaluation", evaluation)
    assert "| ToNNO" in (tmp_path / "out" / "evaluation" / "table.md").read_text()
    sharded = {**common, **TINY_INFERENCE, "output_dir": str(tmp_path / "sharded"),
               "ckpt_path": str(tmp_path / "out" / "models" / "model.pt")}  # fmt: skip
    run_bundle("mosmed", ["inference.json", "multi_gpu_inference.json"], "inference", sharded, 2)
    assert len(list((tmp_path / "sharded" / "predictions").rglob("*_heatmap.nii.gz"))) == 5
    ddp = {**common, **TINY_TRAINING, "output_dir": str(tmp_path / "ddp"), "pixdim": [3.0, 3.0, 3.0],
           "ema_momentum": 0.5, "balanced_sampling": True}  # fmt: skip
    run_bundle("mosmed", ["train.json", "multi_gpu_train.json"], "training", ddp, 2)
    assert (tmp_path / "ddp" / "models" / "checkpoint_final.pt").is_file()
    distil_and_segment("mosmed", common, studies=5)  # "distill.json", "segment.json"
    ddp_distil = {**common, **TINY_INFERENCE, "output_dir": str(tmp_path / "ddp"), "num_angles": 4, "num_slices": 4,
                  "ckpt_path": str(tmp_path / "out" / "models" / "model.pt"), "max_iterations": 1, "batch_volumes": 1,
                  "roi_size": [8, 8, 8], "segmenter_channels": [4, 8], "crops_per_volume": 1}  # fmt: skip
    run_bundle("mosmed", ["distill.json", "multi_gpu_distill.json"], "training", ddp_distil, 2)
    assert (tmp_path / "ddp" / "segmenter" / "model.pt").is_file()


def test_duke_bundle_every_config_on_dicom_series(tmp_path):
    """DICOM series in the Duke layout (spaces in every folder name), an xlsx of boxes, one sample per breast."""
    config = SyntheticBreastConfig(num_patients=4, shape=(32, 32, 10), spacing_mm=(6.0, 6.0, 10.0), seed=3)
    dataset = generate_synthetic_duke(tmp_path / "duke data", config)
    common = {"dataset_dir": str(dataset), "output_dir": str(tmp_path / "run output")}
    training = {**common, **TINY_TRAINING, "pixdim": [6.0, 6.0, 6.0], "ema_momentum": 0.5, "balanced_sampling": True}
    trained = run_bundle("duke", ["train.json"], "training", training)
    assert_calibration_ran(trained, tmp_path / "run output" / "models")  # on breasts with and without the tumour
    network = json.loads((tmp_path / "run output" / "models" / "network.json").read_text())
    assert network["preprocessing"]["phases"] == ["pre", "post1-pre"] and network["network"]["in_channels"] == 2
    run_bundle("duke", ["inference.json"], "inference", {**common, **TINY_INFERENCE})
    written = sorted(p.name for p in (tmp_path / "run output" / "predictions").iterdir())
    assert written == [f"Breast_MRI_00{p}_{s}_{k}.nii.gz" for p in range(1, 5) for s in ("left", "right")
                       for k in ("heatmap", "mask")]  # fmt: skip
    # each breast's heatmap lies on the whole series' grid, in its world space, zero on the other side
    left = nib.load(str(tmp_path / "run output" / "predictions" / "Breast_MRI_001_left_heatmap.nii.gz"))
    right = nib.load(str(tmp_path / "run output" / "predictions" / "Breast_MRI_001_right_heatmap.nii.gz"))
    assert left.shape == right.shape == (32, 32, 10)
    series = next((dataset / "Duke-Breast-Cancer-MRI" / "Breast_MRI_001").glob("*/*dyn pre*"))
    source = LoadImage(reader=SimpleITKReader(), image_only=True)(series)
    np.testing.assert_allclose(left.affine, np.asarray(source.affine), atol=1e-3)
    both = (np.abs(left.get_fdata()) > 0) & (np.abs(right.get_fdata()) > 0)
    assert not both.any() and (np.abs(left.get_fdata()) > 0).any() and (np.abs(right.get_fdata()) > 0).any()
    run_bundle("duke", ["evaluate.json"], "evaluation", {**common, **TINY_INFERENCE, "layers": ["layer1"]})
    table = (tmp_path / "run output" / "evaluation" / "table.md").read_text()
    assert "| ToNNO |" in table and "MaxIoU" in table and "Dice" not in table
    left, right = (nib.load(str(p)).get_fdata() for p in distil_and_segment("duke", common, studies=8)[:2])
    assert not ((left > 0) & (right > 0)).any()  # each breast's probability only on its own side


def test_mosmed_embedded_default_runs_without_a_dataset(tmp_path):
    """No --dataset_dir: the synthetic chest CT (anisotropic voxels) in the MosMed layout, through every config."""
    common = {"output_dir": str(tmp_path / "run output"), "cache_dir": str(tmp_path / "cache dir"),
              "synthetic_patients": 16, "synthetic_size": 24}  # fmt: skip
    trained = run_bundle("mosmed", ["train.json"], "training", {**common, **TINY_TRAINING})
    assert_calibration_ran(trained, tmp_path / "run output" / "models")
    run_bundle("mosmed", ["inference.json"], "inference", {**common, **TINY_INFERENCE})
    heatmaps = sorted((tmp_path / "run output" / "predictions").rglob("*_heatmap.nii.gz"))
    studies = {path.name: path for path in (tmp_path / "cache dir").rglob("study_*.nii.gz") if "mask" not in path.name}
    assert heatmaps and len(studies) == 16
    for heatmap in heatmaps:
        source = nib.load(str(studies[heatmap.name.replace("_heatmap", "")]))
        assert nib.load(str(heatmap)).shape[:3] == source.shape == (24, 24, 15)
        np.testing.assert_allclose(nib.load(str(heatmap)).affine, source.affine, atol=1e-4)
    run_bundle("mosmed", ["evaluate.json"], "evaluation", {**common, **TINY_INFERENCE, "layers": ["layer1"]})
    assert "| ToNNO |" in (tmp_path / "run output" / "evaluation" / "table.md").read_text()


def test_metadata_verifies_offline():
    from monai.bundle import verify_metadata

    for bundle in ("autopet", "duke", "mosmed"):
        verify_metadata(
            meta_file=str(ROOT / "bundles" / bundle / "metadata.json"),
            filepath=str(ROOT / "bundles" / "schema" / "metadata_schema.json"),
        )


def test_every_config_file_is_run_by_a_test():
    """A new config file needs a subprocess test here (the lesson of evaluate.json)."""
    source = Path(__file__).read_text()
    for config in sorted(ROOT.glob("bundles/*/*.json")):
        if config.name == "metadata.json" or config.parent.name in ("schema", "common"):  # common: macro targets
            continue
        assert f'"{config.name}"' in source, config


@pytest.mark.parametrize("bundle", ["autopet", "duke", "mosmed"])
def test_warmup_fraction_sets_where_the_learning_rate_peaks(bundle):
    """One-cycle: the learning rate climbs for warmup_fraction of the iterations and peaks at learning_rate."""
    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / bundle / "train.json"))
    parser.update({"max_iterations": 20, "val_every_iterations": 20, "warmup_fraction": 0.3, "device": "cpu",
                   "network_name": "resnet10t", "learning_rate": 0.01})  # fmt: skip
    scheduler = parser.get_parsed_content("lr_scheduler")
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(19):
        scheduler.optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    assert max(rates) == pytest.approx(0.01) and rates.index(max(rates)) == 5  # 0.3 x 20 steps, counted from 0
    assert all(a < b for a, b in zip(rates[:5], rates[1:6], strict=True))
